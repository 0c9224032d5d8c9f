"""Starting and reading runs from tests and benchmarks, through the same services as the API, as an admin."""
from __future__ import annotations

from exports.model import RunStatus, Trigger
from exports.services import runs
from shared.auth import Caller, Principal

ADMIN = Caller(Principal("tests", frozenset({"Export.Admin"}), "tests"), is_admin=True, is_contributor=False)


def start_run(ctx, export_id: str, trigger: str = "http") -> str:
    return runs.start_run(ctx, ADMIN, export_id, Trigger(trigger))


def run_status(ctx, run_id: str) -> dict:
    return runs.run_status(ctx, ADMIN, run_id)


def is_final(ctx, run_id: str) -> bool:
    return RunStatus(run_status(ctx, run_id)["status"]).final
