"""Leavers: an export with `leavers: unsubscribe` run twice; in between, 5% of its profiles leave the segment.

The second run's leaver pass unsubscribes exactly those (checked on the simulated list); measured
with the account's limits lifted, then projected at ActiveCampaign's documented limits: leaver
actions go out as bulk imports of up to 250 contacts, 100 imports a minute at most, so the ceiling
is 25,000 leaver actions a minute. The figures: leaver actions per minute of sending at the
documented limits (leavers / (imports / 100)), the run's end-to-end projection (measured wall time
plus those imports), and the app's CPU seconds and peak memory in the second run.
"""
from __future__ import annotations

from exports.model import Leavers
from tests.bench.harness import LIST_ID, create_export, export_with_workers, write_segment
from tests.bench.pipeline import lifted_parts

LEAVING_SHARE = 0.05  # under the default guardrail of 10%: the pass is not held
DOCUMENTED_BULK_PER_MINUTE = 100
CEILING_PER_MINUTE = 250 * DOCUMENTED_BULK_PER_MINUTE


def run(rows: int = 200_000, blobs: int = 4, workers: int = 3, deadline_seconds: float = 900) -> dict:
    with lifted_parts(import_processing_seconds=0.0) as (_, simulator, env, ctx):
        write_segment(ctx, "leavers/", rows, blobs)
        export_id = create_export(ctx, "leavers.api-us1.com", "leavers/", leavers=Leavers.UNSUBSCRIBE)
        first, _, _ = export_with_workers(env, ctx, export_id, workers, deadline_seconds)
        staying = rows - int(rows * LEAVING_SHARE)
        write_segment(ctx, "leavers/", staying, blobs)  # the last 5% of the profiles are gone
        bulk_before = simulator.stats()["bulk_requests"]
        second, reports, wall = export_with_workers(env, ctx, export_id, workers, deadline_seconds)
        imports = simulator.stats()["bulk_requests"] - bulk_before
        leavers = rows - staying
        unsubscribed_on_list = len(simulator.unsubscribed(LIST_ID))
        sending_minutes = imports / DOCUMENTED_BULK_PER_MINUTE
        app_cpu = sum(report.get("cpu_seconds", 0.0) for report in reports)
        peaks = [report.get("peak_rss_mb") for report in reports]
        per_minute = round(leavers / sending_minutes) if sending_minutes else None
        return {
            "benchmark": "leavers", "profiles": rows, "first_run": first["status"], "status": second["status"],
            "left": second["left"], "unsubscribed": second["unsubscribed"], "held": second["held"],
            "unsubscribed_on_list": unsubscribed_on_list, "exact": unsubscribed_on_list == leavers == second["unsubscribed"],
            "leaver_imports": imports, "wall_seconds": round(wall, 1),
            "leaver_actions_per_minute_at_documented_limits": per_minute,
            "ratio_to_ceiling": round(per_minute / CEILING_PER_MINUTE, 3) if per_minute else None,
            "projected_minutes_at_documented_limits": round(wall / 60 + sending_minutes, 2),
            "app_cpu_seconds": round(app_cpu, 1),
            "peak_rss_mb_per_process": peaks,
            "max_peak_rss_mb": max((p for p in peaks if p is not None), default=None),
        }
