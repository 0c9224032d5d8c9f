"""Refresh: 1,000,000 profiles exported, then 1% of them changed and exported again, limits lifted.

The first run fills the export's sync state; the refresh is measured: contacts sent divided by
contacts changed (1.0 is exact: only the changes go), its wall time with the simulated account's
limits lifted (reading the segment, comparing with the state, committing it), that time
projected at ActiveCampaign's documented limits (the measured wall time plus the refresh's bulk
imports at 100 a minute), and the CPU seconds and peak memory of the app's processes in the refresh.
"""
from __future__ import annotations

import math

from tests.bench.harness import (
    RENAMED,
    create_export,
    export_with_workers,
    write_segment,
)
from tests.bench.pipeline import lifted_parts

CHANGED_EVERY = 100  # 1% of the profiles change between the two runs
DOCUMENTED_BULK_PER_MINUTE = 100


def run(rows: int = 1_000_000, blobs: int = 10, workers: int = 3, deadline_seconds: float = 900) -> dict:
    with lifted_parts(import_processing_seconds=0.0) as (_, simulator, env, ctx):
        write_segment(ctx, "refresh/", rows, blobs)
        export_id = create_export(ctx, "refresh.api-us1.com", "refresh/")
        first, _, first_wall = export_with_workers(env, ctx, export_id, workers, deadline_seconds)
        write_segment(ctx, "refresh/", rows, blobs, changed_every=CHANGED_EVERY)
        changed = len(range(0, rows, CHANGED_EVERY))
        imported_before = simulator.stats()["contacts_imported"]
        refresh, reports, wall = export_with_workers(env, ctx, export_id, workers, deadline_seconds)
        sent = simulator.stats()["contacts_imported"] - imported_before
        renamed = sum(1 for n in range(0, rows, CHANGED_EVERY)
                      if (simulator.contact(f"person{n}@example.com") or {}).get("first_name") == RENAMED)
        imports = refresh["sent"] and math.ceil(refresh["sent"] / 250)
        app_cpu = sum(report.get("cpu_seconds", 0.0) for report in reports)
        peaks = [report.get("peak_rss_mb") for report in reports]
        return {
            "benchmark": "refresh", "profiles": rows, "blobs": blobs, "worker_processes": workers,
            "first_run": {"status": first["status"], "added": first["added"], "wall_seconds": round(first_wall, 1)},
            "status": refresh["status"], "changed": changed, "sent": sent, "renamed_on_list": renamed,
            "added": refresh["added"], "updated": refresh["updated"], "unchanged": refresh["unchanged"],
            "left": refresh["left"],
            "sent_per_changed": round(sent / changed, 3) if changed else None,
            "wall_seconds": round(wall, 1),
            "projected_minutes_at_documented_limits": round(wall / 60 + imports / DOCUMENTED_BULK_PER_MINUTE, 2),
            "app_cpu_seconds": round(app_cpu, 1),
            "cpu_seconds_per_million_profiles": round(app_cpu * 1_000_000 / rows, 1),
            "peak_rss_mb_per_process": peaks,
            "max_peak_rss_mb": max((p for p in peaks if p is not None), default=None),
        }
