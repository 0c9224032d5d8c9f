"""The scheduled refresh: start a run of every enabled export."""
from __future__ import annotations

import azure.functions as func

from exports import pipeline
from exports.context import get_context
from exports.runs import ActiveRunConflict
from shared.logging import get_logger

bp = func.Blueprint()
log = get_logger(__name__)


def start_scheduled_runs(ctx) -> dict[str, str]:
    """Export id -> run id started, or the reason it was skipped."""
    outcome = {}
    for export in ctx.config.list_exports():
        if not export.enabled:
            continue
        try:
            outcome[export.id] = pipeline.start_run(ctx, export.id, trigger="timer")
        except ActiveRunConflict as conflict:
            outcome[export.id] = f"skipped: run {conflict.run_id} is still queued or running"
            log.warning("scheduled run of export %s skipped: run %s is still queued or running", export.id, conflict.run_id)
        except Exception:  # one broken export must not keep the others from their refresh
            outcome[export.id] = "skipped: could not start, see the log"
            log.exception("scheduled run of export %s could not start", export.id)
    return outcome


@bp.timer_trigger(arg_name="timer", schedule="%EXPORT_SCHEDULE%", run_on_startup=False, use_monitor=True)
def scheduled_exports(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.info("the schedule is running late; starting the runs now")
    start_scheduled_runs(get_context())
