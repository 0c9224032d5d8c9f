"""`make demo`: a real export end to end on local parts.

Starts Azurite and the ActiveCampaign simulator, writes a segment of 50,000 generated profiles
(with some bad rows and duplicates), runs `python -m exports run` on it, then prints the run's
status document and how many contacts reached the simulated list, and stops what it started.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.localparts import local_parts

ROOT = Path(__file__).resolve().parent.parent
LIST_ID = "3"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--speedup", type=float, default=float(os.environ.get("SPEEDUP", "10")),
                        help="the simulated account's limits as a multiple of ActiveCampaign's (1 = the real ones)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="demo-") as work, local_parts(speedup=args.speedup) as (env, simulator):
        segment = Path(work) / "segment.csv"
        made = subprocess.run([sys.executable, "-m", "tests.support.profiles", "--rows", str(args.rows), "--out", str(segment)],
                              cwd=ROOT, check=True, capture_output=True, text=True)
        print(f"generated {segment.name}: {made.stdout.strip()}")
        print(f"simulated account limits: {env['ACTIVECAMPAIGN_REQUESTS_PER_SECOND']} requests/s, "
              f"{env['ACTIVECAMPAIGN_BULK_REQUESTS_PER_MINUTE']} bulk imports/min "
              f"({args.speedup:g}x ActiveCampaign's; SPEEDUP=1 make demo for the real ones)")
        command = [sys.executable, "-m", "exports", "run", str(segment), "--host", "demo.api-us1.com",
                   "--list-id", LIST_ID, "--email", "Email", "--first-name", "First Name", "--last-name", "Last Name",
                   "--phone", "Phone"]
        print("$ python -m exports run segment.csv --host demo.api-us1.com --list-id 3 --email Email "
              "--first-name 'First Name' --last-name 'Last Name' --phone Phone", flush=True)
        began = time.monotonic()
        result = subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
        elapsed = time.monotonic() - began
        status = json.loads(result.stdout.strip().splitlines()[-1])
        print("status document:")
        print(json.dumps(status, indent=2))
        on_list = len(simulator.subscribed(LIST_ID))
        print(f"exit code {result.returncode}; {on_list} contacts are on simulated list {LIST_ID}; "
              f"{simulator.stats()['bulk_accepted']} bulk imports in {elapsed:.1f} s")
        return 0 if on_list == status["sent"] and result.returncode in (0, 1) else 1


if __name__ == "__main__":
    sys.exit(main())
