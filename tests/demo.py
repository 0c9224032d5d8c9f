"""`make demo`: a real export end to end on local parts, then a refresh that sends only what changed.

Starts Azurite and the ActiveCampaign simulator, writes a segment of 50,000 generated profiles
(with some bad rows and duplicates), runs `python -m exports run --export-name demo` on it and
prints the run's status document and how many contacts reached the simulated list. Then 1% of the
profiles change and 0.5% are added, the same export runs again, and the demo prints the second
run's added, updated and unchanged and how few bulk imports it needed. It stops what it started.
"""
from __future__ import annotations

import argparse
import csv
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
        first, first_imports = _export(segment, env, simulator, "")
        if first is None:
            return 1
        refreshed = Path(work) / "segment-refreshed.csv"
        changed, added = _refresh(segment, refreshed)
        print(f"\nthe upstream export changes: {changed} profiles get a new first name (1%), {added} are new (0.5%)")
        second, second_imports = _export(refreshed, env, simulator, "-refreshed")
        if second is None:
            return 1
        print(f"second run: added {second['added']}, updated {second['updated']}, unchanged {second['unchanged']}, "
              f"left {second['left']}; {second_imports} bulk imports (the first run needed {first_imports})")
        print(f"expected from the edits: added {added}, updated {changed}")
        on_list = len(simulator.subscribed(LIST_ID))
        return 0 if (second["added"], second["updated"]) == (added, changed) and on_list == first["sent"] + added else 1


def _export(segment: Path, env: dict, simulator, suffix: str) -> tuple[dict | None, int]:
    """One CLI run of the export named demo: its status document and how many bulk imports it took."""
    command = [sys.executable, "-m", "exports", "run", str(segment), "--host", "demo.api-us1.com",
               "--list-id", LIST_ID, "--email", "Email", "--first-name", "First Name", "--last-name", "Last Name",
               "--phone", "Phone", "--export-name", "demo"]
    print(f"$ python -m exports run segment{suffix}.csv --host demo.api-us1.com --list-id 3 --email Email "
          "--first-name 'First Name' --last-name 'Last Name' --phone Phone --export-name demo", flush=True)
    imports_before = simulator.stats()["bulk_accepted"]
    began = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
    elapsed = time.monotonic() - began
    if result.returncode not in (0, 1):
        print(f"the run failed (exit code {result.returncode})")
        return None, 0
    status = json.loads(result.stdout.strip().splitlines()[-1])
    imports = simulator.stats()["bulk_accepted"] - imports_before
    print("status document:")
    print(json.dumps(status, indent=2))
    print(f"exit code {result.returncode}; {len(simulator.subscribed(LIST_ID))} contacts are on simulated list "
          f"{LIST_ID}; {imports} bulk imports in {elapsed:.1f} s")
    return status, imports


def _refresh(source: Path, target: Path) -> tuple[int, int]:
    """A copy of the segment with every 100th clean profile renamed and 0.5% new profiles; (renamed, new)."""
    with source.open(newline="", encoding="utf-8-sig") as inp, target.open("w", newline="", encoding="utf-8") as out:
        reader, writer = csv.reader(inp), csv.writer(out, lineterminator="\r\n")
        writer.writerow(next(reader))
        renamed = rows = 0
        for row in reader:
            rows += 1
            # Only a first copy of a valid profile (as the generator writes them) counts as one change.
            if rows % 100 == 0 and len(row) == 5 and row[0].startswith("Person") and row[0] == row[0].strip():
                row[1] = "Renamed"
                renamed += 1
            writer.writerow(row)
        new = rows // 200
        for n in range(new):
            writer.writerow((f"newcomer{n}@example.com", "New", f"Comer{n}", "", "pro"))
    return renamed, new


if __name__ == "__main__":
    sys.exit(main())
