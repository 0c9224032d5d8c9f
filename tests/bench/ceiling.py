"""Ceiling: several worker processes drain one run against a simulated account at scaled limits.

The account allows 20 bulk imports/s (bulk_per_minute 1200) and 60 requests/s: ActiveCampaign's
limits (100/min, 5/s) times 12, the same ratio between the two. Workers are separate processes,
each with its own AppContext and LocalQueueHost loops (tests/bench/worker.py), as many at once
as an instance of the host runs (host.json's batchSize plus newBatchThreshold), sharing only
Azurite and the account, as Function instances would. The figures come from the simulator's own record of
the bulk imports it admitted: achieved rate over the sending period (first to last admitted bulk
import) divided by the allowed rate, and every throttling answer it gave (429 + bulk 400).

Since the budget spaces import slots BULK_MARGIN (0.5 %) wider than the limit while it is not
throttled, 1/1.005 = 0.995 is the most a paced sender can reach; the target is 0.99 with no
throttling at all.
"""
from __future__ import annotations

import statistics
import time

from exports.activecampaign.budget import BULK_MARGIN
from exports.local_host import QueueSettings
from tests.bench.harness import (
    API_KEY,
    LIST_ID,
    Workers,
    app_env,
    context,
    create_export,
    expected_emails,
    no_collector_pauses,
    process_cpu_seconds,
    wait_final,
    write_segment,
)
from tests.support.activecampaign import ActiveCampaignSimulator
from tests.support.azurite import Azurite
from tests.support.driving import start_run

REQUESTS_PER_SECOND = 60
BULK_PER_MINUTE = 1200


HOST_EXECUTIONS = QueueSettings.from_host_json().executions  # what one instance of the host works on at once


def run(rows: int = 330_000, workers: int = 4, concurrency: int = HOST_EXECUTIONS, blobs: int = 4,
        name: str = "ceiling", deadline_seconds: float = 420) -> dict:
    """One run of `rows` profiles drained by `workers` processes of `concurrency` executions each."""
    allowed = BULK_PER_MINUTE / 60.0
    with Azurite() as azurite, ActiveCampaignSimulator(api_keys={API_KEY}, lists={LIST_ID: "Bench"},
                                                       requests_per_second=REQUESTS_PER_SECOND,
                                                       bulk_per_minute=BULK_PER_MINUTE) as simulator:
        env = app_env(azurite, simulator, REQUESTS_PER_SECOND, BULK_PER_MINUTE)
        ctx = context(env)
        write_segment(ctx, f"{name}/", rows, blobs)
        export_id = create_export(ctx, f"{name.replace('_', '-')}.api-us1.com", f"{name}/")
        azurite_cpu_before = process_cpu_seconds(azurite._process.pid)
        began = time.monotonic()
        run_id = start_run(ctx, export_id, trigger="cli")
        pool = Workers(env, run_id, workers, deadline_seconds, concurrency=concurrency).start()
        try:
            with no_collector_pauses():
                reports = pool.wait()
        finally:
            pool.kill()
        status = wait_final(ctx, run_id, timeout=30)
        wall = time.monotonic() - began
        stamps = simulator.bulk_timestamps()
        stats = simulator.stats()
        on_list = simulator.subscribed(LIST_ID)
        azurite_cpu = process_cpu_seconds(azurite._process.pid)
        sending = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
        achieved = (len(stamps) - 1) / sending if sending else 0.0
        gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        interval = (1 + BULK_MARGIN) * 60.0 / BULK_PER_MINUTE
        long_gaps = [gap for gap in gaps if gap > 2 * interval]
        chunk_seconds = sorted(s for report in reports for s in report.pop("chunk_seconds", []))
        return {
            "benchmark": name,
            "workers": workers, "executions_per_worker": concurrency,
            "limits": {"requests_per_second": REQUESTS_PER_SECOND, "bulk_per_minute": BULK_PER_MINUTE},
            "profiles": rows, "status": status["status"], "sent": status["sent"],
            "list_exact": on_list == expected_emails(rows),
            "bulk_requests": len(stamps), "sending_seconds": round(sending, 2),
            "bulk_per_second": round(achieved, 3), "allowed_bulk_per_second": allowed,
            "ceiling_utilization": round(achieved / allowed, 4),
            "pacing_limit": round(1 / (1 + BULK_MARGIN), 4),
            "throttled": stats["throttled_429"] + stats["throttled_bulk"],
            "throttled_429": stats["throttled_429"], "throttled_bulk_400": stats["throttled_bulk"],
            "max_requests_in_1s": simulator.max_requests_in_window(1.0),
            "max_bulk_in_60s": simulator.max_requests_in_window(60.0, bulk_only=True),
            "gaps_over_2_intervals": len(long_gaps),
            "seconds_lost_in_those_gaps": round(sum(gap - interval for gap in long_gaps), 2),
            "long_gaps_at": [[round(at - stamps[0], 2), round(gap, 3)]
                             for at, gap in zip(stamps, gaps, strict=False) if gap > 2 * interval],
            "median_gap_seconds": round(statistics.median(gaps), 4) if gaps else None,
            "chunk_seconds_median": round(chunk_seconds[len(chunk_seconds) // 2], 2) if chunk_seconds else None,
            "chunk_seconds_max": round(chunk_seconds[-1], 2) if chunk_seconds else None,
            "connections_opened": stats["connections"],
            "wall_seconds": round(wall, 1),
            "azurite_cpu_seconds": round(azurite_cpu - azurite_cpu_before, 1)
            if azurite_cpu is not None and azurite_cpu_before is not None else None,
            "processes": reports,
        }
