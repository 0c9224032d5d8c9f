"""CLI: `python -m exports run` in one process on a 100,000-contact file, at the ceiling benchmark's limits.

The local command runs the whole pipeline in its own process (splitting, then every chunk, one
execution at a time), so whatever a chunk boundary costs (the last outcomes read, the next bucket
read and compared) shows as a gap between imports. The figure is the simulator's own record of the
bulk imports it admitted, as in the ceiling benchmark: achieved rate over the sending period divided
by the allowed rate.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from exports.activecampaign.budget import BULK_MARGIN
from tests.bench.ceiling import BULK_PER_MINUTE, REQUESTS_PER_SECOND
from tests.bench.harness import API_KEY, LIST_ID, ROOT, app_env, expected_emails, no_collector_pauses, profile_rows
from tests.support.activecampaign import ActiveCampaignSimulator
from tests.support.azurite import Azurite
from tests.support.profiles import csv_bytes


def run(rows: int = 100_000, timeout_seconds: float = 600) -> dict:
    with tempfile.TemporaryDirectory() as folder, Azurite() as azurite, ActiveCampaignSimulator(
            api_keys={API_KEY}, lists={LIST_ID: "Bench"}, requests_per_second=REQUESTS_PER_SECOND,
            bulk_per_minute=BULK_PER_MINUTE) as simulator:
        path = Path(folder) / "segment.csv"
        path.write_bytes(csv_bytes(profile_rows(0, rows)))
        env = {k: v for k, v in os.environ.items() if k != "KEY_VAULT_URL"}
        env.update(app_env(azurite, simulator, REQUESTS_PER_SECOND, BULK_PER_MINUTE))
        began = time.monotonic()
        with no_collector_pauses():
            done = subprocess.run([sys.executable, "-m", "exports", "run", str(path), "--host", "cli-bench.api-us1.com",
                                   "--list-id", LIST_ID, "--email", "Email", "--first-name", "First Name",
                                   "--last-name", "Last Name", "--phone", "Phone"],
                                  cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_seconds)
        wall = time.monotonic() - began
        stamps = simulator.bulk_timestamps()
        stats = simulator.stats()
        sending = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
        achieved = (len(stamps) - 1) / sending if sending else 0.0
        interval = (1 + BULK_MARGIN) * 60.0 / BULK_PER_MINUTE
        gaps = [(at - stamps[0], b - at) for at, b in zip(stamps, stamps[1:], strict=False) if b - at > 2 * interval]
        return {
            "benchmark": "cli", "profiles": rows, "exit_code": done.returncode,
            "limits": {"requests_per_second": REQUESTS_PER_SECOND, "bulk_per_minute": BULK_PER_MINUTE},
            "list_exact": simulator.subscribed(LIST_ID) == expected_emails(rows),
            "bulk_requests": len(stamps), "sending_seconds": round(sending, 2),
            "ceiling_utilization": round(achieved / (BULK_PER_MINUTE / 60.0), 4),
            "gaps_over_2_intervals": len(gaps), "seconds_lost_in_those_gaps": round(sum(g - interval for _, g in gaps), 2),
            "long_gaps_at": [[round(at, 2), round(gap, 3)] for at, gap in gaps],
            "throttled": stats["throttled_429"] + stats["throttled_bulk"], "wall_seconds": round(wall, 1),
        }
