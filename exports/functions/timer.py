"""Timers: the scheduled refresh (a run of every enabled export on EXPORT_SCHEDULE) and the retention sweep."""
from __future__ import annotations

import logging

import azure.functions as func

from exports.context import get_context
from exports.services.retention import sweep_expired_runs, sweep_orphaned_states
from exports.services.runs import start_scheduled_runs

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.timer_trigger(arg_name="timer", schedule="%EXPORT_SCHEDULE%", run_on_startup=False, use_monitor=True)
def scheduled_exports(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.info("the schedule is running late; starting the runs now")
    start_scheduled_runs(get_context())


# Daily, at a quiet time; the retention period is counted in days, so once a day is enough.
RETENTION_SCHEDULE = "0 40 2 * * *"


@bp.timer_trigger(arg_name="timer", schedule=RETENTION_SCHEDULE, run_on_startup=False, use_monitor=True)
def retention_sweep(timer: func.TimerRequest) -> None:
    ctx = get_context()
    sweep_expired_runs(ctx)
    sweep_orphaned_states(ctx)
