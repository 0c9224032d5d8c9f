"""The one exception hierarchy of the product.

Services and the run's steps raise these; they know nothing of HTTP. The bindings translate them
with one table (exports/functions/errors.py), the CLI prints their message. Every message is
safe to show: it names records and fields, never a secret or a profile's values.
"""
from __future__ import annotations


class ExportsError(Exception):
    """Base of every error a caller can act on; `details` is extra structure for API answers."""

    def __init__(self, message: str, details: object = None):
        super().__init__(message)
        self.message = message
        self.details = details


# --- the request or the configuration ------------------------------------------------------------
class Invalid(ExportsError):
    """Fields to fix; `problems` lists {"field", "message"} pairs."""

    def __init__(self, problems: list[dict[str, str]]):
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"the request is not valid: {summary}{more}", details=problems)
        self.problems = problems


class NotSignedIn(ExportsError):
    """The caller is not identified."""


class Forbidden(ExportsError):
    """The caller is identified but has no role that allows this."""


class NotFound(ExportsError):
    """A record that does not exist, or that the caller may not see (the same answer, on purpose)."""

    kind = "record"

    def __init__(self, record_id: str, message: str | None = None):
        super().__init__(message or f"{self.kind} {record_id!r} does not exist")
        self.record_id = record_id


class ConnectionNotFound(NotFound):
    kind = "connection"


class ExportNotFound(NotFound):
    kind = "export"


class RunNotFound(NotFound):
    kind = "run"


class RejectsNotFound(NotFound):
    kind = "rejects report"


class PreviewNotFound(NotFound):
    kind = "preview"


class PieceNotFound(NotFound):
    """A segment or chunk row of a run that does not exist (the run was removed, or never planned it)."""

    kind = "piece"


# --- the state of records --------------------------------------------------------------------------
class Conflict(ExportsError):
    """The request is understood but the records' state does not allow it now."""


class RunInProgress(Conflict):
    def __init__(self, run_id: str):
        super().__init__(f"run {run_id} of this export is still queued or running; wait for it to finish or cancel it",
                         details={"runId": run_id})
        self.run_id = run_id


class ExportDisabled(Conflict):
    pass


class ConnectionMissing(Conflict):
    pass


class ConnectionInUse(Conflict):
    pass


class ConnectionUnusable(Conflict):
    pass


class RejectsTooLarge(Conflict):
    """The rejects report is larger than one HTTP answer may carry; the CLI fetches any size."""


class PreviewTooLarge(Conflict):
    """A dry run's preview is larger than one HTTP answer may carry; the CLI fetches any size."""


class RunFinished(Conflict):
    def __init__(self, run_id: str, status: str):
        super().__init__(f"run {run_id} already finished with status {status}; only a queued or running run can be "
                         "cancelled", details={"runId": run_id, "status": status})
        self.run_id = run_id
        self.status = status


class RunNotHeld(Conflict):
    def __init__(self, run_id: str, status: str):
        super().__init__(f"run {run_id} has status {status}; only a run whose leaver actions the guardrail holds "
                         "(needs_approval) can be approved", details={"runId": run_id, "status": status})


class RunSuperseded(Conflict):
    def __init__(self, run_id: str, newer: str):
        super().__init__(f"run {run_id} was superseded by run {newer} of the same export, which works out its own "
                         "leavers: approve that one if it is held", details={"runId": run_id, "newerRunId": newer})


# --- services this product depends on --------------------------------------------------------------
class Unavailable(ExportsError):
    """A service the request needs did not answer as it should; nothing was changed."""


class KeyVaultUnavailable(Unavailable):
    pass


class ActiveCampaignThrottled(Unavailable):
    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class ActiveCampaignUnreachable(Unavailable):
    pass


class ActiveCampaignFailed(Unavailable):
    pass


# --- ActiveCampaign's API, as its client reports it (exports/activecampaign/client.py) ------------
class ActiveCampaignError(ExportsError):
    """An answer of ActiveCampaign's API; the text never contains the API key."""


class Fatal(ActiveCampaignError):
    """Retrying cannot help (key rejected, list gone, payment problem): stop and report."""


class KeyRejected(Fatal):
    pass


class MissingInAccount(Fatal):
    """ActiveCampaign answered 404: the account has no such list (or no such API at this host)."""


class AddressNotPublic(Fatal):
    """The hostname resolves to an address off the public internet; nothing was sent to it."""


class Unreachable(Fatal):
    """ActiveCampaign has not answered at all for longer than the app waits (ACTIVECAMPAIGN_UNREACHABLE_SECONDS)."""


class Transient(ActiveCampaignError):
    """Throttling, server errors or a broken connection: worth retrying after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float | None = None, throttled: bool = False,
                 unreachable: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.throttled = throttled
        self.unreachable = unreachable  # no answer at all: connection refused, no DNS answer, time-out


class ImportRejected(ActiveCampaignError):
    """The whole batch was refused for invalid contacts; `failures` maps batch index -> reason."""

    def __init__(self, message: str, failures: dict[int, str]):
        super().__init__(message)
        self.failures = failures


# --- segments -------------------------------------------------------------------------------------
class SegmentError(ExportsError):
    """A segment blob as a whole cannot be read as this segment (the run fails with this message)."""


class MissingColumns(SegmentError):
    """Mapped columns the blob does not have; `missing` names them."""

    def __init__(self, message: str, missing: list[str]):
        super().__init__(message)
        self.missing = missing
