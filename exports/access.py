"""Who may do what. Role names come from EXPORT_ADMIN_ROLE / EXPORT_CONTRIBUTOR_ROLE.

- Admins manage connections and exports, and start, read and cancel any run.
- Contributors see only the connections an admin opened to contributors (allowContributors),
  and create, change, run, cancel and delete exports on those; any other connection, and every
  export and run on it, does not exist for them (NotFound, so not even its name shows).
- Anyone else is refused everywhere (Forbidden).
The runs of a deleted export stay readable by admins only: with the export gone nothing says
which contributors it belonged to.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from exports.errors import ConnectionNotFound, ExportNotFound, Forbidden, RunNotFound
from exports.model import Connection, Export, Run
from shared.auth import Caller

if TYPE_CHECKING:
    from exports.context import AppContext

RECORD_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # ids the API accepts in a path; any other is not found


def require_role(ctx: AppContext, caller: Caller) -> None:
    if not (caller.is_admin or caller.is_contributor):
        settings = ctx.settings
        raise Forbidden(f"{caller.name} has neither the {settings.admin_role} nor the {settings.contributor_role} "
                        "role; ask an admin to assign one")


def require_admin(ctx: AppContext, caller: Caller, action: str) -> None:
    require_role(ctx, caller)
    if not caller.is_admin:
        raise Forbidden(f"only admins (role {ctx.settings.admin_role}) may {action}")


def may_use(caller: Caller, connection: Connection | None) -> bool:
    if caller.is_admin:
        return True
    return caller.is_contributor and connection is not None and connection.allowContributors


def find_connection(ctx: AppContext, connection_id: object) -> Connection | None:
    if not isinstance(connection_id, str) or not RECORD_ID.fullmatch(connection_id):
        return None
    return ctx.config.find_connection(connection_id)


def find_export(ctx: AppContext, export_id: str) -> Export | None:
    if not RECORD_ID.fullmatch(export_id):
        return None
    return ctx.config.find_export(export_id)


def connection_for(ctx: AppContext, caller: Caller, connection_id: str) -> Connection:
    """The connection if it exists and the caller may see it; ConnectionNotFound otherwise, whichever it is."""
    require_role(ctx, caller)
    connection = find_connection(ctx, connection_id)
    if connection is None or not may_use(caller, connection):
        raise ConnectionNotFound(connection_id)
    return connection


def export_for(ctx: AppContext, caller: Caller, export_id: str) -> Export:
    """The export if it exists and the caller may use its connection; ExportNotFound otherwise."""
    require_role(ctx, caller)
    export = find_export(ctx, export_id)
    if export is None or not may_use(caller, find_connection(ctx, export.connectionId)):
        raise ExportNotFound(export_id)
    return export


Lookup = tuple[Callable[[str], Export | None], Callable[[str], Connection | None]]


def may_read_run(ctx: AppContext, caller: Caller, run: Run, lookup: Lookup | None = None) -> bool:
    """Admins read every run; contributors the runs of live exports whose connection, and the run's, are open."""
    if caller.is_admin:
        return True
    find_export_by_id, find_connection_by_id = lookup or (ctx.config.find_export, lambda cid: find_connection(ctx, cid))
    export = find_export_by_id(run.export_id)
    if export is None:
        return False  # a deleted export's runs: admins only
    return (may_use(caller, find_connection_by_id(export.connectionId))
            and may_use(caller, find_connection_by_id(run.connection_id)))


def run_for(ctx: AppContext, caller: Caller, run_id: str) -> Run:
    require_role(ctx, caller)
    run = ctx.runs.get_run(run_id) if RECORD_ID.fullmatch(run_id) else None
    if run is None or not may_read_run(ctx, caller, run):
        raise RunNotFound(run_id)
    return run
