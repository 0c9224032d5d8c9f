"""Pipeline: a 1,000,000-profile segment through splitter and workers, limits lifted.

The segment is several blobs in the three formats (CSV, CSV gzip, JSON Lines). Worker processes
(tests/bench/worker.py) split the blobs and send the chunks, as Function instances would; the
simulated account's limits are lifted, so the figures are the app's own cost: wall seconds from
start_run to the final status, CPU seconds of the app's processes per million profiles, and the
peak resident memory (ru_maxrss) of each app process. The harness process (segment generator and
ActiveCampaign simulator, which keeps every contact) and Azurite are reported apart: they are not
the app.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

from tests.bench.harness import (
    API_KEY,
    LIST_ID,
    app_env,
    context,
    create_export,
    expected_emails,
    export_with_workers,
    own_usage,
    process_cpu_seconds,
    write_segment,
)
from tests.support.activecampaign import ActiveCampaignSimulator
from tests.support.azurite import Azurite

LIFTED_REQUESTS_PER_SECOND = 1_000_000
LIFTED_BULK_PER_MINUTE = 100_000_000


@contextmanager
def lifted_parts(**simulator_settings):
    """Azurite and a simulated account whose limits are lifted, and the app's settings and context for them:
    (azurite, simulator, env, ctx)."""
    with Azurite() as azurite, ActiveCampaignSimulator(api_keys={API_KEY}, lists={LIST_ID: "Bench"},
                                                       requests_per_second=LIFTED_REQUESTS_PER_SECOND,
                                                       bulk_per_minute=LIFTED_BULK_PER_MINUTE,
                                                       bulk_single_per_minute=LIFTED_BULK_PER_MINUTE,
                                                       **simulator_settings) as simulator:
        env = app_env(azurite, simulator, LIFTED_REQUESTS_PER_SECOND, LIFTED_BULK_PER_MINUTE)
        yield azurite, simulator, env, context(env)


def run(rows: int = 1_000_000, blobs: int = 10, workers: int = 3, deadline_seconds: float = 600) -> dict:
    with lifted_parts() as (azurite, simulator, env, ctx):
        generated = time.monotonic()
        write_segment(ctx, "pipeline/", rows, blobs)
        generate_seconds = time.monotonic() - generated
        export_id = create_export(ctx, "pipeline.api-us1.com", "pipeline/")
        azurite_cpu_before = process_cpu_seconds(azurite._process.pid)
        harness_cpu_before = own_usage()["cpu_seconds"]
        began_at: list[float] = []
        status, reports, wall = export_with_workers(env, ctx, export_id, workers, deadline_seconds, began_at)
        stamps = simulator.bulk_timestamps()
        azurite_cpu = process_cpu_seconds(azurite._process.pid)
        harness = own_usage()
        stats = simulator.stats()
        list_exact = simulator.subscribed(LIST_ID) == expected_emails(rows)
        for report in reports:
            report.pop("chunk_seconds", None)
        app_cpu = sum(report.get("cpu_seconds", 0.0) for report in reports)
        peaks = [report.get("peak_rss_mb") for report in reports]
        return {
            "benchmark": "pipeline", "profiles": rows, "blobs": blobs, "worker_processes": workers,
            "status": status["status"], "sent": status["sent"], "chunks": status["chunks"]["total"],
            "list_exact": list_exact, "bulk_requests": stats["bulk_requests"],
            # The split must end before the first import: the time to the first contact sent is the split's.
            "seconds_to_first_contact_sent": round(stamps[0] - began_at[0], 1) if stamps else None,
            "split_on_processes": sum(1 for report in reports if report.get("split_messages")),
            "throttled": stats["throttled_429"] + stats["throttled_bulk"],
            "wall_seconds": round(wall, 1),
            "profiles_per_second": round(rows / wall) if wall else None,
            "app_cpu_seconds": round(app_cpu, 1),
            "cpu_seconds_per_million_profiles": round(app_cpu * 1_000_000 / rows, 1),
            "peak_rss_mb_per_process": peaks,
            "max_peak_rss_mb": max((p for p in peaks if p is not None), default=None),
            "processes": reports,
            "not_the_app": {
                "azurite_cpu_seconds": round(azurite_cpu - azurite_cpu_before, 1)
                if azurite_cpu is not None and azurite_cpu_before is not None else None,
                "harness_cpu_seconds": round(harness["cpu_seconds"] - harness_cpu_before, 1),
                "harness_peak_rss_mb": harness["peak_rss_mb"],
                "segment_generation_seconds": round(generate_seconds, 1),
            },
        }
