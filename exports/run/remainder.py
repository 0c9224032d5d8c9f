"""Step 4a, the remainder: a run's last imports filled, instead of one partly filled import per chunk.

A bulk import takes up to 250 contacts, and a chunk's contacts to send are seldom a multiple of
that: sending each chunk to its end would cost one partly filled import per chunk, 129 imports
more than needed for a million contacts in 256 chunks (a minute and a half at 100 imports a
minute). So a chunk of a run with several buckets sends only whole imports; what would have been
its last, partly filled one is its remainder, written to the run's working files as soon as the
chunk has compared. Once every bucket's chunk has, the run's remainder chunk gathers the
remainders and sends them in whole imports but its last, beside the chunks still sending (it
takes its sending turn ahead of the chunks waiting for one), so the account's budget stays in use
to the end.

The sync state stays right throughout: a chunk's commit keeps its remainder out of the state (as
it does with contacts ActiveCampaign did not take: an "undelivered" file names them), and the
remainder chunk records what ActiveCampaign took of them in their shards once it knows and every
bucket's chunk is final (their commits write the same shards; if its sending got there first,
the last of them to finish queues its commit). If the remainder chunk does not get to send (the
run was cancelled, it failed), those contacts are not in the state, so the next run sends them.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from exports.activecampaign.client import MAX_CONTACTS_PER_IMPORT
from exports.model import REMAINDER_BUCKET, Chunk, ChunkStatus, Run, RunView
from exports.run import plan
from exports.run.batching import Item
from exports.run.compare import by_shard
from exports.run.files import BlockWriter, remainder_name, remainders_prefix
from exports.run.outcomes import write_undelivered
from shared import compact_json

if TYPE_CHECKING:
    from exports.context import AppContext

REMAINDER = "remainder"  # why a chunk's undelivered file names these contacts


def has_remainder_chunk(run: Run) -> bool:
    """With one bucket there is nothing to gather: its chunk sends its last import as it is."""
    return run.buckets > 1 and not run.dry_run


def buckets_compared(view: RunView) -> bool:
    """Every bucket's chunk has written its remainder, if it has one (or is done without)."""
    return all(chunk.state.final or chunk.compared for chunk in view.chunks if not chunk.remainder)


def buckets_final(view: RunView) -> bool:
    return all(chunk.state.final for chunk in view.chunks if not chunk.remainder)


def queue_remainder_chunk(ctx: AppContext, view: RunView) -> bool:
    """Every bucket's chunk has compared: add and queue the remainder chunk if any chunk left a remainder (and
    the run was not cancelled); queue it again for its commit once every bucket's chunk is final, if its
    sending got there first. True while the remainder chunk is still to be done, False once there is none.

    Added only when there is something in it, so a run whose chunks all failed (and left nothing)
    still fails, as it did. Several workers may get here at once: the row is created once, and a
    message queued twice is claimed by one delivery (ChunkClaim)."""
    run = view.run
    chunk = next((c for c in view.chunks if c.remainder), None)
    if chunk is None:
        if not has_remainder_chunk(run) or run.cancellation or not _any_remainder(ctx, run):
            return False
        ctx.runs.add_chunk_once(Chunk(run_id=run.id, index=run.buckets, status=ChunkStatus.PENDING.value,
                                      bucket=REMAINDER_BUCKET))
        chunk = ctx.runs.get_chunk(run.id, run.buckets)
    if chunk.state is ChunkStatus.PENDING or (chunk.committing and not chunk.state.final and buckets_final(view)):
        plan.enqueue(ctx, [chunk])
    return not chunk.state.final


def _any_remainder(ctx: AppContext, run: Run) -> bool:
    return next(iter(ctx.runs_container.list_blob_names(name_starts_with=remainders_prefix(run.id))), None) is not None


def cut(to_send: list[Item]) -> tuple[list[Item], list[Item]]:
    """(whole imports' worth, the remainder) of a chunk's contacts to send, in order; the same cut for every
    delivery, since it depends on the list only."""
    whole = len(to_send) - len(to_send) % MAX_CONTACTS_PER_IMPORT
    return to_send[:whole], to_send[whole:]


def leave_remainder(ctx: AppContext, run: Run, chunk: int, position: int, remainder: list[Item]) -> None:
    """Write a chunk's remainder for the remainder chunk, and name it undelivered for the chunk's own commit.

    Both before the chunk's comparison is recorded, so the remainder chunk, which starts once every bucket's
    chunk has compared, finds them all, and a redelivery that finds the commit begun has them."""
    writer = BlockWriter(ctx.runs_container.get_blob_client(remainder_name(run.id, chunk)))
    for item in remainder:
        writer.write(compact_json.dumps({"b": item.blob, "r": item.row, "c": item.contact}) + b"\n")
    writer.close()
    write_undelivered(ctx, run.id, chunk, position, REMAINDER, remainder)


def gathered(ctx: AppContext, run: Run) -> list[Item]:
    """Every chunk's remainder, in chunk order: the same list for every delivery of the remainder chunk,
    since it starts only once every bucket's chunk has written its remainder."""
    container, items = ctx.runs_container, []
    for name in sorted(container.list_blob_names(name_starts_with=remainders_prefix(run.id))):
        for line in container.get_blob_client(name).download_blob().readall().splitlines():
            record = compact_json.loads(line)
            items.append(Item(record["b"], record["r"], record["c"]))
    return items


def by_shard_delivered(items: Iterable[Item], undelivered: set[str]) -> dict[int, list[Item]]:
    return by_shard((item for item in items if item.contact["email"] not in undelivered),
                    lambda item: item.contact["email"])

