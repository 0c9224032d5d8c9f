"""The machine's speed at the moment: CPU seconds of a fixed piece of work like the app's per-row work.

The CPU figures of the other benchmarks depend on how fast the machine runs at the time, and on a
shared 2-core virtual machine that moves by a third within an hour (the same tree's pipeline took
62 and 85 CPU s per million 30 minutes apart). This probe does the same work every time, with the
standard library only (so a change to the app does not change it): CSV parsing, a regular
expression per value, JSON and a keyed hash per row. Run beside a CPU benchmark, it hints whether a
high figure is the hour's: it follows only part of the machine's swings (0.91 s just before a
pipeline of 83 CPU s per million, which takes 55 to 60 in a quiet hour), so a change to the
app is still measured against the tree before it, side by side within one hour.

The work is timed alone and in three processes at once, as the benchmarks' three worker processes
run on the machine's two cores: CPU seconds grow when processes share cores (caches, and cores that
are two threads of one), by as much as half again on this machine, and by more or less as the host's
other guests load it. The figure beside a CPU benchmark is the one together.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

_ROWS = 100_000
_ROOT = Path(__file__).resolve().parents[2]
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _work() -> int:
    text = "".join(f"person{n}@example.com,Ann,Last{n},+1555{n:07d}\n" for n in range(_ROWS))
    found = 0
    for row in csv.reader(io.StringIO(text)):
        found += sum(1 for value in row if _CONTROL.search(value))
        line = json.dumps({"email": row[0].lower(), "first_name": row[1], "last_name": row[2], "phone": row[3]},
                          separators=(",", ":"))
        hashlib.blake2b(line.encode(), digest_size=12, key=b"probe").digest()
    return found


def _timed() -> float:
    began = time.process_time()
    _work()
    return time.process_time() - began


def run(repeats: int = 3, together: int = 3) -> dict:
    """The fastest of `repeats` runs of the work alone (the slowest only shows a moment's interruption), and
    the median of `together` processes doing it at once."""
    alone = [_timed() for _ in range(repeats)]
    procs = [subprocess.Popen([sys.executable, "-c", "from tests.bench.probe import _timed; print(_timed())"],
                              cwd=_ROOT, stdout=subprocess.PIPE, text=True) for _ in range(together)]
    at_once = [float(proc.communicate(timeout=120)[0]) for proc in procs]
    return {"benchmark": "probe", "rows": _ROWS, "cpu_seconds_alone": round(min(alone), 3),
            "cpu_seconds_together": round(statistics.median(at_once), 3),
            "cpu_seconds_runs": [round(s, 3) for s in alone], "cpu_seconds_processes": [round(s, 3) for s in at_once]}
