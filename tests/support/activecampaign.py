"""ActiveCampaign API v3 simulator for tests and benchmarks (standard library only).

It follows ../shared/activecampaign/FACTS.md strictly: Api-Token auth (403), the shared per-account
budget of N requests/s (429 + Retry-After, or 503), the bulk_import budget (HTTP 400 "Rate limit
exceeded."), bulk_import limits (1-250 contacts, 400,000 bytes) and whole-batch validation,
lists and their 404s, no re-subscribing by bulk import of people who unsubscribed, import/info,
contact/sync, contactLists, GET /contacts?email= and GET /contacts/{id}/contactLists. Faults
(errors, latency, dropped connections, deterministic failures, emails ActiveCampaign refuses) can
be injected at construction or at run time.

Custom fields (`fields=` at construction, `add_field`, `delete_field`) have a type (text, textarea,
date, datetime, dropdown, multiselect, radio, checkbox, listbox, hidden) and, for the option types,
option values. GET /api/3/fields pages them like every v3 list (limit 20 by default, at most 100;
offset; `meta.total` a string) and side-loads the options of the fields on the page in
`fieldOptions`. Ids ("1", "2", ...) are never reused; deleting a field forgets its values.

A bulk import contact's `tags` (non-empty strings of at most 255 characters) are added to the
contact's tags, never removed. Its `fields` (`[{"id": 12, "value": "x"}]`) must name fields the
account has, with values in the format of the field's type: `YYYY-MM-DD` for date, an ISO 8601
date-time for datetime, one of the options for dropdown and radio, `||a||b||` (each part an option,
when the field has options) for checkbox, listbox and multiselect. Anything else refuses the
whole request like any invalid row (400, `failureReasons` naming the contact's index and the
problem); applied contacts store each value by field id, a later import overwriting it. The empty
string `""` clears the field, whatever its type (it is not checked against options or formats):
the contact has no value for it any more.
A contact's `exclude_automations: true` (per contact, where the docs put it) is counted in the
`automations_excluded` stat; every other applied contact in `automations_started`.

Bulk import outcomes are asynchronous, as FACTS.md says: GET /api/3/import/info reports
`"status": false` for the first third of `import_processing_seconds` after the POST, then
"waiting", then "active", and "completed" (or "failed") once that time has passed; `success` and
`failure` stay empty until then. Which contacts of an accepted batch fail (`import_failure_rate`,
drawn from the seeded rng; `fail_import_emails`) and whether the whole batch fails
(`fail_import_batches`) is decided at POST time. The simulator applies the contacts that do not
fail at once, at POST time; only the reported status waits. Failed contacts (and every contact of
a failed batch) are never applied. The POST answer still counts every contact in
`queued_contacts`: only import/info tells a client what really happened.

List memberships keep what GET /api/3/contacts/{id}/contactLists reports (FACTS: "List
membership, unsubscribes and asynchronous outcomes"): `id`, `contact`, `list`, `status` ("1"
active, "2" unsubscribed), `sdate` (when it became active; null if it never was), `udate` (when
it was unsubscribed; null while active), `unsubreason`, `campaign`, `message`, `sourceid`,
`updated_by`, `unsubscribeAutomation` (null) and a few constant fields, every value a string or
null. Times are written like ActiveCampaign's (`2024-05-31T14:30:00-05:00`) in UTC (`+00:00`),
from `clock` (UTC now unless one is given at construction or set). Who changes a membership:
- a bulk import's `subscribe` creates an active membership, sourceid "0" (an active one is left
  as it was); it never re-subscribes someone unsubscribed (counted in `resubscribe_skipped`);
- a bulk import's `unsubscribe` sets status "2", `udate` now, `campaign`, `message` and
  `unsubreason` null (what ActiveCampaign leaves there is undocumented), also for a contact not
  on the list (an unsubscribed membership is recorded); counted in `unsubscribed_by_import`;
- POST /api/3/contactLists: status 1 creates or re-subscribes (even someone who unsubscribed,
  counted in `resubscribed_by_api`; `sdate` now, the unsubscribe details cleared), with the
  body's `sourceid` ("0" by default); status 2 like a bulk unsubscribe;
- unsubscribe(email, list_id, via="link"|"form"|"user", reason=None): the person unsubscribes
  themselves, from an email's link (`campaign`/`message` name a made-up email), a form, or an
  ActiveCampaign user does it in the UI (`updated_by` "simulator"); `unsubreason` is `reason`;
- add_from_other_source(email, list_id, **contact fields): another integration adds the contact
  to the list, sourceid "1", counted in no stat.
GET /api/3/contacts answers `{"contacts": [...], "meta": {"total": "n"}}` in v3 form (camelCase),
`email=` an exact, case-insensitive match; GET /api/3/contacts/{id}/contactLists answers
`{"contactLists": [...]}` or 404 for an unknown contact id. Both are counted
(`contact_search_requests`, `contact_lists_requests`) and, like every route, need the key and
spend the per-account budget.

In-process use:

    with ActiveCampaignSimulator(api_keys={"test-key"}, lists={"3": "Newsletter"}) as sim:
        requests.get(sim.base_url + "/api/3/users/me", headers={"Api-Token": "test-key"})

Start by hand from the project root (serves until Ctrl-C or SIGTERM):

    python -m tests.support.activecampaign --port 8800 --api-key KEY --list 3:Newsletter

Read-only inspection, without a key and outside the rate budget:
GET /__sim/stats and GET /__sim/lists/{id}. In process: contact(email) (with its sorted `tags`, its
`fields`, field id -> value, its `cdate` and `udate`, and its `lists`, list id -> "subscribed" or
"unsubscribed"),
memberships(email) (list id -> membership record, as contactLists reports it), fields(),
subscribed(), unsubscribed(), batch(), stats().
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import itertools
import json
import math
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_PREFIX = "/api/3"
MAX_BULK_CONTACTS = 250
MAX_BULK_BYTES = 400_000
MAX_REQUEST_BYTES = 32 * 1024 * 1024  # framing guard only; the bulk limits are checked separately
BULK_WINDOW_SECONDS = 60.0

VALIDATION_MESSAGE = (
    "JSON payload did not pass validation. Please fix failure Reasons and retry. "
    "The import was not queued for processing."
)
EMAIL_INCORRECT = "Field 'email' incorrect format"
# The documented contact fields. exclude_automations is also accepted per contact because the
# documentation puts it there (FACTS: placement unconfirmed); it is accepted at the top level too.
BULK_CONTACT_FIELDS = frozenset({
    "email", "first_name", "last_name", "phone", "customer_acct_name", "tags", "fields",
    "subscribe", "unsubscribe", "exclude_automations",
})
BULK_TOP_LEVEL_FIELDS = frozenset({"contacts", "callback", "exclude_automations"})
TEXT_FIELDS = ("first_name", "last_name", "phone", "customer_acct_name")
SUBSCRIBED, UNSUBSCRIBED = 1, 2
# A membership's sourceid. ActiveCampaign documents only "4", for a deliberate re-subscribe by
# POST /contactLists (FACTS: unconfirmed), and 0 as that call's default; the other values are the
# simulator's choice. This app's bulk imports get "0"; another integration's additions
# (add_from_other_source) get "1", a value neither bulk imports nor the default of POST
# /contactLists ever use, so a test can tell who put a contact on a list.
SOURCE_BULK_IMPORT = "0"
SOURCE_CONTACT_LISTS = "0"
SOURCE_OTHER = "1"
# How a person unsubscribes themselves (unsubscribe(via=...)): from an email's link, from a form,
# or an ActiveCampaign user does it for them in the UI (updated_by names that user).
UNSUBSCRIBE_VIAS = ("link", "form", "user")
SIMULATOR_USERNAME = "simulator"  # the account's user, as GET /users/me answers
CONFIGURABLE = frozenset({
    "api_keys", "requests_per_second", "bulk_per_minute", "bulk_single_per_minute",
    "throttle_status", "error_rate", "error_status", "latency", "drop_rate", "reject_emails",
    "import_processing_seconds", "import_failure_rate", "fail_import_emails", "fail_import_batches",
    "clock",
})
STAT_KEYS = (
    "requests", "responses", "bulk_requests", "bulk_accepted", "contacts_imported",
    "contacts_created", "throttled_429", "throttled_bulk", "validation_rejections",
    "oversize_rejections", "malformed_rejections", "resubscribe_skipped", "errors_injected",
    "dropped", "forbidden", "not_found", "connections", "import_info_requests", "contacts_failed",
    "batches_failed", "automations_started", "automations_excluded", "unsubscribed_by_import",
    "resubscribed_by_api", "contact_search_requests", "contact_lists_requests",
)
# Custom field types (FACTS) and the ones whose values are among the field's options.
FIELD_TYPES = frozenset({
    "text", "textarea", "date", "datetime", "dropdown", "multiselect", "radio", "checkbox",
    "listbox", "hidden",
})
SINGLE_OPTION_TYPES = frozenset({"dropdown", "radio"})
MULTI_VALUE_TYPES = frozenset({"checkbox", "listbox", "multiselect"})
MAX_TAG_LENGTH = 255
MULTI_VALUE_DELIMITER = "||"
_DIGITS = re.compile(r"[0-9]+\Z")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9-]+\Z")


def is_valid_email(value: Any) -> bool:
    """Strict but simple: ASCII, one @, local part without spaces, dotted domain, no '..'."""
    if not isinstance(value, str) or not value.isascii() or value.count("@") != 1:
        return False
    local, domain = value.split("@")
    if not local or ".." in value or any(not ch.isprintable() or ch.isspace() for ch in local):
        return False
    labels = domain.split(".")
    return len(labels) >= 2 and all(_DOMAIN_LABEL.match(label) for label in labels)


@dataclasses.dataclass
class Reply:
    status: int
    body: Any = None  # anything json.dumps accepts; None sends an empty body
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class _Membership:
    """One (contact, list) membership, kept compact (an account may hold a million): the contact,
    the list and the constant fields are added when it is reported (_membership_body)."""
    id: str
    status: int  # SUBSCRIBED or UNSUBSCRIBED
    sdate: str | None  # when it became active; None for one that never was
    sourceid: str
    udate: str | None = None  # when it was unsubscribed; None while active
    unsubreason: str | None = None
    campaign: str | None = None
    message: str | None = None
    updated_by: str | None = None


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


DROP = object()  # sentinel reply: close the socket without answering
INVALID_JSON = object()  # sentinel for a body that is not JSON


@dataclasses.dataclass
class _FailRule:
    remaining: int
    status: int
    path_prefix: str | None


def _bulk_rate_limit_body(limit: int) -> dict:
    return {
        "success": 0,
        "message": "Rate limit exceeded.",
        "failureReasons": [
            f"Up to {limit} imports may be requested per minute.Please batch contacts into larger "
            "requests, or retry this request in a minute."
        ],
    }


def _email_matcher(value: Callable[[str], bool] | Iterable[str] | None) -> Callable[[str], bool]:
    """A predicate from None (matches nothing), a callable, or emails (case-insensitive)."""
    if value is None:
        return lambda email: False
    if callable(value):
        return value
    lowered = frozenset(e.lower() for e in value)
    return lambda email: email.lower() in lowered


def _check_import_settings(settings: dict) -> None:
    # Checked up front: a bad value would otherwise only show as odd statuses much later.
    if "import_processing_seconds" in settings and not settings["import_processing_seconds"] >= 0:
        raise ValueError("import_processing_seconds must be >= 0")
    if "import_failure_rate" in settings and not 0 <= settings["import_failure_rate"] <= 1:
        raise ValueError("import_failure_rate must be between 0 and 1")
    if "fail_import_batches" in settings and not (
            isinstance(settings["fail_import_batches"], int) and settings["fail_import_batches"] >= 0):
        raise ValueError("fail_import_batches must be an int >= 0")


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        return INVALID_JSON


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _is_list_ref(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and value.strip() != "")


def _default_perstag(title: str) -> str:
    """The personalisation tag ActiveCampaign derives from a title: "Another Test Title" ->
    "ANOTHER_TEST_TITLE"."""
    return re.sub(r"[^A-Za-z0-9]", "_", title).upper()


def _field_id(value: Any) -> str | None:
    """A bulk import field id (an int, or a string of digits) as the simulator's string id."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and _DIGITS.match(value):
        return str(int(value))
    return None


def _is_iso_date(value: str) -> bool:
    if not _ISO_DATE.match(value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_iso_datetime(value: str) -> bool:
    # datetime.fromisoformat (3.11) also takes a bare date and any single character between date
    # and time; an ISO 8601 date-time has a time, after a "T".
    if not value.isascii() or "T" not in value:
        return False
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _multi_value_parts(value: str) -> list[str] | None:
    """The values of `||a||b||`, or None when `value` is not written that way."""
    delimiter = MULTI_VALUE_DELIMITER
    if len(value) <= 2 * len(delimiter) or not (value.startswith(delimiter) and value.endswith(delimiter)):
        return None
    parts = value[len(delimiter):-len(delimiter)].split(delimiter)
    return parts if all(parts) else None


def _field_value_problem(field: dict, value: str) -> str | None:
    """Why this value does not fit the custom field's type, or None.

    The formats are the ones FACTS.md gives (dates as YYYY-MM-DD is third-party knowledge). How
    strictly ActiveCampaign itself checks them is unconfirmed: the simulator refuses anything
    else so that the app has to format every value right."""
    kind, options = field["type"], [option for _, option in field["options"]]
    where = f"Field id {field['id']} ({kind})"
    if kind == "date" and not _is_iso_date(value):
        return f"{where}: value {value!r} is not a date written YYYY-MM-DD"
    if kind == "datetime" and not _is_iso_datetime(value):
        return f"{where}: value {value!r} is not an ISO 8601 date-time"
    if kind in SINGLE_OPTION_TYPES and value not in options:
        return f"{where}: value {value!r} is not one of the field's options"
    if kind in MULTI_VALUE_TYPES:
        parts = _multi_value_parts(value)
        if parts is None:
            return f"{where}: value {value!r} is not written ||value||value||"
        unknown = [part for part in parts if part not in options]
        if options and unknown:
            return f"{where}: value {unknown[0]!r} is not one of the field's options"
    return None


def _field_values_problem(entries: Any, fields: dict[str, dict]) -> str | None:
    """Why a bulk contact's `fields` would be refused, or None."""
    shape = "Field 'fields' incorrect format"
    if not isinstance(entries, list):
        return f"{shape}: must be a list"
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != {"id", "value"}:
            return f'{shape}: each entry must be {{"id": <field id>, "value": "<string>"}}'
        field_id = _field_id(entry["id"])
        if field_id is None:
            return f"{shape}: id {entry['id']!r} is not a field id"
        if not isinstance(entry["value"], str):
            return f"{shape}: the value of field id {field_id} must be a string"
        field = fields.get(field_id)
        if field is None:
            return f"Field id {field_id} does not exist"
        if field_id in seen:
            return f"Field id {field_id} is given more than once"
        seen.add(field_id)
        # The empty string clears the field, whatever its type: it is not a value to check.
        problem = _field_value_problem(field, entry["value"]) if entry["value"] != "" else None
        if problem is not None:
            return problem
    return None


def _contact_problem(contact: Any, rejected: Callable[[str], bool],
                     fields: dict[str, dict]) -> str | None:
    """Why ActiveCampaign would refuse this bulk contact, or None."""
    if not isinstance(contact, dict):
        return "Contact must be a JSON object"
    email = contact.get("email")
    if not is_valid_email(email) or rejected(email):
        return EMAIL_INCORRECT
    unknown = sorted(set(contact) - BULK_CONTACT_FIELDS)
    if unknown:
        return f"Field '{unknown[0]}' is not a recognised contact field"
    for name in TEXT_FIELDS:
        if name in contact and not isinstance(contact[name], str):
            return f"Field '{name}' incorrect format"
    tags = contact.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        return "Field 'tags' incorrect format"
    if any(len(tag) > MAX_TAG_LENGTH for tag in tags):
        return f"Field 'tags' incorrect format: a tag is longer than {MAX_TAG_LENGTH} characters"
    problem = _field_values_problem(contact.get("fields", []), fields)
    if problem is not None:
        return problem
    for name in ("subscribe", "unsubscribe"):
        entries = contact.get(name, [])
        if not isinstance(entries, list) or not all(
                isinstance(e, dict) and _is_list_ref(e.get("listid")) for e in entries):
            return f"Field '{name}' incorrect format"
    if not isinstance(contact.get("exclude_automations", False), bool):
        return "Field 'exclude_automations' incorrect format"
    return None


class ActiveCampaignSimulator:
    """One simulated ActiveCampaign account served over HTTP on loopback."""

    def __init__(
        self,
        api_keys: Iterable[str] = ("test-key",),
        lists: dict[str, str] | None = None,
        requests_per_second: int = 5,
        bulk_per_minute: int = 100,
        bulk_single_per_minute: int = 20,
        throttle_status: int = 429,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        error_rate: float = 0.0,
        error_status: int = 500,
        latency: float = 0.0,
        drop_rate: float = 0.0,
        reject_emails: Callable[[str], bool] | Iterable[str] | None = None,
        fields: Iterable[dict] | None = None,
        seed: int = 0,
        import_processing_seconds: float = 0.3,
        import_failure_rate: float = 0.0,
        fail_import_emails: Callable[[str], bool] | Iterable[str] | None = None,
        fail_import_batches: int = 0,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("the simulator binds to loopback only")
        _check_import_settings({"import_processing_seconds": import_processing_seconds,
                                "import_failure_rate": import_failure_rate,
                                "fail_import_batches": fail_import_batches})
        self.host, self.port = "127.0.0.1", port
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._reject: Callable[[str], bool] = lambda email: False
        self._reject_emails: Any = None
        self.api_keys = set(api_keys)
        self.requests_per_second = requests_per_second
        self.bulk_per_minute = bulk_per_minute
        # FACTS: 20 single-contact bulk imports per minute, on top of the multi-contact budget.
        self.bulk_single_per_minute = bulk_single_per_minute
        self.throttle_status = throttle_status
        self.error_rate, self.error_status = error_rate, error_status
        self.latency, self.drop_rate = latency, drop_rate
        self.reject_emails = reject_emails
        self._fail_import: Callable[[str], bool] = lambda email: False
        self._fail_import_emails: Any = None
        self.fail_import_emails = fail_import_emails
        self.import_processing_seconds = import_processing_seconds
        self.import_failure_rate = import_failure_rate
        self.fail_import_batches = fail_import_batches
        self._lists = {str(k): v for k, v in (lists or {}).items()}
        self._contacts: dict[str, dict] = {}  # lower-cased email -> record
        self._email_by_id: dict[str, str] = {}
        # list id -> lower-cased email -> membership. Membership ids ("1", "2", ...) are never
        # reused: a re-subscribe keeps the membership, and so its id.
        self._memberships: dict[str, dict[str, _Membership]] = {k: {} for k in self._lists}
        self._next_membership_id = 1
        self._next_campaign_id = 1  # the made-up emails whose links people unsubscribe from
        self.clock = clock
        self._stamp_second: int | None = None
        self._stamp_text = ""
        self._batches: dict[str, dict] = {}
        # Batches whose outcome is not yet counted in the stats: each is settled (counted once)
        # when first looked at after its processing time, so the counters mean "reported".
        self._unsettled: list[str] = []
        self._failed_emails: set[str] = set()
        self._next_contact_id = 1
        # Custom fields by id, in id order: {"id", "title", "type", "perstag",
        # "options": [(option id, value), ...]}. Ids of fields and of options are never reused.
        self._fields: dict[str, dict] = {}
        self._next_field_id = self._next_option_id = 1
        for spec in fields or ():
            self.add_field(**spec)
        self._fail_rules: list[_FailRule] = []
        # Rate windows (pruned) are separate from the admitted-time history (kept for
        # max_requests_in_window) so reset_stats() never resets the account's budget.
        self._recent: collections.deque[float] = collections.deque()
        self._recent_bulk: collections.deque[float] = collections.deque()
        self._recent_single: collections.deque[float] = collections.deque()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url: str | None = None
        self.reset_stats()

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> str:
        if self._server is not None:
            return self.base_url  # type: ignore[return-value]
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"ac-simulator-{self.port}", daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()  # keep-alive connections would otherwise outlive the server
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ActiveCampaignSimulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- run-time configuration and faults ---------------------------------------------------
    @property
    def reject_emails(self) -> Any:
        return self._reject_emails

    @reject_emails.setter
    def reject_emails(self, value: Callable[[str], bool] | Iterable[str] | None) -> None:
        check = _email_matcher(value)
        with self._lock:
            self._reject_emails, self._reject = value, check

    @property
    def fail_import_emails(self) -> Any:
        """Emails (or a predicate) that an accepted bulk import always reports in `failure`."""
        return self._fail_import_emails

    @fail_import_emails.setter
    def fail_import_emails(self, value: Callable[[str], bool] | Iterable[str] | None) -> None:
        check = _email_matcher(value)
        with self._lock:
            self._fail_import_emails, self._fail_import = value, check

    @property
    def clock(self) -> Callable[[], datetime.datetime]:
        """The simulator's wall clock (UTC now unless set): the source of every cdate, udate and
        sdate it reports. A naive datetime is taken as UTC."""
        return self._clock

    @clock.setter
    def clock(self, value: Callable[[], datetime.datetime] | None) -> None:
        if value is not None and not callable(value):
            raise TypeError("clock must be a callable returning a datetime")
        with self._lock:
            self._clock = value or _utc_now

    def configure(self, **settings: Any) -> None:
        unknown = set(settings) - CONFIGURABLE
        if unknown:
            raise TypeError(f"unknown simulator settings: {sorted(unknown)}")
        _check_import_settings(settings)
        with self._lock:
            for name, value in settings.items():
                setattr(self, name, set(value) if name == "api_keys" else value)

    def fail_next(self, count: int, status: int, path_prefix: str | None = None) -> None:
        """The next `count` admitted API requests whose path starts with `path_prefix` (with or
        without /api/3) are answered `status`, nothing applied."""
        with self._lock:
            self._fail_rules.append(_FailRule(count, status, path_prefix))

    def delete_list(self, list_id: str) -> None:
        """An ActiveCampaign user deletes the list: it answers 404 from now on."""
        with self._lock:
            self._lists.pop(str(list_id))
            self._memberships.pop(str(list_id), None)

    def add_field(self, title: str, type: str, perstag: str | None = None,  # noqa: A002 - AC's name
                  options: Iterable[str] = ()) -> str:
        """An ActiveCampaign user creates a custom field; returns its id ("1", "2", ..., never
        reused). `perstag` defaults to the title upper-cased, non-alphanumerics turned to "_".
        Titles and perstags are unique (case-insensitive), as ActiveCampaign's 422s say."""
        if not isinstance(title, str) or not title.strip():
            raise ValueError("a field needs a non-empty title")
        if type not in FIELD_TYPES:
            raise ValueError(f"unknown field type {type!r}; one of {sorted(FIELD_TYPES)}")
        perstag = _default_perstag(title) if perstag is None else perstag
        if not isinstance(perstag, str) or not perstag.strip():
            raise ValueError("perstag must be a non-empty string")
        if isinstance(options, str):
            raise TypeError("options must be a list of values, not a string")
        values = list(options)
        if values and type not in SINGLE_OPTION_TYPES | MULTI_VALUE_TYPES:
            raise ValueError(f"a {type} field has no options")
        for value in values:
            if not isinstance(value, str) or not value or MULTI_VALUE_DELIMITER in value:
                raise ValueError(f"option {value!r} must be a non-empty string without '||'")
        if len(set(values)) != len(values):
            raise ValueError("options must be unique")
        with self._lock:
            for field in self._fields.values():
                if field["title"].lower() == title.lower():
                    raise ValueError(f"There is already a field named {title!r}")
                if field["perstag"].lower() == perstag.lower():
                    raise ValueError(f"There is already a personalization tag named {perstag!r}")
            field_id = str(self._next_field_id)
            self._next_field_id += 1
            first = self._next_option_id
            self._next_option_id += len(values)
            self._fields[field_id] = {
                "id": field_id, "title": title, "type": type, "perstag": perstag,
                "options": [(str(first + n), value) for n, value in enumerate(values)]}
        return field_id

    def delete_field(self, field_id: str) -> None:
        """An ActiveCampaign user deletes the custom field (KeyError if unknown): every contact's
        value for it goes too, and its id is never given again."""
        field_id = str(field_id)
        with self._lock:
            del self._fields[field_id]
            for record in self._contacts.values():
                record["fields"].pop(field_id, None)

    # ---- inspection --------------------------------------------------------------------------
    def fields(self) -> list[dict]:
        """The custom fields now, in id order: {"id", "title", "type", "perstag", "options":
        [option values]} (copies)."""
        with self._lock:
            return [{"id": field["id"], "title": field["title"], "type": field["type"],
                     "perstag": field["perstag"], "options": [value for _, value in field["options"]]}
                    for field in self._fields.values()]

    def subscribed(self, list_id: str) -> set[str]:
        with self._lock:
            members = self._memberships.get(str(list_id), {})
            return {email for email, member in members.items() if member.status == SUBSCRIBED}

    def unsubscribed(self, list_id: str) -> set[str]:
        with self._lock:
            members = self._memberships.get(str(list_id), {})
            return {email for email, member in members.items() if member.status == UNSUBSCRIBED}

    def memberships(self, email: str) -> dict[str, dict]:
        """The contact's list memberships, list id -> the record GET /api/3/contacts/{id}/contactLists
        reports for it (copies); {} for an unknown contact."""
        with self._lock:
            record = self._contacts.get(email.lower())
            if record is None:
                return {}
            return {list_id: self._membership_body(list_id, record, member)
                    for list_id, member in self._memberships_of_locked(record["email"])}

    def contact(self, email: str) -> dict | None:
        with self._lock:
            record = self._contacts.get(email.lower())
            if record is None:
                return None
            snapshot = dict(record, tags=sorted(record["tags"]), fields=dict(record["fields"]))
            snapshot["lists"] = {
                list_id: "subscribed" if member.status == SUBSCRIBED else "unsubscribed"
                for list_id, member in self._memberships_of_locked(record["email"])}
            return snapshot

    def unsubscribe(self, email: str, list_id: str, via: str = "link",
                    reason: str | None = None) -> None:
        """The person unsubscribes themselves from the list (the contact is created if unknown).

        via="link": from an email's unsubscribe link; `campaign` and `message` name that email
        (made-up ids "1", "2", ..., one more each time; FACTS: inferred, unconfirmed).
        via="form": from a form; `campaign` and `message` null.
        via="user": an ActiveCampaign user does it in the UI; `updated_by` names that user.
        `unsubreason` is `reason` in every case. Whatever the membership was (even unsubscribed
        already, or none), it is now unsubscribed as described, `udate` now."""
        if via not in UNSUBSCRIBE_VIAS:
            raise ValueError(f"via must be one of {UNSUBSCRIBE_VIAS}, not {via!r}")
        if reason is not None and not isinstance(reason, str):
            raise TypeError("reason must be a string or None")
        with self._lock:
            if str(list_id) not in self._lists:
                raise KeyError(f"unknown list {list_id}")
            record, _ = self._upsert_locked(email, {})
            campaign = updated_by = None
            if via == "link":
                campaign = str(self._next_campaign_id)
                self._next_campaign_id += 1
            elif via == "user":
                updated_by = SIMULATOR_USERNAME
            self._unsubscribe_locked(str(list_id), record["email"], overwrite=True,
                                     unsubreason=reason, campaign=campaign, message=campaign,
                                     updated_by=updated_by)

    def add_from_other_source(self, email: str, list_id: str, **fields: str) -> None:
        """Another integration on the account (not a bulk import of this app) adds the contact
        (created if unknown, its `first_name`, `last_name`, `phone`, `customer_acct_name` set
        from `fields`) to the list: an active membership with sourceid SOURCE_OTHER. Like POST
        /contactLists it re-subscribes someone who unsubscribed (other tools do; FACTS). An
        active membership is left as it was. Counted in no stat: it is not this app's traffic."""
        unknown = sorted(set(fields) - set(TEXT_FIELDS))
        if unknown:
            raise TypeError(f"unknown contact fields {unknown}; any of {list(TEXT_FIELDS)}")
        if not all(isinstance(value, str) for value in fields.values()):
            raise TypeError("contact fields are strings")
        if not is_valid_email(email):
            raise ValueError(f"not an email ActiveCampaign accepts: {email!r}")
        with self._lock:
            if str(list_id) not in self._lists:
                raise KeyError(f"unknown list {list_id}")
            record, _ = self._upsert_locked(email, fields, counted=False)
            self._subscribe_locked(str(list_id), record["email"], SOURCE_OTHER, resubscribe=True)

    def batch(self, batch_id: str) -> dict | None:
        """The batch as import/info would report it now, plus its decided `outcome` and the
        number of contacts queued; None for an unknown batchId. Not an API request."""
        with self._lock:
            now = time.monotonic()
            self._settle_locked(now)
            batch = self._batches.get(batch_id)
            if batch is None:
                return None
            return dict(self._report_locked(batch, now), batchId=batch_id,
                        outcome=batch["outcome"], queued_contacts=batch["queued"])

    def failed_emails(self) -> set[str]:
        """Every email (lower-cased, like the contact keys) reported failed by a completed batch."""
        with self._lock:
            self._settle_locked(time.monotonic())
            return set(self._failed_emails)

    def stats(self) -> dict:
        with self._lock:
            self._settle_locked(time.monotonic())
            return dict(self._stats, responses_by_status=dict(self._by_status),
                        contacts=len(self._contacts))

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = dict.fromkeys(STAT_KEYS, 0)
            self._by_status: collections.Counter[str] = collections.Counter()
            self._admitted: list[float] = []
            self._bulk_admitted: list[float] = []

    def bulk_timestamps(self) -> list[float]:
        with self._lock:
            return list(self._bulk_admitted)

    def request_timestamps(self) -> list[float]:
        with self._lock:
            return list(self._admitted)

    def max_requests_in_window(self, window_seconds: float, bulk_only: bool = False) -> int:
        """Most admitted requests whose times lie within less than `window_seconds` of each other
        (the simulator's own windows admit at most the limit in any such span)."""
        times = self.bulk_timestamps() if bulk_only else self.request_timestamps()
        best = start = 0
        for end, moment in enumerate(times):
            while moment - times[start] >= window_seconds:
                start += 1
            best = max(best, end - start + 1)
        return best

    # ---- request pipeline ---------------------------------------------------------------------
    def _count_connection(self) -> None:
        with self._lock:
            self._stats["connections"] += 1

    def handle_api(self, method: str, path: str, query: dict, headers: Any, body: bytes) -> Any:
        """Answer one API request: a Reply, or DROP. Counts every response."""
        if self.latency:
            time.sleep(self.latency)
        reply = self._dispatch(method, path, query, headers, body)
        with self._lock:
            if reply is DROP:
                self._stats["dropped"] += 1
            else:
                self._stats["responses"] += 1
                self._by_status[str(reply.status)] += 1
                if reply.status == 404:
                    self._stats["not_found"] += 1
        return reply

    def _dispatch(self, method: str, path: str, query: dict, headers: Any, body: bytes) -> Any:
        if path != API_PREFIX and not path.startswith(API_PREFIX + "/"):
            return Reply(404, {"message": f"No route for {method} {path}"})
        route = path[len(API_PREFIX):].rstrip("/") or "/"
        with self._lock:
            authorised = headers.get("Api-Token") in self.api_keys
            if not authorised:
                # Rejected before admission: a request without a valid key is tied to no account,
                # so it spends no budget. Body text is the simulator's choice (unconfirmed).
                self._stats["forbidden"] += 1
                return Reply(403, {"message": "No Result found for User with id 0"})
        is_bulk = method == "POST" and route == "/import/bulk_import"
        parsed = _parse_json(body)
        single = is_bulk and isinstance(parsed, dict) and isinstance(
            parsed.get("contacts"), list) and len(parsed["contacts"]) == 1
        with self._lock:
            refused, remaining = self._admit_locked(time.monotonic(), is_bulk, single)
            if refused is not None:
                return refused
            fault = self._pick_fault_locked(path, route)
        if fault is DROP:
            return DROP
        rate_headers = {"RateLimit-Limit": str(self.requests_per_second),
                        "RateLimit-Remaining": str(remaining)}
        reply = fault or self._route(method, route, query, body, parsed)
        reply.headers = {**rate_headers, **reply.headers}
        return reply

    def _admit_locked(self, now: float, is_bulk: bool, single: bool) -> tuple[Reply | None, int]:
        """Sliding windows: a request is admitted when fewer than the limit were admitted in the
        last second (and minute, for bulk). Requests refused with 429/503 or the bulk 400 are NOT
        admitted and spend no budget: a client hammering the API while throttled is still only
        charged for what got through, and max_requests_in_window() measures exactly that."""
        for window, span in ((self._recent, 1.0), (self._recent_bulk, BULK_WINDOW_SECONDS),
                             (self._recent_single, BULK_WINDOW_SECONDS)):
            while window and window[0] <= now - span:
                window.popleft()
        limit = self.requests_per_second
        if len(self._recent) >= limit:
            self._stats["throttled_429"] += 1
            if self.throttle_status != 429:
                # Accounts that answer bursts with 503 send no Retry-After: the client must back
                # off on its own.
                return Reply(self.throttle_status, {"message": "Service Unavailable"}), 0
            retry_after = max(1, math.ceil(self._recent[0] + 1.0 - now))
            return Reply(429, {"message": "Too Many Requests"}, {
                "Retry-After": str(retry_after), "RateLimit-Limit": str(limit),
                "RateLimit-Remaining": "0"}), 0
        if is_bulk:
            for window, bulk_limit in ((self._recent_bulk, self.bulk_per_minute),
                                       (self._recent_single, self.bulk_single_per_minute)):
                if window is self._recent_single and not single:
                    continue
                if len(window) >= bulk_limit:
                    self._stats["throttled_bulk"] += 1
                    return Reply(400, _bulk_rate_limit_body(bulk_limit)), 0
        # Bulk requests count against the general budget too (FACTS: assume they do).
        self._recent.append(now)
        self._admitted.append(now)
        self._stats["requests"] += 1
        if is_bulk:
            self._recent_bulk.append(now)
            self._bulk_admitted.append(now)
            self._stats["bulk_requests"] += 1
            if single:
                self._recent_single.append(now)
        return None, limit - len(self._recent)

    def _pick_fault_locked(self, path: str, route: str) -> Any:
        # Faults come after admission: a failed request still spent the account's budget.
        for rule in self._fail_rules:
            prefix = rule.path_prefix
            if prefix is None or path.startswith(prefix) or route.startswith(prefix):
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._fail_rules.remove(rule)
                self._stats["errors_injected"] += 1
                headers = {"Retry-After": "1"} if rule.status == 429 else {}
                return Reply(rule.status, {"message": f"Injected fault ({rule.status})"}, headers)
        if self.drop_rate and self._rng.random() < self.drop_rate:
            return DROP
        if self.error_rate and self._rng.random() < self.error_rate:
            self._stats["errors_injected"] += 1
            return Reply(self.error_status, {"message": f"Injected error ({self.error_status})"})
        return None

    def _route(self, method: str, route: str, query: dict, body: bytes, parsed: Any) -> Reply:
        if method == "GET":
            if route == "/users/me":
                return Reply(200, {"user": {
                    "username": SIMULATOR_USERNAME, "firstName": "Sim", "lastName": "Ulator",
                    "email": "simulator@example.com", "phone": "", "signature": None, "id": "1"}})
            if route == "/lists":
                return self._get_lists(query)
            match = re.fullmatch(r"/lists/([^/]+)", route)
            if match:
                return self._get_list(match.group(1))
            if route == "/fields":
                return self._get_fields(query)
            if route == "/contacts":
                return self._get_contacts(query)
            match = re.fullmatch(r"/contacts/([^/]+)/contactLists", route)
            if match:
                return self._get_contact_memberships(match.group(1))
            if route == "/import/info":
                return self._import_info(query)
        elif method == "POST":
            if route == "/import/bulk_import":
                return self._bulk_import(body, parsed)
            if route == "/contact/sync":
                return self._contact_sync(parsed)
            if route == "/contactLists":
                return self._contact_lists(parsed)
        return Reply(404, {"message": f"No route for {method} {API_PREFIX}{route}"})

    # ---- endpoints ---------------------------------------------------------------------------
    @staticmethod
    def _int_param(query: dict, name: str, default: int) -> int:
        try:
            return max(0, int(query.get(name, [default])[0]))
        except ValueError:
            return default

    def _list_body(self, list_id: str) -> dict:
        name = self._lists[list_id]
        return {"id": list_id, "name": name, "stringid": _slug(name), "userid": "1"}

    @classmethod
    def _page_bounds(cls, query: dict) -> tuple[int, int]:
        """(offset, limit) of a v3 list: limit 20 by default, capped at 100."""
        return cls._int_param(query, "offset", 0), min(100, cls._int_param(query, "limit", 20) or 20)

    def _get_lists(self, query: dict) -> Reply:
        offset, limit = self._page_bounds(query)
        with self._lock:
            ids = sorted(self._lists, key=lambda i: (not i.isdigit(), int(i) if i.isdigit() else 0, i))
            page = [self._list_body(i) for i in ids[offset:offset + limit]]
        return Reply(200, {"lists": page, "meta": {"total": str(len(ids))}})

    def _get_fields(self, query: dict) -> Reply:
        offset, limit = self._page_bounds(query)
        with self._lock:
            fields = list(self._fields.values())
            page = fields[offset:offset + limit]
            items = [{"id": field["id"], "title": field["title"], "type": field["type"],
                      "perstag": field["perstag"], "descript": None, "isrequired": "0",
                      "options": [option_id for option_id, _ in field["options"]]}
                     for field in page]
            # Side-loaded: the options of the fields on this page only.
            options = [{"id": option_id, "field": field["id"], "orderid": str(order),
                        "value": value, "label": value, "isdefault": "0"}
                       for field in page
                       for order, (option_id, value) in enumerate(field["options"], start=1)]
        return Reply(200, {"fields": items, "fieldOptions": options, "fieldRels": [],
                           "meta": {"total": str(len(fields))}})

    def _get_list(self, list_id: str) -> Reply:
        with self._lock:
            if list_id not in self._lists:
                return Reply(404, {"message": f"No Result found for _List with id {list_id}"})
            return Reply(200, {"list": self._list_body(list_id)})

    def _import_info(self, query: dict) -> Reply:
        batch_id = query.get("batchId", [""])[0]
        if not batch_id:
            return Reply(400, {"success": 0, "message": "'batchId' is a required field."})
        with self._lock:
            now = time.monotonic()
            self._settle_locked(now)
            batch = self._batches.get(batch_id)
            if batch is None:
                return Reply(404, {"message": f"No Result found for import with batchId {batch_id}"})
            self._stats["import_info_requests"] += 1
            return Reply(200, self._report_locked(batch, now))

    @staticmethod
    def _report_locked(batch: dict, now: float) -> dict:
        """The import/info body at `now`: false for the first third of the processing time
        (FACTS: false right after the POST), then waiting, active, and the outcome."""
        elapsed = now - batch["posted"]
        duration = batch["ready_at"] - batch["posted"]
        if elapsed < duration:
            status: Any = False if elapsed < duration / 3 else (
                "waiting" if elapsed < 2 * duration / 3 else "active")
            return {"status": status, "success": [], "failure": []}
        return {"status": batch["outcome"], "success": list(batch["success"]),
                "failure": list(batch["failure"])}

    def _settle_locked(self, now: float) -> None:
        """Count the outcome of every batch whose processing time has passed, once."""
        pending = []
        for batch_id in self._unsettled:
            batch = self._batches[batch_id]
            if now < batch["ready_at"]:
                pending.append(batch_id)
                continue
            if batch["outcome"] == "failed":
                self._stats["batches_failed"] += 1
            self._stats["contacts_failed"] += len(batch["failure"])
            self._failed_emails.update(email.lower() for email in batch["failure"])
        self._unsettled = pending

    def _oversize(self, detail: str) -> Reply:
        with self._lock:
            self._stats["oversize_rejections"] += 1
        return Reply(400, {"success": 0, "message": (
            "Request exceeds the documented bulk_import limits (1 to 250 contacts, at most "
            f"400,000 bytes): {detail}. The import was not queued for processing."),
            "failureReasons": [detail]})

    def _malformed(self, detail: str) -> Reply:
        with self._lock:
            self._stats["malformed_rejections"] += 1
        return Reply(400, {"success": 0, "message": detail, "failureReasons": [detail]})

    def _bulk_import(self, body: bytes, parsed: Any) -> Reply:
        # Past 250 contacts or 400,000 bytes ActiveCampaign's behaviour is undocumented; the
        # simulator refuses it outright so a client that oversteps is caught.
        if len(body) > MAX_BULK_BYTES:
            return self._oversize(f"body of {len(body)} bytes")
        if not isinstance(parsed, dict):
            return self._malformed("Request body must be a JSON object.")
        unknown = sorted(set(parsed) - BULK_TOP_LEVEL_FIELDS)
        if unknown:
            return self._malformed(f"Unknown field '{unknown[0]}'.")
        contacts = parsed.get("contacts")
        if not isinstance(contacts, list):
            return self._malformed("Field 'contacts' must be a list.")
        if not 1 <= len(contacts) <= MAX_BULK_CONTACTS:
            return self._oversize(f"{len(contacts)} contacts")
        with self._lock:
            failures = [{"contact": index, "failureReason": problem}
                        for index, contact in enumerate(contacts)
                        if (problem := _contact_problem(contact, self._reject, self._fields)) is not None]
            if failures:  # one bad row rejects the whole request; nothing is applied
                self._stats["validation_rejections"] += 1
                return Reply(400, {"success": 0, "message": VALIDATION_MESSAGE,
                                   "failureReasons": failures})
            # Strict assumption of the simulator (ActiveCampaign does not document it): naming an
            # unknown list refuses the whole request with the list's 404.
            for contact in contacts:
                for entry in contact.get("subscribe", []) + contact.get("unsubscribe", []):
                    if str(entry["listid"]) not in self._lists:
                        return Reply(404, {
                            "message": f"No Result found for _List with id {entry['listid']}"})
            # Outcomes are decided now and reported after import_processing_seconds (docstring).
            now = time.monotonic()
            created_ids: list[str] = []
            failed: list[str] = []
            if self.fail_import_batches > 0:
                # The whole batch fails: nothing processed, so neither success nor failure.
                self.fail_import_batches -= 1
                outcome = "failed"
            else:
                outcome = "completed"
                for contact in contacts:
                    # The rng is drawn only when a rate is set, so seeded runs without one keep
                    # their fault sequence.
                    if self._fail_import(contact["email"]) or (
                            self.import_failure_rate
                            and self._rng.random() < self.import_failure_rate):
                        failed.append(contact["email"])
                        continue
                    record, created = self._apply_bulk_contact(contact)
                    if created:
                        created_ids.append(record["id"])
            batch_id = str(uuid.uuid4())
            self._batches[batch_id] = {
                "posted": now, "ready_at": now + self.import_processing_seconds,
                "outcome": outcome, "success": created_ids, "failure": failed,
                "queued": len(contacts)}
            self._unsettled.append(batch_id)
            self._stats["bulk_accepted"] += 1
            self._stats["contacts_imported"] += len(contacts)
        return Reply(200, {"Success": 1, "queued_contacts": len(contacts), "batchId": batch_id,
                           "message": "Contact import queued"})

    def _apply_bulk_contact(self, contact: dict) -> tuple[dict, bool]:
        updates = {name: contact[name] for name in TEXT_FIELDS if name in contact}
        record, created = self._upsert_locked(contact["email"], updates)
        record["tags"].update(contact.get("tags", []))  # an import only ever adds tags
        for field in contact.get("fields", []):
            if field["value"] == "":
                record["fields"].pop(_field_id(field["id"]), None)  # "" clears the field
            else:
                record["fields"][_field_id(field["id"])] = field["value"]
        # Only the per-contact flag counts (where the docs put it): a top-level
        # exclude_automations is accepted but, its placement unconfirmed, changes nothing here.
        if contact.get("exclude_automations") is True:
            self._stats["automations_excluded"] += 1
        else:
            self._stats["automations_started"] += 1
        for entry in contact.get("subscribe", []):
            # FACTS: contacts who unsubscribed are not re-subscribed by an import.
            if self._subscribe_locked(str(entry["listid"]), record["email"], SOURCE_BULK_IMPORT,
                                      resubscribe=False) == "skipped":
                self._stats["resubscribe_skipped"] += 1
        for entry in contact.get("unsubscribe", []):
            # What an API unsubscribe leaves in campaign, message and unsubreason is not
            # documented (FACTS); the simulator leaves them null, so they cannot be told from a
            # form unsubscribe without a reason. A contact not on the list gets an unsubscribed
            # membership all the same (the strictest reading: the import records the opt-out, and
            # a later subscribe will not add them).
            if self._unsubscribe_locked(str(entry["listid"]), record["email"]):
                self._stats["unsubscribed_by_import"] += 1
        return record, created

    def _upsert_locked(self, email: str, updates: dict, counted: bool = True) -> tuple[dict, bool]:
        key = email.lower()
        record = self._contacts.get(key)
        created = record is None
        stamp = self._stamp_locked()
        if created:
            record = {"id": str(self._next_contact_id), "email": key, "first_name": "",
                      "last_name": "", "phone": "", "customer_acct_name": "", "tags": set(),
                      "fields": {}, "cdate": stamp}
            self._next_contact_id += 1
            self._contacts[key] = record
            self._email_by_id[record["id"]] = key
            if counted:
                self._stats["contacts_created"] += 1
        record.update(updates)
        record["udate"] = stamp
        return record, created

    # ---- memberships ---------------------------------------------------------------------------
    def _stamp_locked(self) -> str:
        """Now, as ActiveCampaign writes times ("2024-05-31T14:30:00-05:00"), in UTC. One string
        per second is shared by every record written in it."""
        now = self._clock()
        now = now.replace(tzinfo=datetime.UTC) if now.tzinfo is None else now.astimezone(datetime.UTC)
        second = math.floor(now.timestamp())
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp_text = now.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        return self._stamp_text

    def _memberships_of_locked(self, email: str) -> list[tuple[str, _Membership]]:
        """(list id, membership) of the contact, in membership id order."""
        found = [(list_id, members[email]) for list_id, members in self._memberships.items()
                 if email in members]
        return sorted(found, key=lambda pair: int(pair[1].id))

    def _new_membership_locked(self, list_id: str, email: str, status: int, sdate: str | None,
                               sourceid: str) -> _Membership:
        member = _Membership(str(self._next_membership_id), status, sdate, sourceid)
        self._next_membership_id += 1
        self._memberships[list_id][email] = member
        return member

    def _subscribe_locked(self, list_id: str, email: str, sourceid: str, resubscribe: bool) -> str:
        """Make the membership active: "created", "active" (it was: left unchanged, its sdate and
        sourceid kept), "skipped" (unsubscribed and `resubscribe` false: left unsubscribed) or
        "resubscribed" (sdate now, sourceid given; udate, unsubreason, campaign, message and
        updated_by cleared: the simulator's choice, unconfirmed)."""
        member = self._memberships[list_id].get(email)
        if member is None:
            self._new_membership_locked(list_id, email, SUBSCRIBED, self._stamp_locked(), sourceid)
            return "created"
        if member.status == SUBSCRIBED:
            return "active"
        if not resubscribe:
            return "skipped"
        member.status, member.sdate, member.sourceid = SUBSCRIBED, self._stamp_locked(), sourceid
        member.udate = member.unsubreason = member.campaign = member.message = None
        member.updated_by = None
        return "resubscribed"

    def _unsubscribe_locked(self, list_id: str, email: str, overwrite: bool = False,
                            unsubreason: str | None = None, campaign: str | None = None,
                            message: str | None = None, updated_by: str | None = None) -> bool:
        """Make the membership unsubscribed, udate now and the other details as given; one that
        never was active (none yet) gets sdate null. An unsubscribed membership is left as it was
        (its first udate and details kept) unless `overwrite`. True when something changed."""
        member = self._memberships[list_id].get(email)
        if member is None:
            member = self._new_membership_locked(list_id, email, UNSUBSCRIBED, None,
                                                 SOURCE_BULK_IMPORT)
        elif member.status == UNSUBSCRIBED and not overwrite:
            return False
        member.status, member.udate = UNSUBSCRIBED, self._stamp_locked()
        member.unsubreason, member.campaign, member.message = unsubreason, campaign, message
        member.updated_by = updated_by
        return True

    @staticmethod
    def _membership_body(list_id: str, record: dict, member: _Membership) -> dict:
        """A membership as GET /api/3/contacts/{id}/contactLists reports it: strings or null."""
        return {"contact": record["id"], "list": list_id, "form": None, "seriesid": "0",
                "sdate": member.sdate, "udate": member.udate, "status": str(member.status),
                "responder": "1", "sync": "0", "unsubreason": member.unsubreason,
                "campaign": member.campaign, "message": member.message,
                "first_name": record["first_name"], "last_name": record["last_name"],
                "sourceid": member.sourceid, "created_by": None, "updated_by": member.updated_by,
                "unsubscribeAutomation": None, "automation": None, "id": member.id}

    @staticmethod
    def _camel(record: dict) -> dict:
        """A contact in v3 form (camelCase, strings)."""
        return {"id": record["id"], "email": record["email"], "firstName": record["first_name"],
                "lastName": record["last_name"], "phone": record["phone"], "orgid": "0",
                "cdate": record["cdate"], "udate": record["udate"], "deleted": "0",
                "anonymized": "0"}

    def _contact_sync(self, parsed: Any) -> Reply:
        contact = parsed.get("contact") if isinstance(parsed, dict) else None
        email = contact.get("email") if isinstance(contact, dict) else None
        if not is_valid_email(email) or self._reject(email):
            return Reply(422, {"errors": [{
                "title": "Contact Email Address is not valid.", "detail": "",
                "code": "email_invalid", "source": {"pointer": "/data/attributes/email"}}]})
        updates = {snake: contact[camel] for camel, snake in (
            ("firstName", "first_name"), ("lastName", "last_name"), ("phone", "phone"))
            if isinstance(contact.get(camel), str)}
        with self._lock:
            record, created = self._upsert_locked(email, updates)
            field_values = contact.get("fieldValues")
            for value in field_values if isinstance(field_values, list) else []:
                if isinstance(value, dict) and "field" in value:
                    record["fields"][str(value["field"])] = value.get("value")
            return Reply(201 if created else 200, {"contact": self._camel(record), "fieldValues": []})

    def _contact_lists(self, parsed: Any) -> Reply:
        entry = parsed.get("contactList") if isinstance(parsed, dict) else None
        if not isinstance(entry, dict):
            return Reply(422, {"errors": [{"title": "Missing attribute", "detail": "", "code": "missing",
                                           "source": {"pointer": "/data/attributes/contactList"}}]})
        list_id, contact_id = str(entry.get("list")), str(entry.get("contact"))
        try:
            status = int(entry.get("status"))
        except (TypeError, ValueError):
            status = 0
        if status not in (SUBSCRIBED, UNSUBSCRIBED):
            return Reply(422, {"errors": [{"title": "Invalid status", "detail": "status must be 1 or 2",
                                           "code": "invalid", "source": {"pointer": "/data/attributes/status"}}]})
        sourceid = entry.get("sourceid", SOURCE_CONTACT_LISTS)
        if isinstance(sourceid, int) and not isinstance(sourceid, bool) and sourceid >= 0:
            sourceid = str(sourceid)
        elif not (isinstance(sourceid, str) and _DIGITS.match(sourceid)):
            return Reply(422, {"errors": [{"title": "Invalid sourceid", "detail": "sourceid must be an integer",
                                           "code": "invalid", "source": {"pointer": "/data/attributes/sourceid"}}]})
        with self._lock:
            if list_id not in self._lists:
                return Reply(404, {"message": f"No Result found for _List with id {list_id}"})
            email = self._email_by_id.get(contact_id)
            if email is None:
                return Reply(404, {"message": f"No Result found for Subscriber with id {contact_id}"})
            members = self._memberships[list_id]
            existed = email in members
            if status == SUBSCRIBED:
                # Unlike bulk import, status 1 here re-subscribes someone who unsubscribed (FACTS),
                # with the body's sourceid (the reference asks for 4 then). An active membership
                # is left as it was, sourceid included.
                if self._subscribe_locked(list_id, email, sourceid, resubscribe=True) == "resubscribed":
                    self._stats["resubscribed_by_api"] += 1
            else:
                # Like a bulk unsubscribe: campaign, message and unsubreason null (undocumented).
                self._unsubscribe_locked(list_id, email)
            record = self._contacts[email]
            body = {"contactList": self._membership_body(list_id, record, members[email]),
                    "contacts": [self._camel(record)]}
        return Reply(200 if existed else 201, body)

    def _get_contacts(self, query: dict) -> Reply:
        """GET /contacts, paged in id order; `email` an exact, case-insensitive match (ActiveCampaign
        has email_like for partial ones; not simulated)."""
        offset, limit = self._page_bounds(query)
        with self._lock:
            if "email" in query:
                record = self._contacts.get(query["email"][0].lower())
                matches: list[dict] = [] if record is None else [record]
                page = matches[offset:offset + limit]
                total = len(matches)
            else:
                page = list(itertools.islice(self._contacts.values(), offset, offset + limit))
                total = len(self._contacts)
            self._stats["contact_search_requests"] += 1
            return Reply(200, {"contacts": [self._camel(record) for record in page],
                               "meta": {"total": str(total)}})

    def _get_contact_memberships(self, contact_id: str) -> Reply:
        with self._lock:
            email = self._email_by_id.get(contact_id)
            if email is None:
                return Reply(404, {"message": f"No Result found for Subscriber with id {contact_id}"})
            self._stats["contact_lists_requests"] += 1
            record = self._contacts[email]
            return Reply(200, {"contactLists": [
                self._membership_body(list_id, record, member)
                for list_id, member in self._memberships_of_locked(email)]})

    def handle_inspection(self, method: str, path: str) -> Reply:
        """/__sim/...: read-only, no key, outside the rate budget and the counters."""
        if method == "GET" and path.rstrip("/") == "/__sim/stats":
            return Reply(200, self.stats())
        match = re.fullmatch(r"/__sim/lists/([^/]+)/?", path)
        if method == "GET" and match:
            list_id = match.group(1)
            with self._lock:
                if list_id not in self._lists:
                    return Reply(404, {"message": f"No Result found for _List with id {list_id}"})
            return Reply(200, {"listId": list_id, "subscribed": sorted(self.subscribed(list_id)),
                               "unsubscribed": sorted(self.unsubscribed(list_id))})
        return Reply(404, {"message": f"No inspection route for {method} {path}"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a requests.Session reuses its connection
    disable_nagle_algorithm = True  # otherwise Nagle + delayed ACK add ~40 ms per reply
    server_version = "ActiveCampaignSimulator/1.0"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass  # benchmarks send thousands of requests; per-request stderr lines are noise

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, opened=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, opened=False)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _read_body(self) -> bytes:
        # The whole body is always read, even for requests refused early: leftover bytes would
        # be parsed as the next request on this kept-alive connection.
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_REQUEST_BYTES:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_REQUEST_BYTES:
            raise ValueError("bad Content-Length")
        return self.rfile.read(length) if length else b""

    def _serve(self, method: str) -> None:
        simulator = self.server.simulator
        try:
            body = self._read_body()
        except ValueError as exc:
            self.close_connection = True
            self._send(Reply(400, {"message": f"Malformed request: {exc}"}))
            return
        split = urlsplit(self.path)
        if split.path.startswith("/__sim/"):
            reply = simulator.handle_inspection(method, split.path)
        else:
            # Blank values kept: GET /contacts?email= searches for "" (and finds nobody).
            reply = simulator.handle_api(method, split.path,
                                         parse_qs(split.query, keep_blank_values=True),
                                         self.headers, body)
        if reply is DROP:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        data = b"" if reply.body is None else json.dumps(reply.body).encode("utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # benchmarks open many connections at once

    def __init__(self, address: tuple[str, int], simulator: ActiveCampaignSimulator) -> None:
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, opened: bool) -> None:
        with self._connections_lock:
            if opened:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)
        if opened:
            self.simulator._count_connection()

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _parse_list_option(value: str) -> tuple[str, str]:
    list_id, _, name = value.partition(":")
    if not list_id:
        raise argparse.ArgumentTypeError("expected ID or ID:Name")
    return list_id, name or f"List {list_id}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.activecampaign",
        description="Serve an ActiveCampaign API v3 simulator on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8800, help="0 picks a free port")
    parser.add_argument("--api-key", action="append", required=True, help="repeatable")
    parser.add_argument("--list", action="append", type=_parse_list_option, default=[],
                        metavar="ID[:NAME]", help="repeatable")
    parser.add_argument("--requests-per-second", type=int, default=5)
    parser.add_argument("--bulk-per-minute", type=int, default=100)
    parser.add_argument("--bulk-single-per-minute", type=int, default=20)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--error-status", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds")
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--throttle-status", type=int, choices=(429, 503), default=429)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--import-processing-seconds", type=float, default=0.3,
                        help="time until import/info reports a batch completed")
    parser.add_argument("--import-failure-rate", type=float, default=0.0,
                        help="share of contacts of accepted batches reported failed (0..1)")
    args = parser.parse_args(argv)
    simulator = ActiveCampaignSimulator(
        api_keys=args.api_key, lists=dict(args.list), port=args.port,
        requests_per_second=args.requests_per_second, bulk_per_minute=args.bulk_per_minute,
        bulk_single_per_minute=args.bulk_single_per_minute, throttle_status=args.throttle_status,
        error_rate=args.error_rate, error_status=args.error_status, latency=args.latency,
        drop_rate=args.drop_rate, seed=args.seed,
        import_processing_seconds=args.import_processing_seconds,
        import_failure_rate=args.import_failure_rate)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    url = simulator.start()
    print(f"ActiveCampaign simulator on {url} (lists: {', '.join(id for id, _ in args.list)})",
          flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
