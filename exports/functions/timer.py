"""Timers: the scheduler (each enabled export on its own schedule, else EXPORT_SCHEDULE) and the retention sweep."""
from __future__ import annotations

import logging

import azure.functions as func

from exports.context import get_context
from exports.services.retention import sweep_expired_runs, sweep_orphaned_states
from exports.services.runs import start_scheduled_runs

bp = func.Blueprint()
log = logging.getLogger(__name__)


# Every minute, the smallest granularity of an export's schedule: each tick starts the exports that
# have an occurrence not started yet (exports/services/runs.py), so a late or missed tick loses nothing.
SCHEDULER_TICK = "0 * * * * *"


@bp.timer_trigger(arg_name="timer", schedule=SCHEDULER_TICK, run_on_startup=False, use_monitor=True)
def scheduled_exports(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.info("the scheduler's tick is running late; exports due meanwhile start once now")
    start_scheduled_runs(get_context())


# Daily, at a quiet time; the retention period is counted in days, so once a day is enough.
RETENTION_SCHEDULE = "0 40 2 * * *"


@bp.timer_trigger(arg_name="timer", schedule=RETENTION_SCHEDULE, run_on_startup=False, use_monitor=True)
def retention_sweep(timer: func.TimerRequest) -> None:
    ctx = get_context()
    sweep_expired_runs(ctx)
    sweep_orphaned_states(ctx)
