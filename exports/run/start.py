"""Step 1, start: record a queued run of an export and queue one message per segment blob.

Which blobs make up the segment, with their ETags, is fixed here: every later step reads exactly
these versions, so a run never mixes two versions of a segment.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceNotFoundError

from exports.activecampaign.fields import read_account_fields
from exports.model import (
    Connection,
    Export,
    Mapping,
    Phase,
    Run,
    RunMode,
    RunStatus,
    Segment,
    SegmentStatus,
    Trigger,
    new_id,
)
from exports.names import SEGMENTS_QUEUE
from exports.run import cancel, finish
from exports.run.buckets import bucket_count
from exports.run.messages import SegmentMessage
from exports.segments.blobs import list_segment_blobs
from exports.segments.field_values import FieldValueError, member_value
from exports.store.sync_state import state_id_of

if TYPE_CHECKING:
    from exports.context import AppContext

log = logging.getLogger(__name__)


def start_run(ctx: AppContext, export: Export, connection: Connection, trigger: Trigger,
              mode: RunMode = RunMode.INCREMENTAL, dry_run: bool = False) -> str:
    """The new run's id; raises RunInProgress while another run of the export is active."""
    container = ctx.storage.blobs.get_container_client(export.segmentContainer)
    try:
        blobs, missing = list_segment_blobs(container, export.segmentPrefix), None
    except ResourceNotFoundError:
        blobs, missing = [], f"container {export.segmentContainer!r} does not exist"
    run_id = new_id()
    ctx.lock.acquire(export.id, run_id)
    started_ms = ctx.lock.wall_ms()
    mapping, field_problem = _fields_now(ctx, export, connection)
    state_id = state_id_of(connection.hostname, export.listId, mapping.identity())
    ctx.sync.prepare(export.id, state_id, {"hostname": connection.hostname, "listId": export.listId})
    run = Run(
        id=run_id, export_id=export.id, connection_id=connection.id, hostname=connection.hostname,
        api_key_secret_name=connection.apiKeySecretName, list_id=export.listId, mapping=mapping,
        exclude_automations=export.excludeAutomations, leavers=export.leavers,
        max_leavers_percent=(export.maxLeaversPercent if export.maxLeaversPercent is not None
                             else ctx.settings.max_leavers_percent),
        segment_container=export.segmentContainer, segment_prefix=export.segmentPrefix, trigger=trigger,
        status=RunStatus.QUEUED, phase=Phase.SPLITTING, started_at=ctx.clock(), started_at_ms=started_ms,
        segments_total=len(blobs), buckets=bucket_count(blobs, ctx.settings.chunk_size), mode=mode, dry_run=dry_run,
        state_id=state_id)
    for entry in ctx.history.recent(export.id, limit=10):  # held leaver actions: this run works out its own
        if entry.status is RunStatus.NEEDS_APPROVAL:
            cancel.discard_held(ctx, entry.run_id, "the scheduler" if trigger is Trigger.TIMER else "a new run",
                                f"superseded by run {run_id}, which works out the leavers afresh")
    ctx.runs.create_run(run, [Segment(run_id=run_id, index=i, status=SegmentStatus.QUEUED.value, blob=blob.name,
                                      blob_etag=blob.etag, size=blob.size) for i, blob in enumerate(blobs)])
    ctx.history.add(run)
    log.info("export run started: run=%s export=%s trigger=%s mode=%s dryRun=%s blobs=%d", run_id, export.id,
             trigger.value, mode.value, dry_run, len(blobs))
    if field_problem or not blobs:
        reason = field_problem or missing or (f"the segment has no blobs: nothing under container {export.segmentContainer!r} prefix "
                             f"{export.segmentPrefix!r} ends in .csv, .csv.gz, .jsonl or .jsonl.gz")
        finish.finish(ctx, ctx.runs.view(run_id), extra_errors=[reason], force_status=RunStatus.FAILED)
        return run_id
    queue = ctx.storage.queue(SEGMENTS_QUEUE)
    for index, blob in enumerate(blobs):
        queue.send_message(SegmentMessage(run_id, index, blob.name, blob.etag).to_json())
    ctx.runs.mark_segments_enqueued(run_id)
    return run_id


def _fields_now(ctx: AppContext, export: Export, connection: Connection) -> tuple[Mapping, str | None]:
    """The export's mapping with its custom fields as the account describes them now (options included), read
    once for the whole run; or the reason the run cannot send them (a field deleted, the account unreachable)."""
    if not export.mapping.fields and export.mapping.membership is None:
        return export.mapping, None
    try:
        client = ctx.accounts.client(connection.hostname, connection.apiKeySecretName)
        specs = {spec.id: spec for spec in read_account_fields(client, ctx.accounts.budget(connection.hostname),
                                                                attempt=ctx.backoff.run)}
    except Exception as error:  # noqa: BLE001 - the run is recorded failed with the reason, whatever it is
        log.warning("run of export %s: the account's custom fields could not be read (%s)", export.id,
                    type(error).__name__)
        return export.mapping, (f"the custom fields of the ActiveCampaign account at {connection.hostname} could not be "
                                f"read ({error}), so nothing was sent: try again later")
    found, gone = [], []
    for mapping in export.mapping.fields:
        spec = specs.get(mapping.spec.id) if mapping.spec else None
        if spec is None:
            gone.append(f"{mapping.spec.title if mapping.spec else mapping.field!r} (id "
                        f"{mapping.spec.id if mapping.spec else '?'}, from column {mapping.column!r})")
        else:
            found.append(replace(mapping, spec=spec))
    membership = export.mapping.membership
    if membership is not None:
        membership = specs.get(membership.id)
        if membership is None:
            gone.append(f"{export.mapping.membership.title!r} (id {export.mapping.membership.id}, the membership field)")
        else:
            try:
                member_value(membership)
            except FieldValueError as error:
                return export.mapping, f"{error}, so nothing was sent: choose another membership field"
    if gone:
        return export.mapping, (f"custom field {', '.join(gone)} no longer exists in ActiveCampaign, so nothing was "
                                "sent: map another field in the export, or remove it")
    return replace(export.mapping, fields=tuple(found), membership=membership), None
