"""One benchmark worker process: its own AppContext and LocalQueueHost loop, like one Function instance.

    python -m tests.bench.worker '{"env": {...}, "run_id": "...", "deadline": EPOCH, "concurrency": 1}'

It drains the segment and chunk queues (one message at a time per thread; `concurrency` threads
stand for host.json's batchSize) until the run is final or the deadline passes, then prints one
JSON line: pid, CPU seconds, peak resident memory, messages handled (and how many were blobs to split).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time

IDLE_SLEEP = 0.2  # between polls of empty queues (the host's maxPollingInterval is 2 s)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s worker %(levelname)s %(message)s")
    from exports.context import set_context
    from exports.local_host import DRAIN_ORDER, LocalQueueHost, QueueSettings
    from exports.names import CHUNKS_QUEUE, SEGMENTS_QUEUE
    from function_app import app
    from tests.bench.harness import context, own_usage

    ctx = context(spec["env"])
    set_context(ctx)
    host_settings = QueueSettings.from_host_json()
    one_at_a_time = QueueSettings(host_settings.max_dequeue_count, host_settings.retry_delay_seconds, batch_size=1)
    deadline, run_id = float(spec["deadline"]), spec["run_id"]
    handled, chunk_seconds, splits = [], [], []
    final = threading.Event()

    def loop():
        host = LocalQueueHost(ctx, app, settings=one_at_a_time, retry_delay_seconds=1)
        count = 0
        while not final.is_set() and time.time() < deadline:
            done = 0
            for name in DRAIN_ORDER:  # one queue per step, so a chunk's execution is timed alone
                began = time.monotonic()
                handled_now = host.step((name,))
                if name == CHUNKS_QUEUE and handled_now:
                    chunk_seconds.append(time.monotonic() - began)
                if name == SEGMENTS_QUEUE and handled_now:
                    splits.append(handled_now)
                done += handled_now
            count += done
            if not done:
                if ctx.runs.get_run(run_id).final:
                    final.set()
                    break
                time.sleep(IDLE_SLEEP)
        handled.append(count)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(int(spec.get("concurrency", 1)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    chunk_seconds.sort()
    print(json.dumps({"pid": os.getpid(), **own_usage(), "messages": sum(handled), "finished": final.is_set(),
                      "split_messages": sum(splits), "chunk_seconds": chunk_seconds}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
