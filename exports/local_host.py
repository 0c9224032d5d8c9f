"""Drains the app's queues in this process, the way the Functions host would.

`python -m exports run` and the tests use it in place of the host (Core Tools cannot run here):
it finds each queue-triggered function in the app's own index, calls it with each message,
deletes the message when the call returns, makes it visible again after host.json's
visibilityTimeout when the call raises, and moves it to "<queue>-poison" after maxDequeueCount tries.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, SimpleQueue

import azure.functions as func

from exports.names import CHUNKS_POISON_QUEUE, CHUNKS_QUEUE, POISON_SUFFIX, SEGMENTS_POISON_QUEUE, SEGMENTS_QUEUE

log = logging.getLogger(__name__)
HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
DRAIN_ORDER = (SEGMENTS_QUEUE, CHUNKS_QUEUE, SEGMENTS_POISON_QUEUE, CHUNKS_POISON_QUEUE)


@dataclass(frozen=True)
class QueueSettings:
    max_dequeue_count: int
    retry_delay_seconds: int
    batch_size: int
    new_batch_threshold: int = 0

    @classmethod
    def from_host_json(cls, path: Path = HOST_JSON) -> QueueSettings:
        queues = json.loads(path.read_text())["extensions"]["queues"]
        hours, minutes, seconds = (int(part) for part in queues["visibilityTimeout"].split(":"))
        return cls(int(queues["maxDequeueCount"]), hours * 3600 + minutes * 60 + seconds, int(queues["batchSize"]),
                   int(queues["newBatchThreshold"]))

    @property
    def executions(self) -> int:
        """Messages of one queue an instance works on at once: the host fetches the next batch as soon as no
        more than newBatchThreshold of the last are still running."""
        return self.batch_size + self.new_batch_threshold


_indexes: dict[int, list] = {}


def indexed_functions(app: func.FunctionApp) -> list:
    """The app's function index, built once: like the host, which indexes an app a single time
    (the library refuses a second get_functions() on the same app as duplicate names)."""
    if id(app) not in _indexes:
        _indexes[id(app)] = app.get_functions()
    return _indexes[id(app)]


def queue_functions(app: func.FunctionApp) -> dict[str, Callable]:
    """Queue name -> the user function the host would trigger for it, read from the app's index."""
    functions = {}
    for function in indexed_functions(app):
        for binding in function.get_bindings():
            if binding.type == "queueTrigger":
                functions[binding.queue_name] = function.get_user_function()
    return functions


class LocalQueueHost:
    """With `run_id`, only that run's messages are processed: a local run never picks up the
    messages of another (say an interrupted earlier run), which it would otherwise send."""

    def __init__(self, ctx, app: func.FunctionApp, settings: QueueSettings | None = None,
                 retry_delay_seconds: int | None = None, lease_seconds: int = 600, run_id: str | None = None):
        self.ctx = ctx
        self.functions = queue_functions(app)
        self.settings = settings or QueueSettings.from_host_json()
        self.retry_delay = self.settings.retry_delay_seconds if retry_delay_seconds is None else retry_delay_seconds
        self.lease_seconds = lease_seconds
        self.run_id = run_id
        self.calls: dict[str, int] = {name: 0 for name in DRAIN_ORDER}
        self._running: set[threading.Thread] = set()  # deliveries under way in a concurrent drain
        self._ended: SimpleQueue = SimpleQueue()  # (thread, error or None) of each that ended

    def step(self, queues: tuple[str, ...] = DRAIN_ORDER) -> int:
        """Process what is visible now on `queues`, in pipeline order; returns how many messages."""
        handled = 0
        for name, queue, message in self._receive(queues, self.settings.batch_size):
            self._deliver(name, queue, message)
            handled += 1
        return handled

    def _receive(self, queues: tuple[str, ...], most: int):
        """This host's messages visible now, up to `most` from each queue, in pipeline order."""
        for name in queues:
            queue = self.ctx.storage.queue(name)
            for message in queue.receive_messages(max_messages=most, visibility_timeout=self.lease_seconds):
                if self.run_id is not None and _run_of(message.content) != self.run_id:
                    # Not ours: hidden from us for a while, left to whoever owns it.
                    queue.update_message(message, visibility_timeout=self.settings.retry_delay_seconds)
                    continue
                yield name, queue, message

    def _deliver(self, name: str, queue, message) -> None:
        self.calls[name] += 1
        trigger = func.QueueMessage(id=message.id, body=message.content.encode("utf-8"), pop_receipt=message.pop_receipt)
        try:
            self.functions[name](trigger)
        except KeyboardInterrupt:
            queue.update_message(message, visibility_timeout=0)  # interrupted, not failed: at once for the next try
            raise
        except Exception as error:
            if message.dequeue_count >= self.settings.max_dequeue_count and not name.endswith(POISON_SUFFIX):
                log.warning("message %s failed %d times (%s); moving it to %s%s", message.id, message.dequeue_count,
                            type(error).__name__, name, POISON_SUFFIX)
                self.ctx.storage.queue(name + POISON_SUFFIX).send_message(message.content)
                queue.delete_message(message)
            else:
                log.info("message %s on %s failed (%s: %s); retrying in %d s", message.id, name,
                         type(error).__name__, error, self.retry_delay)
                queue.update_message(message, visibility_timeout=self.retry_delay)
            return
        queue.delete_message(message)

    def drain(self, done: Callable[[], bool], timeout_seconds: float = 3600,
              progress: Callable[[], None] | None = None, idle_sleep: float = 0.2, executions: int = 1) -> None:
        """Process messages until `done()` is true; raises TimeoutError after `timeout_seconds`.

        With `executions` > 1, that many messages at once, each in its own thread, as an instance
        of the host does (QueueSettings.executions): one chunk then sends while another reads its
        bucket or commits, so the account's budget stays in use across chunk boundaries.
        An interrupt (Ctrl-C) reaches this thread only: the deliveries under way go on, and a
        later drain waits for them (a cancelled run's chunks stop before their next import)."""
        deadline = time.monotonic() + timeout_seconds
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the queues were not drained within {timeout_seconds} s")
            if executions > 1:
                self._step_concurrently(executions, idle_sleep)
            elif not self.step():
                time.sleep(idle_sleep)  # messages waiting out their retry delay
            if progress:
                progress()
        while self._running:  # done, but a delivery may still be returning (deleting its message)
            self._wait_for_a_delivery(1.0)

    def _step_concurrently(self, executions: int, idle_sleep: float) -> None:
        """Start deliveries up to `executions` under way, then wait until one ends: at most `idle_sleep` when
        fewer are under way (new messages may come), else at most a second."""
        free = executions - len(self._running)
        for queue_name in DRAIN_ORDER:
            if free <= 0:
                break
            for name, queue, message in self._receive((queue_name,), free):
                thread = threading.Thread(target=self._deliver_in_thread, args=(name, queue, message), daemon=True)
                self._running.add(thread)
                thread.start()
                free -= 1
        # A bounded wait, so an interrupt and the progress line are seen at least once a second.
        self._wait_for_a_delivery(idle_sleep if free > 0 else 1.0)

    def _deliver_in_thread(self, name: str, queue, message) -> None:
        error = None
        try:
            self._deliver(name, queue, message)
        except BaseException as raised:  # storage unreachable, say: the drain raises it
            error = raised
        self._ended.put((threading.current_thread(), error))

    def _wait_for_a_delivery(self, timeout: float) -> None:
        try:
            thread, error = self._ended.get(timeout=timeout)
        except Empty:
            return
        self._running.discard(thread)
        if error is not None:
            raise error

def _run_of(content: str) -> str | None:
    try:
        message = json.loads(content)
    except ValueError:
        return None
    return message.get("runId") if isinstance(message, dict) else None
