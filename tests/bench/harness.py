"""What every benchmark needs: the app's settings for local parts, a segment writer, worker processes.

Workers run as separate Python processes (`python -m tests.bench.worker`), each with its own
AppContext and a LocalQueueHost loop, the way Function instances share one storage account: the
only thing they share is Azurite (queues, tables, blobs) and the simulated ActiveCampaign account.
Separate processes also make each one's CPU time and peak memory its own (resource.getrusage).
"""
from __future__ import annotations

import gc
import gzip
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from exports.names import SEGMENTS_CONTAINER
from tests.support.profiles import FIRST, csv_bytes, jsonl_bytes

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "bench-api-key"
LIST_ID = "3"
MAPPING = {"email": "Email", "firstName": "First Name", "lastName": "Last Name", "phone": "Phone"}


def app_env(azurite, simulator, requests_per_second: float, bulk_per_minute: float, chunk_size: int = 5000) -> dict:
    """The app settings a worker process reads (Settings.from_env), pointed at the local parts."""
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "ACTIVECAMPAIGN_BASE_URL": simulator.base_url,
        "ACTIVECAMPAIGN_API_KEY": API_KEY,
        "ACTIVECAMPAIGN_REQUESTS_PER_SECOND": str(int(requests_per_second)),
        "ACTIVECAMPAIGN_BULK_REQUESTS_PER_MINUTE": str(int(bulk_per_minute)),
        "EXPORT_CHUNK_SIZE": str(chunk_size),
    }


def context(env: dict):
    from exports.context import build_context
    from exports.settings import Settings

    ctx = build_context(Settings.from_env(env))
    ctx.ensure_resources()
    return ctx


RENAMED = "Renamed"  # the first name of the profiles a refresh changes


def profile_rows(start: int, count: int, changed_every: int = 0):
    """Clean, distinct profiles person{n}: every row becomes one contact (the pipeline normalises the case).
    With `changed_every`, every such profile has another first name (a refresh's changes)."""
    for n in range(start, start + count):
        first = RENAMED if changed_every and n % changed_every == 0 else FIRST[n % 3]
        yield (f"Person{n}@Example.com", first, f"Last{n}", f"+1555{n:07d}" if n % 3 else "", "pro")


def write_segment(ctx, prefix: str, rows: int, blobs: int, changed_every: int = 0) -> list[str]:
    """Uploads `rows` profiles as `blobs` files in rotating formats (CSV, CSV gzip, JSON Lines), one at a time."""
    names, start = [], 0
    for index in range(blobs):
        count = rows // blobs + (1 if index < rows % blobs else 0)
        kind = index % 3
        rows_of_blob = profile_rows(start, count, changed_every)
        if kind == 0:
            name, data = f"part-{index:05d}.csv", csv_bytes(rows_of_blob)
        elif kind == 1:
            name, data = f"part-{index:05d}.csv.gz", gzip.compress(csv_bytes(rows_of_blob), compresslevel=1)
        else:
            name, data = f"part-{index:05d}.jsonl", jsonl_bytes(rows_of_blob)
        ctx.storage.blobs.get_blob_client(SEGMENTS_CONTAINER, prefix + name).upload_blob(data, overwrite=True)
        names.append(prefix + name)
        start += count
    return names


def expected_emails(rows: int) -> set[str]:
    return {f"person{n}@example.com" for n in range(rows)}


def create_export(ctx, hostname: str, prefix: str, **overrides) -> str:
    from tests.support.records import add_connection, add_export

    connection = add_connection(ctx, hostname, display_name=f"bench {hostname}")
    return add_export(ctx, connection, prefix, MAPPING, list_id=LIST_ID, display_name=f"bench {prefix}",
                      **overrides).id


@dataclass
class Workers:
    """N worker processes draining the app's queues until the run is final (or their deadline)."""

    env: dict
    run_id: str
    count: int
    deadline_seconds: float
    concurrency: int = 1  # messages each process works on at once (threads), like an instance of the host
    procs: list = field(default_factory=list)

    def start(self) -> Workers:
        spec = json.dumps({"env": self.env, "run_id": self.run_id, "deadline": time.time() + self.deadline_seconds,
                           "concurrency": self.concurrency})
        for _ in range(self.count):
            self.procs.append(subprocess.Popen([sys.executable, "-m", "tests.bench.worker", spec], cwd=ROOT,
                                               stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                               text=True))
        return self

    def wait(self) -> list[dict]:
        """Each process's report: pid, cpu_seconds, peak_rss_mb, messages, exit code."""
        reports = []
        for proc in self.procs:
            try:
                out, _ = proc.communicate(timeout=self.deadline_seconds + 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            lines = [line for line in (out or "").splitlines() if line.startswith("{")]
            report = json.loads(lines[-1]) if lines else {"pid": proc.pid}
            report["exit_code"] = proc.returncode
            reports.append(report)
        return reports

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@contextmanager
def no_collector_pauses():
    """The benchmark process's cyclic garbage collector held off while a run is measured.

    The simulated account runs in this process and keeps every contact it is sent; each full
    collection walks all of them, so the pauses grow with the run (0.1 to 0.3 s, at ever longer
    intervals), and every request waits them out. ActiveCampaign's servers do not pause for ours,
    so neither does the simulator while it is measured; reference counting still frees memory."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (Linux /proc), e.g. Azurite's node process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def own_usage() -> dict:
    """CPU seconds and peak resident memory of this process.

    The peak is VmHWM from /proc/self/status: the high-water mark of this program's own memory.
    ru_maxrss is not used for it: Linux keeps it across fork and exec, so a worker started from
    the benchmark process (which holds the generated segment and the simulator) would report
    that process's peak instead of its own. Both are given; ru_maxrss where /proc is missing.
    """
    import re
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    ru_maxrss_mb = round(usage.ru_maxrss / 1024, 1)
    try:
        peak_mb = round(int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024, 1)
    except (OSError, AttributeError):
        peak_mb = ru_maxrss_mb
    return {"cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2), "peak_rss_mb": peak_mb, "ru_maxrss_mb": ru_maxrss_mb}


def export_with_workers(env: dict, ctx, export_id: str, workers: int, deadline_seconds: float,
                        began_at: list | None = None) -> tuple[dict, list[dict], float]:
    """One run of the export drained by `workers` processes: its status, each process's report, wall seconds.
    `began_at` gets the run's start (time.monotonic(), the simulator's clock for its request times)."""
    from tests.support.driving import start_run

    began = time.monotonic()
    if began_at is not None:
        began_at.append(began)
    run_id = start_run(ctx, export_id, trigger="cli")
    pool = Workers(env, run_id, workers, deadline_seconds).start()
    try:
        reports = pool.wait()
    finally:
        pool.kill()
    status = wait_final(ctx, run_id, timeout=30)
    return status, reports, time.monotonic() - began


def wait_final(ctx, run_id: str, timeout: float, poll: float = 0.5) -> dict:

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ctx.runs.get_run(run_id).final:
            break
        time.sleep(poll)
    from tests.support.driving import run_status

    return run_status(ctx, run_id)
