"""A run's figures and final status, worked out from its pieces (pure: no storage)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from exports.model import (
    MAX_ERRORS,
    Cancellation,
    Chunk,
    ChunkStatus,
    Mapping,
    Phase,
    Run,
    RunStatus,
    RunView,
    Segment,
    SegmentStatus,
    Totals,
    Trigger,
)
from exports.run.finish import decide
from exports.services.runs import status_document

RUN = Run(id="r1", export_id="e1", connection_id="c1", hostname="acct.api-us1.com", api_key_secret_name="activecampaign-c1",
          list_id="3", mapping=Mapping(email="Email"), segment_container="segments", segment_prefix="seg/",
          trigger=Trigger.HTTP, status=RunStatus.RUNNING, phase=Phase.SENDING, started_at="2030-01-01T00:00:00.000Z",
          started_at_ms=1, segments_total=2, buckets=3)


def segment(index, status=SegmentStatus.SPLIT, rows=0, rejected=0, error=None) -> Segment:
    # The splitter counts every rejected row under a reason; these are all unreadable rows.
    return Segment(run_id="r1", index=index, status=status.value, rows=rows, rejected=rejected, error=error,
                   rejected_by_reason={"row_unreadable": rejected} if rejected else {})


def chunk(index, status=ChunkStatus.SUCCEEDED, records=0, contacts=None, sent=0, rejected=0, duplicates=0, error=None,
          **figures):
    return Chunk(run_id="r1", index=index, status=status.value, records=records, contacts=contacts, sent=sent,
                 rejected=rejected, duplicates=duplicates, error=error, **figures)


def view(segments=(), chunks=(), **run_changes) -> RunView:
    return RunView(replace(RUN, **run_changes), tuple(segments), tuple(chunks))


def test_totals_sum_every_piece_and_count_chunks_by_status():
    totals = view(
        [segment(0, rows=100, rejected=3), segment(1, rows=50, rejected=2)],
        [chunk(0, records=80, contacts=70, sent=69, rejected=1, duplicates=10),
         chunk(1, status=ChunkStatus.FAILED, records=40, contacts=40),
         chunk(2, status=ChunkStatus.QUEUED, records=25)],  # not read by a worker yet: its records count
    ).totals()
    assert totals == Totals(rows=150, contacts=135, sent=69, rejected=6, duplicates=10, chunks_total=3,
                            chunks_succeeded=1, chunks_failed=1,
                            rejected_by_reason={"row_unreadable": 5, "refused_by_activecampaign": 1})


def test_a_final_run_reports_the_totals_it_recorded_not_a_new_sum():
    recorded = Totals(rows=9, contacts=9, sent=9)
    assert view([segment(0, rows=100)], status=RunStatus.SUCCEEDED, totals=recorded).totals() == recorded


def test_totals_round_trip_through_their_document():
    totals = Totals(rows=5, contacts=4, sent=3, rejected=1, duplicates=1, chunks_total=2, chunks_succeeded=1,
                    chunks_failed=1)
    assert Totals.from_document(totals.to_document()) == totals


def test_errors_of_a_running_run_come_from_the_run_then_each_piece_once_and_are_capped():
    pieces = [chunk(i, error="the list is gone") for i in range(3)] + [chunk(3, error="only once")]
    pieces += [chunk(10 + i, error=f"other {i}") for i in range(30)]
    errors = view([segment(0, error="seg-0 broken")], pieces, errors=("the run's own",)).errors()
    assert errors[:4] == ["the run's own", "seg-0 broken", "the list is gone (3 chunks)", "chunk 3: only once"]
    assert len(errors) == MAX_ERRORS and len(set(errors)) == MAX_ERRORS


def test_rejected_rows_are_always_named_in_the_errors_with_their_classes():
    errors = view([segment(0, rows=10, rejected=2)], [chunk(0, contacts=8, sent=7, rejected=1)]).errors()
    assert errors == ["3 rows were rejected (refused_by_activecampaign 1, row_unreadable 2): each is in the rejects "
                      "report with its reason"]
    assert view([segment(0, rows=10, rejected=1)]).errors()[0].startswith("1 row was rejected")
    assert view([segment(0, rows=10)]).errors() == []


def test_a_final_run_shows_only_the_errors_it_recorded():
    final = view([segment(0, error="seen while running")], status=RunStatus.FAILED, errors=("recorded",))
    assert final.errors() == ["recorded"]


@pytest.mark.parametrize("segments, chunks, run_changes, expected", [
    ([segment(0, rows=10)], [chunk(0, contacts=10, sent=10)], {}, RunStatus.SUCCEEDED),
    ([segment(0, rows=10, rejected=1)], [chunk(0, contacts=9, sent=9)], {}, RunStatus.COMPLETED_WITH_ERRORS),
    ([segment(0, rows=10)], [chunk(0, contacts=5), chunk(1, status=ChunkStatus.FAILED, contacts=5)], {},
     RunStatus.COMPLETED_WITH_ERRORS),
    ([segment(0, rows=10)], [chunk(0, status=ChunkStatus.FAILED, contacts=10)], {}, RunStatus.FAILED),
    ([segment(0, rows=10), segment(1, status=SegmentStatus.FAILED)], [], {}, RunStatus.FAILED),
    ([segment(0, rows=10)], [chunk(0, status=ChunkStatus.FAILED, contacts=10)],
     {"cancellation": Cancellation("admin", "2030-01-01T00:00:00.000Z", "by admin")}, RunStatus.CANCELLED),
    ([segment(0, rows=0)], [], {}, RunStatus.SUCCEEDED),  # a header-only segment sends nothing, and that is fine
])
def test_the_final_status_follows_from_the_pieces(segments, chunks, run_changes, expected):
    run_view = view(segments, chunks, **run_changes)
    assert decide(run_view, run_view.totals())[0] is expected


def test_a_run_whose_every_row_was_rejected_failed_and_says_so():
    run_view = view([segment(0, rows=4, rejected=4)])
    status, explained = decide(run_view, run_view.totals())
    assert status is RunStatus.FAILED
    assert explained == ["none of the 4 rows could be sent: every row was rejected (see rejectsBlob)"]


def test_the_status_document_has_every_figure_and_the_cancellation():
    cancelled = view([segment(0, rows=3)], [chunk(0, contacts=3, sent=3, added=2, updated=1, unchanged=4, left=5,
                                                 unconfirmed=1)], status=RunStatus.CANCELLED,
                     cancellation=Cancellation("admin@example.com", "2030-01-01T00:01:00.000Z", "cancelled by admin"),
                     finished_at="2030-01-01T00:02:00.000Z", errors=("stopped",), rejects_blob=None)
    assert status_document(cancelled) == {
        "runId": "r1", "exportId": "e1", "trigger": "http", "mode": "incremental", "dryRun": False,
        "leavers": "keep", "status": "cancelled", "rows": 3, "contacts": 3, "sent": 3,
        "rejected": 0, "rejectedByReason": {}, "duplicates": 0, "added": 2, "updated": 1, "unchanged": 4, "left": 5,
        "unconfirmed": 1, "unsubscribed": 0, "marked": 0, "held": 0, "notResubscribed": 0,
        "chunks": {"total": 1, "succeeded": 1, "failed": 0},
        "startedAt": "2030-01-01T00:00:00.000Z", "finishedAt": "2030-01-01T00:02:00.000Z", "errors": ["stopped"],
        "rejectsBlob": None, "previewBlob": None,
        "cancellation": {"requestedBy": "admin@example.com", "requestedAt": "2030-01-01T00:01:00.000Z",
                         "reason": "cancelled by admin"}}
    assert "cancellation" not in status_document(view())


def test_statuses_know_which_are_final():
    # needs_approval holds no worker and no lock: a newer run may start (and supersedes the held actions)
    assert {s for s in RunStatus if s.final} == {RunStatus.SUCCEEDED, RunStatus.COMPLETED_WITH_ERRORS,
                                                  RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.NEEDS_APPROVAL}
    assert {s for s in ChunkStatus if s.final} == {ChunkStatus.SUCCEEDED, ChunkStatus.FAILED}
    assert {s for s in SegmentStatus if s.final} == {SegmentStatus.SPLIT, SegmentStatus.FAILED}
    assert RunStatus("failed") == "failed"  # str Enums: equal to what Table storage and documents hold
