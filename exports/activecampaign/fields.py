"""An account's custom fields: read page by page within the rate budget, and an export's fields found among them.

Saving an export reads them to check every mapped field and to record its type; a run reads them
once more when it starts (options included), so a field deleted or changed in ActiveCampaign
since the export was saved is noticed before anything is sent, and no chunk has to ask.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from exports.activecampaign.budget import AccountBudget
from exports.activecampaign.client import ActiveCampaignClient
from exports.errors import Fatal
from exports.model import FieldSpec

MAX_FIELD_PAGES = 100  # 10,000 fields, far beyond any account: a server that never stops paging is cut off
_HINTED = 5


def read_account_fields(client: ActiveCampaignClient, budget: AccountBudget,
                        attempt: Callable[[Callable], object] = lambda call: call()) -> list[FieldSpec]:
    """Every custom field of the account, every page (`meta.total` says how many there are).

    `attempt` runs each page's request, e.g. with the retries of the app's backoff.
    """
    specs: list[FieldSpec] = []
    for _ in range(MAX_FIELD_PAGES):
        def page(offset=len(specs)):
            budget.before_request()
            return client.fields_page(offset)
        found, total = attempt(page)
        specs += found
        if not found or len(specs) >= total:
            return specs
    raise Fatal(f"ActiveCampaign at {client.hostname} kept answering pages of custom fields past "
                f"{len(specs):,}; the fields could not be read")


def find_field(specs: Sequence[FieldSpec], wanted: str) -> FieldSpec | None:
    """The field an export names: by id ("12") or by personalisation tag ("TIER" or "%TIER%", any case)."""
    wanted = wanted.strip()
    if wanted.isdigit():
        return next((spec for spec in specs if spec.id == wanted), None)
    perstag = wanted.strip("%").strip().upper()
    return next((spec for spec in specs if spec.perstag.upper() == perstag), None)


def known_fields_hint(specs: Sequence[FieldSpec]) -> str:
    """A few of the account's fields, for a message about one it does not have."""
    if not specs:
        return "the account has no custom fields: create the field in ActiveCampaign (Contacts > Fields) first"
    shown = ", ".join(f"{spec.title or spec.perstag} (perstag {spec.perstag}, id {spec.id})" for spec in specs[:_HINTED])
    more = f" and {len(specs) - _HINTED} more" if len(specs) > _HINTED else ""
    return f"the account's fields include {shown}{more}"
