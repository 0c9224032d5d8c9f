"""The shared rate budget (shared/ratelimit.py) as the simulated account sees it.

Functional, not timed: every assertion is a count the simulator kept, a list's exact contents,
or the slots the budget handed out (computed values, not measurements). The one bound on
elapsed time is derived from the configured intervals with seconds of slack, and only tells
"the others went on at once" from "the others waited for a lease to expire".

Limits are scaled so each test takes seconds. The worker-process tests use an Azurite of their
own, so no message or run of another test can reach their workers.
"""
from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import threading
import time
import uuid
from multiprocessing.connection import wait

import pytest
import requests

from exports.activecampaign.budget import SENDERS_PER_PROCESS, AccountBudget
from exports.activecampaign.client import ActiveCampaignClient
from exports.errors import MissingInAccount, Transient
from exports.names import RATE_BUDGETS_TABLE, SEGMENTS_CONTAINER
from tests.support.activecampaign import ActiveCampaignSimulator
from tests.support.apphost import API_KEY
from tests.support.azurite import Azurite
from tests.support.driving import run_status, start_run
from tests.support.profiles import make_segment
from tests.support.records import add_connection, add_export

KEY = "budget-test-key"
OTHER_INTEGRATION_KEY = "another-integration-on-the-account"
LIST_ID = "3"
MAPPING = {"email": "email", "firstName": "first name", "lastName": "last name"}
EPSILON = 1e-6  # slots are floats written to and read back from Table storage


# --- helpers ----------------------------------------------------------------------------------------
class Ledger:
    """Every slot the budgets of this process handed out and every penalty, in call order, by thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reservations: list[tuple[int, float, str, float]] = []  # (thread, called at, kind, slot)
        self.penalties: list[tuple[int, float, float]] = []  # (thread, returned at, until)

    def install(self, monkeypatch) -> Ledger:
        reserve, penalize = AccountBudget.reserve, AccountBudget.penalize
        request_then_bulk, reads_at_once = AccountBudget.reserve_request_then_bulk, AccountBudget.reserve_reads
        imports_at_once = AccountBudget.reserve_imports
        ledger = self

        def record(called: float, *kinds_and_slots: tuple[str, float]) -> None:
            with ledger.lock:
                ledger.reservations.extend((threading.get_ident(), called, kind, slot) for kind, slot in kinds_and_slots)

        def recording_reserve(budget, kind):
            called = budget._clock()
            slot = reserve(budget, kind)
            record(called, (kind, slot))
            return slot

        def recording_request_then_bulk(budget, contacts, after):
            called = budget._clock()
            read, bulk = request_then_bulk(budget, contacts, after)
            record(called, *([("request", read)] if read is not None else []), (budget.bulk_kind(contacts), bulk))
            return read, bulk

        def recording_requests(budget, count):
            called = budget._clock()
            slots = reads_at_once(budget, count)
            record(called, *(("request", slot) for slot in slots))
            return slots

        def recording_imports(budget, count, after):
            called = budget._clock()
            slots = imports_at_once(budget, count, after)
            record(called, *(("bulk", slot) for slot in slots))
            return slots

        def recording_penalize(budget, pause_seconds):
            until = budget._clock() + pause_seconds
            penalize(budget, pause_seconds)
            with ledger.lock:
                ledger.penalties.append((threading.get_ident(), budget._clock(), until))

        monkeypatch.setattr(AccountBudget, "reserve", recording_reserve)
        monkeypatch.setattr(AccountBudget, "reserve_request_then_bulk", recording_request_then_bulk)
        monkeypatch.setattr(AccountBudget, "reserve_reads", recording_requests)
        monkeypatch.setattr(AccountBudget, "reserve_imports", recording_imports)
        monkeypatch.setattr(AccountBudget, "penalize", recording_penalize)
        return self

    def slots(self, *kinds: str) -> list[float]:
        return sorted(slot for _, _, kind, slot in self.reservations if kind in kinds)

    def asked_after(self, moment: float, other_than: int | None = None) -> list[float]:
        """Slots of the reservations asked for after `moment`, optionally by threads other than one."""
        return [slot for thread, called, _, slot in self.reservations if called > moment and thread != other_than]



def run_concurrently(target, count: int, timeout: float) -> None:
    """Run target(0) ... target(count - 1) in threads at once and wait for all (bounded)."""
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)

def assert_spaced(slots: list[float], interval: float) -> None:
    gaps = [b - a for a, b in zip(slots, slots[1:], strict=False)]
    assert all(gap >= interval - EPSILON for gap in gaps), f"slots closer than {interval:.4f} s: {min(gaps):.4f}"


def assert_within_limits(simulator: ActiveCampaignSimulator, requests_per_second: int, bulk_per_minute: int) -> None:
    stats = simulator.stats()
    assert stats["throttled_429"] == 0 and stats["throttled_bulk"] == 0, stats["responses_by_status"]
    assert simulator.max_requests_in_window(1.0) <= requests_per_second
    assert simulator.max_requests_in_window(60.0, bulk_only=True) <= bulk_per_minute


def contacts(prefix: str, count: int) -> list[dict]:
    return [{"email": f"{prefix}{n}@example.com", "first_name": f"F{n}"} for n in range(count)]


def budget_for(connection_string: str, account: str, requests_per_second: float, bulk_per_minute: float) -> AccountBudget:
    from azure.data.tables import TableServiceClient

    tables = TableServiceClient.from_connection_string(connection_string)  # one per worker, like separate instances
    return AccountBudget(tables.get_table_client(RATE_BUDGETS_TABLE), account, requests_per_second, bulk_per_minute)


@pytest.fixture(scope="module")
def own_azurite():
    with Azurite() as instance:
        yield instance


@pytest.fixture
def tables(azurite):
    from azure.core.exceptions import ResourceExistsError
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(azurite.connection_string)
    try:
        service.create_table(RATE_BUDGETS_TABLE)
    except ResourceExistsError:
        pass
    return azurite.connection_string


def account() -> str:
    return f"budget-{uuid.uuid4().hex[:12]}.api-us1.com"  # a fresh budget entity per test


def _context(env: dict):
    from exports.context import build_context
    from exports.settings import Settings

    ctx = build_context(Settings.from_env(env))  # no KEY_VAULT_URL: the key comes from ACTIVECAMPAIGN_API_KEY
    ctx.ensure_resources()
    return ctx


# --- worker processes ---------------------------------------------------------------------------------
def _worker_process(env: dict, run_id: str, deadline: float, lease_seconds: int, hold_after_imports: int | None,
                    reports) -> None:
    """A Function instance stand-in: its own AppContext and LocalQueueHost loop over the app's queues.

    With `hold_after_imports`, it reserves one more bulk slot after that many imports, reports the
    slot and stops there, holding its chunk message, until the test kills it (SIGKILL).
    """
    from exports.context import set_context
    from exports.local_host import DRAIN_ORDER, LocalQueueHost, QueueSettings
    from exports.names import CHUNKS_QUEUE
    from function_app import app

    ctx = _context(env)
    set_context(ctx)
    if hold_after_imports is not None:
        reserve, reserve_imports, counted = AccountBudget.reserve, AccountBudget.reserve_imports, []

        def hold_once_past(slots: list[float]) -> None:
            counted.extend(slots)
            if len(counted) > hold_after_imports:
                reports.send(("holding", os.getpid(), slots[0]))
                time.sleep(max(0.0, deadline - time.time()))  # killed long before

        def reserve_then_hold(budget, kind):
            slot = reserve(budget, kind)
            if kind in ("bulk", "single"):
                hold_once_past([slot])
            return slot

        def reserve_imports_then_hold(budget, count, after):
            slots = reserve_imports(budget, count, after)
            hold_once_past(slots)
            return slots

        AccountBudget.reserve, AccountBudget.reserve_imports = reserve_then_hold, reserve_imports_then_hold
    host = LocalQueueHost(ctx, app, settings=QueueSettings(5, 1, 1), retry_delay_seconds=1, lease_seconds=lease_seconds)
    reports.send(("ready", os.getpid(), None))
    while time.time() < deadline:
        if not host.step(DRAIN_ORDER):
            if ctx.runs.get_run(run_id).final:
                break
            time.sleep(0.1)
    reports.send(("done", os.getpid(), host.calls[CHUNKS_QUEUE]))
    reports.close()


class ProcessRun:
    """A run of the app drained by worker processes against `simulator`, on the module's own Azurite."""

    def __init__(self, azurite, simulator, requests_per_second: int, bulk_per_minute: int, rows: int, chunk_size: int):
        self.env = {
            "AzureWebJobsStorage": azurite.connection_string, "ACTIVECAMPAIGN_BASE_URL": simulator.base_url,
            "ACTIVECAMPAIGN_API_KEY": KEY, "ACTIVECAMPAIGN_REQUESTS_PER_SECOND": str(requests_per_second),
            "ACTIVECAMPAIGN_BULK_REQUESTS_PER_MINUTE": str(bulk_per_minute), "EXPORT_CHUNK_SIZE": str(chunk_size),
        }
        self.ctx = ctx = _context(self.env)
        prefix = f"budget-{uuid.uuid4().hex[:8]}/"
        files, self.expected = make_segment(rows=rows, blobs=2, seed=3, bad=False)
        for name, data in files:
            ctx.storage.blobs.get_blob_client(SEGMENTS_CONTAINER, prefix + name).upload_blob(data, overwrite=True)
        connection = add_connection(ctx, account(), display_name="budget test")
        self.export = add_export(ctx, connection, prefix, MAPPING, list_id=LIST_ID, display_name="budget test")
        self.spawn = multiprocessing.get_context("spawn")
        # One pipe per process, not a shared multiprocessing.Queue: a process killed while its
        # queue's feeder thread held the shared write lock would leave every other writer blocked.
        self.pipes: dict[int, object] = {}
        self.processes: list = []
        self.reports: list = []
        self.run_id: str | None = None

    def begin(self, workers: int, deadline_seconds: float, lease_seconds: int = 600, doomed: int = 0,
              hold_after_imports: int = 2) -> None:
        """Start the run, then `workers` processes, `doomed` of which hold a slot after a few imports."""
        self.run_id = start_run(self.ctx, self.export.id, trigger="cli")
        deadline = time.time() + deadline_seconds
        for n in range(workers):
            hold = hold_after_imports if n < doomed else None
            receiving, sending = self.spawn.Pipe(duplex=False)
            process = self.spawn.Process(target=_worker_process, daemon=True, args=(
                self.env, self.run_id, deadline, lease_seconds, hold, sending))
            process.start()
            sending.close()
            self.pipes[n] = receiving
            self.processes.append(process)

    def _read(self, timeout: float) -> None:
        for pipe in wait(list(self.pipes.values()), timeout=timeout):
            try:
                self.reports.append(pipe.recv())
            except EOFError:  # the process ended (or was killed): nothing more comes from it
                self.pipes = {n: p for n, p in self.pipes.items() if p is not pipe}

    def next_report(self, kind: str, timeout: float) -> tuple:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [report for report in self.reports if report[0] == kind]
            if found:
                return found[0]
            if not self.pipes:
                break
            self._read(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
        raise AssertionError(f"no {kind!r} report within {timeout} s: {self.reports}")

    def finish(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while self.pipes and time.monotonic() < deadline:
            self._read(timeout=0.5)
        self.kill_all()
        return run_status(self.ctx, self.run_id)

    def chunk_messages_by_process(self) -> dict[int, int]:
        return {report[1]: report[2] for report in self.reports if report[0] == "done"}

    def kill_all(self) -> None:
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


@pytest.fixture
def process_run(own_azurite):
    from exports.names import QUEUES

    runs = []

    def make(simulator, requests_per_second, bulk_per_minute, rows, chunk_size):
        run = ProcessRun(own_azurite, simulator, requests_per_second, bulk_per_minute, rows, chunk_size)
        for name in QUEUES:
            run.ctx.storage.queue(name).clear_messages()
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.kill_all()


# --- N concurrent workers never exceed the account's limits ------------------------------------------
def test_threads_each_with_its_own_budget_client_never_exceed_the_account_limits(tables, monkeypatch):
    """Six workers (threads, each with its own Table client, like six instances) send bulk imports and
    other requests as fast as they can; the budget alone keeps them under the limits."""
    rps, bulk_per_minute, workers, imports_each = 12, 240, 6, 3
    ledger = Ledger().install(monkeypatch)
    name = account()
    with ActiveCampaignSimulator(api_keys={KEY}, lists={LIST_ID: "Budget"}, requests_per_second=rps,
                                 bulk_per_minute=bulk_per_minute) as simulator:
        sent, errors, start = [], [], threading.Barrier(workers)

        def worker(n: int) -> None:
            budget = budget_for(tables, name, rps, bulk_per_minute)
            client = ActiveCampaignClient(simulator.base_url, KEY, timeout=10)
            try:
                start.wait()
                for i in range(imports_each):
                    budget.before_request()
                    client.get_list(LIST_ID)
                    batch = contacts(f"w{n}b{i}-", 20)
                    budget.before_bulk(len(batch))
                    client.bulk_import(batch, LIST_ID)
                    sent.extend(c["email"] for c in batch)
            except Exception as error:  # noqa: BLE001 - reported below with the thread's number
                errors.append((n, error))
            finally:
                client.close()

        run_concurrently(worker, workers, timeout=120)

        assert errors == []
        assert_within_limits(simulator, rps, bulk_per_minute)
        stats = simulator.stats()
        assert stats["bulk_requests"] == workers * imports_each
        assert stats["requests"] == workers * imports_each * 2
        assert simulator.subscribed(LIST_ID) == set(sent) and len(sent) == workers * imports_each * 20
        budget = budget_for(tables, name, rps, bulk_per_minute)
        # No two workers were ever handed overlapping slots (ETag concurrency on one entity).
        assert len(ledger.reservations) == stats["requests"]
        assert_spaced(ledger.slots("request", "bulk"), budget.request_interval)
        assert_spaced(ledger.slots("bulk"), budget.bulk_interval)


def test_worker_processes_draining_one_run_stay_within_the_limits_and_send_everything_once(process_run):
    rps, bulk_per_minute = 20, 300
    with ActiveCampaignSimulator(api_keys={KEY}, lists={LIST_ID: "Budget"}, requests_per_second=rps,
                                 bulk_per_minute=bulk_per_minute) as simulator:
        run = process_run(simulator, rps, bulk_per_minute, rows=6000, chunk_size=1000)
        run.begin(workers=3, deadline_seconds=180)

        status = run.finish(timeout=200)

        assert status["status"] == "succeeded" and status["sent"] == run.expected.contacts
        assert simulator.subscribed(LIST_ID) == run.expected.emails
        assert simulator.stats()["contacts_imported"] == run.expected.contacts, "every contact sent exactly once"
        assert_within_limits(simulator, rps, bulk_per_minute)
        by_process = run.chunk_messages_by_process()
        # Every chunk had its message. Timing decides two more for the remainder chunk: one when its commit
        # waited for the last bucket to be final (exports/run/remainder.py), one when two chunks finishing
        # at once both queued it (the README's known waste of one import; the checks above hold either way).
        assert status["chunks"]["total"] + 2 >= sum(by_process.values()) >= status["chunks"]["total"] >= 6
        assert sum(1 for count in by_process.values() if count) >= 2, f"chunks were sent concurrently: {by_process}"


# --- a worker killed while holding a slot -----------------------------------------------------------
def _reserve_and_hold(connection_string: str, name: str, rps: float, bulk_per_minute: float, slots) -> None:
    budget = budget_for(connection_string, name, rps, bulk_per_minute)
    slots.send(budget.reserve("bulk"))
    time.sleep(120)  # holds the slot it reserved, and never sends: the test kills it first


def test_a_worker_killed_after_reserving_costs_the_others_one_interval(tables, monkeypatch):
    rps, bulk_per_minute, survivors, imports_each = 20, 120, 2, 2
    name = account()
    spawn = multiprocessing.get_context("spawn")
    slots, sending = spawn.Pipe(duplex=False)
    doomed = spawn.Process(target=_reserve_and_hold, args=(tables, name, rps, bulk_per_minute, sending), daemon=True)
    doomed.start()
    sending.close()
    assert slots.poll(60), "the doomed worker reserved no slot"
    held = slots.recv()
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join(timeout=10)
    killed_at = time.monotonic()
    assert doomed.exitcode == -signal.SIGKILL

    ledger = Ledger().install(monkeypatch)
    with ActiveCampaignSimulator(api_keys={KEY}, lists={LIST_ID: "Budget"}, requests_per_second=rps,
                                 bulk_per_minute=bulk_per_minute) as simulator:
        errors = []

        def survivor(n: int) -> None:
            budget = budget_for(tables, name, rps, bulk_per_minute)
            client = ActiveCampaignClient(simulator.base_url, KEY, timeout=10)
            try:
                for i in range(imports_each):
                    budget.before_bulk(20)
                    client.bulk_import(contacts(f"s{n}i{i}-", 20), LIST_ID)
            except Exception as error:  # noqa: BLE001
                errors.append(error)
            finally:
                client.close()

        run_concurrently(survivor, survivors, timeout=60)

        assert errors == []
        budget = budget_for(tables, name, rps, bulk_per_minute)
        first_ask = min(called for _, called, _, _ in ledger.reservations)
        granted = ledger.slots("bulk")
        # The dead worker's slot is simply skipped: the first survivor gets the next one, or now if
        # that is already past; nothing waits for the dead worker to release anything.
        assert granted[0] >= held + budget.bulk_interval - EPSILON
        assert granted[0] <= max(held + budget.bulk_interval, first_ask) + 1.0
        assert_spaced([held] + granted, budget.bulk_interval)
        assert_within_limits(simulator, rps, bulk_per_minute)
        assert simulator.stats()["bulk_requests"] == survivors * imports_each
        # Generous: the survivors' imports plus the dead slot, with seconds to spare on a loaded machine.
        last = simulator.bulk_timestamps()[-1]
        assert last - killed_at <= (survivors * imports_each + 1) * budget.bulk_interval + 5.0


def test_a_worker_process_killed_mid_chunk_holding_a_slot_stalls_nobody_and_loses_nothing(process_run):
    rps, bulk_per_minute, lease = 20, 300, 8
    interval = 1.03 * 60 / bulk_per_minute
    with ActiveCampaignSimulator(api_keys={KEY}, lists={LIST_ID: "Budget"}, requests_per_second=rps,
                                 bulk_per_minute=bulk_per_minute) as simulator:
        run = process_run(simulator, rps, bulk_per_minute, rows=8000, chunk_size=1000)
        run.begin(workers=3, deadline_seconds=180, lease_seconds=lease, doomed=1, hold_after_imports=2)
        _, pid, _ = run.next_report("holding", timeout=120)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        imported_before = simulator.stats()["bulk_requests"]

        status = run.finish(timeout=200)

        assert status["status"] == "succeeded" and status["sent"] == run.expected.contacts
        assert simulator.subscribed(LIST_ID) == run.expected.emails, "the dead worker's chunk was resumed by another"
        assert_within_limits(simulator, rps, bulk_per_minute)
        after = [stamp for stamp in simulator.bulk_timestamps() if stamp > killed_at]
        assert simulator.stats()["bulk_requests"] > imported_before and after
        # The others went on at once: far sooner than the dead worker's message came back (the lease).
        assert after[0] - killed_at <= 2 * interval + 3.0 < lease


# --- throttling from outside the budget ---------------------------------------------------------------
def test_another_integration_using_the_account_is_absorbed_with_nothing_lost(app, monkeypatch):
    """Another client on the same account (its own key, outside our budget) takes every request the
    account allows for a while; our worker is throttled, pauses every worker of the account through
    the budget, and then sends the whole segment."""
    ledger = Ledger().install(monkeypatch)
    files, expected = make_segment(rows=10_000, blobs=2, seed=9, bad=False)
    for file_name, data in files:
        app.upload("budget-external/" + file_name, data)
    app.simulator.configure(api_keys={API_KEY, OTHER_INTEGRATION_KEY})
    export = app.export(prefix="budget-external/", mapping=MAPPING)
    run_id = app.start(export.id).body["runId"]
    while app.host.step(queues=("export-segments",)):
        pass
    stop, answers = threading.Event(), []

    def other_integration():
        session = requests.Session()
        session.headers["Api-Token"] = OTHER_INTEGRATION_KEY
        ends = time.monotonic() + 2.0
        while not stop.is_set() and time.monotonic() < ends:
            answers.append(session.get(f"{app.simulator.base_url}/api/3/users/me", timeout=5).status_code)
        session.close()

    hammer = threading.Thread(target=other_integration)
    hammer.start()
    try:
        status = app.drain(run_id)
    finally:
        stop.set()
        hammer.join(timeout=10)

    assert status["status"] == "succeeded" and status["sent"] == expected.contacts
    assert app.simulator.subscribed("3") == expected.emails
    assert 429 in answers and 200 in answers, "the other integration really used the account"
    assert ledger.penalties, "our worker was throttled and paused the account's budget"
    for _, returned, until in ledger.penalties:
        assert all(slot >= until - EPSILON for slot in ledger.asked_after(returned))


def test_a_chunk_reads_its_budget_and_run_rows_less_often_than_it_sends(app, monkeypatch):
    """At most one budget write (an entity read and a conditional write of Table storage) per bulk import, which also
    holds the slot of the outcome read before it; the reads due together at a chunk's end share one. The run
    row is read as the chunk starts, not before every batch: a cancel reaches the sender on its chunk's row."""
    from exports.store.runs import RunStore
    from shared.ratelimit import SharedRateBudget

    writes, real = [], SharedRateBudget.reserve_series
    monkeypatch.setattr(SharedRateBudget, "reserve_series",
                        lambda budget, steps, **options: writes.append(len(steps)) or real(budget, steps, **options))
    run_reads, real_get_run = [], RunStore.get_run
    monkeypatch.setattr(RunStore, "get_run", lambda store, run_id: run_reads.append(run_id) or real_get_run(store, run_id))
    app.simulator.configure(import_processing_seconds=0.3)  # outcomes arrive later, as ActiveCampaign's do
    files, expected = make_segment(rows=5000, blobs=1, seed=4, bad=False)
    for file_name, data in files:
        app.upload("budget-reads/" + file_name, data)
    export = app.export(prefix="budget-reads/", mapping=MAPPING)

    status = app.drain(app.start(export.id).body["runId"])

    stats = app.simulator.stats()
    assert status["status"] == "succeeded" and stats["bulk_requests"] >= 20
    requests_made = stats["bulk_requests"] + stats["import_info_requests"]
    assert sum(writes) >= requests_made, "every request had its slot"
    assert len(writes) <= stats["bulk_requests"] + stats["import_info_requests"] / 2 + 3, (
        f"{len(writes)} reservations for {stats['bulk_requests']} imports and {stats['import_info_requests']} reads")
    assert len(run_reads) < stats["bulk_requests"] / 2, f"{len(run_reads)} run row reads for {stats['bulk_requests']} imports"


def test_a_sender_alone_with_no_outcome_due_takes_its_next_imports_slots_with_this_ones(app, monkeypatch):
    """While no earlier import's outcome is due for reading, the chunk has more imports to send and the account
    has room for them (a chunk alone), it reserves the next imports' slots with this one's: one budget write
    (an entity read and a conditional write) for several imports. Every import still goes in a slot
    reserved for it, none closer than the interval."""
    from exports.run import outcomes
    from exports.run.outcomes import IMPORTS_RESERVED_AT_ONCE
    from shared.ratelimit import SharedRateBudget
    from tests.support.apphost import ACCOUNT_HOST

    monkeypatch.setattr(outcomes, "FIRST_READ_DELAY_SECONDS", 600.0)  # nothing is due while the chunks send
    series, real = [], SharedRateBudget.reserve_series

    def recording(budget, steps, **options):
        slots = real(budget, steps, **options)
        series.append((steps, slots))
        return slots

    monkeypatch.setattr(SharedRateBudget, "reserve_series", recording)
    files, expected = make_segment(rows=5000, blobs=1, seed=5, bad=False)
    for file_name, data in files:
        app.upload("budget-pairs/" + file_name, data)
    status = app.drain(app.start(app.export(prefix="budget-pairs/", mapping=MAPPING).id).body["runId"])

    assert status["status"] == "succeeded" and app.simulator.subscribed("3") == expected.emails
    imports = app.simulator.stats()["bulk_requests"]
    chunks = status["chunks"]["total"]
    import_reservations = [slots for steps, slots in series if all("imports" in cells for cells, _ in steps)]
    assert imports >= 20
    assert sum(map(len, import_reservations)) == imports, "every import went in a slot reserved for it"
    assert len(import_reservations) <= imports / IMPORTS_RESERVED_AT_ONCE + chunks, (
        f"{len(import_reservations)} reservations for {imports} imports in {chunks} chunks")
    assert_spaced(sorted(slot for slots in import_reservations for slot in slots),
                  app.ctx.accounts.budget(ACCOUNT_HOST).bulk_interval)


def test_imports_reserved_together_are_spaced_by_the_senders_cycle_which_a_retrys_wait_does_not_swamp(tables):
    from azure.data.tables import TableServiceClient

    from exports.activecampaign.budget import FIRST_IMPORT_CYCLE_SECONDS, IMPORT_CYCLE_OUTLIER

    clock = _Clock(6_000_000.0)
    table = TableServiceClient.from_connection_string(tables).get_table_client(RATE_BUDGETS_TABLE)
    budget = AccountBudget(table, account(), 5, 100, clock=clock)
    first, second = budget.reserve_imports(2, after=1.0)  # a cycle longer than the interval (0.603 s)
    assert second - first == pytest.approx(2 * budget.bulk_interval, abs=1e-5), (
        "a whole number of intervals: the one between is free for another sender's import")
    assert budget.reserve("bulk") - first == pytest.approx(budget.bulk_interval, abs=1e-5)
    clock.now += 10.0
    first, second = budget.reserve_imports(2, after=0.01)
    assert second - first == pytest.approx(budget.bulk_interval, abs=1e-5), "never closer than the interval"
    clock.now += 10.0
    slots = budget.reserve_imports(4, after=1.2 * budget.bulk_interval)
    assert [round((slot - slots[0]) / budget.bulk_interval, 3) for slot in slots] == [0, 2, 3, 4], (
        "each slot's distance from the first is rounded up, not each step: 2, 4 and 6 intervals would leave the "
        "sender, ready every 1.2 intervals, idle for one interval in three")

    assert budget.import_cycle_seconds == FIRST_IMPORT_CYCLE_SECONDS
    budget.observe_import_cycle(0.03)
    assert budget.import_cycle_seconds == 0.03, "the first cycle seen replaces the starting guess"
    budget.observe_import_cycle(0.08)
    assert budget.import_cycle_seconds == pytest.approx(0.03 + 0.2 * 0.05)
    before = budget.import_cycle_seconds
    budget.observe_import_cycle(30.0)  # a 429's wait
    assert budget.import_cycle_seconds == pytest.approx(before + 0.2 * (IMPORT_CYCLE_OUTLIER - 1) * before)


def test_a_chunk_reads_its_last_imports_at_once_only_when_no_other_chunk_of_the_account_is_sending(app, monkeypatch):
    """Reading an import before ActiveCampaign reports on it (about a second, FACTS.md) wastes a request
    slot. When the chunk's last import is sent and no other chunk of the account sends in this process,
    nothing needs that slot, so the chunk reads at once and ends sooner; while another one sends (a turn
    held here), every first read waits the second, leaving the slots to that chunk's imports."""
    from exports.activecampaign.client import ActiveCampaignClient
    from exports.run.outcomes import FIRST_READ_DELAY_SECONDS
    from tests.support.apphost import ACCOUNT_HOST

    sent_at, first_read_at = {}, {}
    real_import, real_info = ActiveCampaignClient.bulk_import, ActiveCampaignClient.import_info

    def recording_import(client, contacts, *args, **kwargs):
        accepted = real_import(client, contacts, *args, **kwargs)
        sent_at[accepted.batch_id] = time.time()
        return accepted

    def recording_info(client, batch_id):
        first_read_at.setdefault(batch_id, time.time())
        return real_info(client, batch_id)

    monkeypatch.setattr(ActiveCampaignClient, "bulk_import", recording_import)
    monkeypatch.setattr(ActiveCampaignClient, "import_info", recording_info)

    def first_read_delays(prefix: str) -> list[float]:
        sent_at.clear()
        first_read_at.clear()
        files, _ = make_segment(rows=600, blobs=1, seed=11, bad=False)  # one chunk of three imports
        for file_name, data in files:
            app.upload(prefix + file_name, data)
        status = app.drain(app.start(app.export(prefix=prefix, mapping=MAPPING).id).body["runId"])
        assert status["status"] == "succeeded" and len(sent_at) == 3
        return [first_read_at[batch] - sent for batch, sent in sent_at.items()]

    alone = first_read_delays("reads-alone/")
    assert max(alone) < FIRST_READ_DELAY_SECONDS / 2, f"read at once when nothing else sends: {alone}"
    with app.ctx.accounts.budget(ACCOUNT_HOST).sending():  # another chunk of the account is sending
        beside_another = first_read_delays("reads-beside-another/")
    assert min(beside_another) >= FIRST_READ_DELAY_SECONDS, f"first reads a second after the import: {beside_another}"


def test_chunks_of_a_run_starting_together_in_a_process_check_its_list_once(app, monkeypatch):
    """Every chunk checks the run's list before it sends, but chunks starting at once in one process wait for
    one check instead of each taking a request slot (the imports of chunks already sending need them)."""
    from exports.run.account import check_list
    from tests.support.apphost import ACCOUNT_HOST

    checks, real_get_list = [], ActiveCampaignClient.get_list

    def slow_get_list(client, list_id):
        checks.append(list_id)
        time.sleep(0.1)  # the others arrive while it is under way
        return real_get_list(client, list_id)

    monkeypatch.setattr(ActiveCampaignClient, "get_list", slow_get_list)
    files, _ = make_segment(rows=10, blobs=1, seed=14, bad=False)
    for file_name, data in files:
        app.upload("list-once/" + file_name, data)
    run = app.ctx.runs.get_run(app.start(app.export(prefix="list-once/", mapping=MAPPING).id).body["runId"])
    client = app.ctx.accounts.client(run.hostname, run.api_key_secret_name)
    budget = app.ctx.accounts.budget(ACCOUNT_HOST)
    together = threading.Barrier(6)

    def chunk_start(_):
        together.wait(timeout=10)
        check_list(app.ctx, client, budget, run)

    run_concurrently(chunk_start, 6, timeout=30)
    assert checks == [run.list_id]

    # When the check fails (the list was deleted, say), the chunks that waited for it each ask for themselves.
    checks.clear()
    failures = []

    def missing_list(client, list_id):
        checks.append(list_id)
        time.sleep(0.1)
        raise MissingInAccount(f"list {list_id} does not exist in this ActiveCampaign account")

    def chunk_of_another_run(_):
        together.wait(timeout=10)
        try:
            check_list(app.ctx, client, budget, other_run)
        except MissingInAccount as error:
            failures.append(str(error))

    monkeypatch.setattr(ActiveCampaignClient, "get_list", missing_list)
    other_run = dataclasses.replace(run, id="another-run")
    run_concurrently(chunk_of_another_run, 6, timeout=30)
    assert len(checks) == 6 and len(failures) == 6, (checks, failures)


def test_imports_sent_after_one_still_processing_are_not_read_before_it_is_read_again(app):
    """A chunk's last imports are read at once when nothing else sends, but ActiveCampaign processes its imports
    in turn: once the oldest is found still processing, the younger ones wait for its next read instead of
    each taking a request slot for the same answer. Every outcome is still read."""
    app.simulator.configure(import_processing_seconds=0.6)  # longer than the chunk takes to send its imports
    files, expected = make_segment(rows=1500, blobs=1, seed=12, bad=False)  # one chunk of six imports
    for file_name, data in files:
        app.upload("reads-in-turn/" + file_name, data)

    status = app.drain(app.start(app.export(prefix="reads-in-turn/", mapping=MAPPING).id).body["runId"])

    stats = app.simulator.stats()
    assert status["status"] == "succeeded" and status["sent"] == expected.contacts and stats["bulk_requests"] == 6
    # The oldest is read about three times before it is done (at once, then backing off); each other once.
    assert stats["import_info_requests"] <= stats["bulk_requests"] + 3, (
        f"{stats['import_info_requests']} reads for {stats['bulk_requests']} imports")


@pytest.mark.parametrize("status_code", [429, 503])
def test_a_throttling_answer_to_one_worker_pauses_every_worker_and_nothing_is_lost(tables, monkeypatch, status_code):
    """The account answers one import with throttling (429 with Retry-After, or 503 without): the
    worker that got it pauses the account's budget, so the other workers' next slots come after the
    pause too; the refused batch is sent again, and every batch reaches the list exactly once."""
    from exports.activecampaign.backoff import Backoff

    rps, bulk_per_minute, workers, imports_each = 20, 600, 3, 5
    ledger = Ledger().install(monkeypatch)
    name = account()
    with ActiveCampaignSimulator(api_keys={KEY}, lists={LIST_ID: "Budget"}, requests_per_second=rps,
                                 bulk_per_minute=bulk_per_minute) as simulator:
        simulator.fail_next(1, status_code, "/import/bulk_import")
        sent, errors, start = [], [], threading.Barrier(workers)

        def worker(n: int) -> None:
            budget = budget_for(tables, name, rps, bulk_per_minute)
            client = ActiveCampaignClient(simulator.base_url, KEY, timeout=10)
            backoff = Backoff(base_seconds=0.5, cap_seconds=2.0)  # 503 carries no Retry-After: 0.25-0.5 s

            def paused(error: Transient, wait: float) -> None:
                if error.throttled:
                    budget.penalize(wait)

            try:
                start.wait()
                for i in range(imports_each):
                    batch = contacts(f"t{n}i{i}-", 20)

                    def call(batch=batch):
                        budget.before_bulk(len(batch))
                        return client.bulk_import(batch, LIST_ID)

                    backoff.run(call, on_retry=paused)
                    sent.extend(c["email"] for c in batch)
            except Exception as error:  # noqa: BLE001
                errors.append(error)
            finally:
                client.close()

        run_concurrently(worker, workers, timeout=120)

        assert errors == []
        stats = simulator.stats()
        assert stats["errors_injected"] == 1 and stats["responses_by_status"][str(status_code)] == 1
        assert stats["bulk_accepted"] == workers * imports_each
        assert simulator.subscribed(LIST_ID) == set(sent) and stats["contacts_imported"] == len(sent)
        assert len(ledger.penalties) == 1
        throttled_thread, returned, until = ledger.penalties[0]
        others = ledger.asked_after(returned, other_than=throttled_thread)
        assert others, "the other workers went on reserving after the pause began"
        assert all(slot >= until - EPSILON for slot in others), "every worker paused, not only the throttled one"


# --- spacing adapts to throttling ------------------------------------------------------------------
class _Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_throttled_budget_spaces_its_slots_wider_for_every_worker_and_narrows_again(tables):
    """After penalize, every worker's slots are spaced wider (the stretch lives in the shared entity);
    the stretch halves every half-life and doubles with each further throttling, within its cap."""
    from azure.data.tables import TableServiceClient

    from shared.ratelimit import MAX_STRETCH, STRETCH_HALF_LIFE_SECONDS, STRETCH_STEP

    clock, name = _Clock(1_000_000.0), account()

    def budget():  # a worker of its own each time, sharing only the entity
        table = TableServiceClient.from_connection_string(tables).get_table_client(RATE_BUDGETS_TABLE)
        return AccountBudget(table, name, 60, 1200, clock=clock, sleep=lambda seconds: None)

    def bulk_gap(worker) -> float:
        first = worker.reserve("bulk")
        return worker.reserve("bulk") - first

    rest = budget().bulk_interval
    assert rest == pytest.approx(0.05 * 1.005)
    assert bulk_gap(budget()) == pytest.approx(rest, rel=1e-4)
    budget().penalize(2.0)
    clock.now += 2.0
    assert bulk_gap(budget()) == pytest.approx(0.05 * (1.005 + STRETCH_STEP), rel=1e-4)
    clock.now += STRETCH_HALF_LIFE_SECONDS
    assert bulk_gap(budget()) == pytest.approx(0.05 * (1.005 + STRETCH_STEP / 2), rel=1e-4)
    budget().penalize(1.0)  # throttled again: twice the stretch it had decayed to, at least one step
    clock.now += 1.0
    assert bulk_gap(budget()) == pytest.approx(0.05 * (1.005 + STRETCH_STEP), rel=1e-4)
    for _ in range(20):
        clock.now += 10.0
        budget().penalize(1.0)
    clock.now += 1.0
    assert bulk_gap(budget()) == pytest.approx(0.05 * (1.005 + MAX_STRETCH), rel=1e-3)
    clock.now += 20 * STRETCH_HALF_LIFE_SECONDS
    assert bulk_gap(budget()) == pytest.approx(rest, rel=1e-4)


def test_a_read_and_the_import_after_it_take_one_reservation_spaced_like_any_two_requests(tables):
    from azure.data.tables import TableServiceClient

    from exports.activecampaign.budget import LATE_TOLERANCE_SECONDS, REQUEST_LATE_TOLERANCE_SECONDS

    clock = _Clock(2_000_000.0)
    table = TableServiceClient.from_connection_string(tables).get_table_client(RATE_BUDGETS_TABLE)
    budget = AccountBudget(table, account(), 5, 100, clock=clock)
    other = budget.reserve("bulk")  # another sender's import, right now
    writes = []
    real_update = table.update_entity
    table.update_entity = lambda *args, **kwargs: writes.append(1) or real_update(*args, **kwargs)
    read, bulk = budget.reserve_request_then_bulk(250, after=0.05)
    assert len(writes) == 1
    # Offsets from `other`: the clock's absolute value would swallow an interval in approx's relative tolerance.
    request, import_ = budget.request_interval, budget.bulk_interval
    assert read - other == pytest.approx(request, abs=1e-5), "the next free request slot"
    assert bulk - other == pytest.approx(import_, abs=1e-5), "the next free import slot, well after the read"
    no_read, later_bulk = budget.reserve_request_then_bulk(250, after=1.0)
    assert no_read is None, "a read a second before the import would hold it back: left for later"
    assert later_bulk - other == pytest.approx(2 * import_, abs=1e-5), "the import keeps its pace"
    reads = budget.reserve_reads(3)
    assert len(writes) == 3
    assert [t - other for t in reads] == pytest.approx([import_ * n + request for n in (1, 2, 3)], abs=1e-5)

    clock.now = read + REQUEST_LATE_TOLERANCE_SECONDS * 0.9
    assert not budget.too_late_for_request(read)
    clock.now = read + REQUEST_LATE_TOLERANCE_SECONDS * 1.1
    assert budget.too_late_for_request(read)
    clock.now = bulk + LATE_TOLERANCE_SECONDS * 0.9
    assert not budget.too_late(bulk)
    clock.now = bulk + LATE_TOLERANCE_SECONDS * 1.1
    assert budget.too_late(bulk)


def test_a_chunks_last_reads_keep_clear_of_the_request_slots_the_accounts_next_imports_need(tables):
    """While imports are being sent, reads reserved together take the free request places between the
    imports' next slots at their pace, not the next places in a row: the import reserved after them keeps its
    pace. With no import under way, they come one after another."""
    from azure.data.tables import TableServiceClient

    clock = _Clock(5_000_000.0)
    table = TableServiceClient.from_connection_string(tables).get_table_client(RATE_BUDGETS_TABLE)
    budget = AccountBudget(table, account(), 5, 100, clock=clock)
    request, import_ = budget.request_interval, budget.bulk_interval
    sending = budget.reserve("bulk")  # a sender's import, right now
    reads = budget.reserve_reads(3)
    assert [t - sending for t in reads] == pytest.approx([request, import_ + request, 2 * import_ + request], abs=1e-5)
    assert budget.reserve("bulk") - sending == pytest.approx(import_, abs=1e-5), "the next import keeps its pace"

    clock.now += 60.0  # every import long past: nothing to keep clear of
    reads = budget.reserve_reads(3)
    assert [t - clock.now for t in reads] == pytest.approx([0.0, request, 2 * request], abs=1e-5)


def test_a_worker_alone_reserves_with_one_table_request_and_reads_first_again_once_another_writes_between(tables):
    """Alone, a worker writes its reservations from the entity as it last wrote it: one conditional write each.
    When another worker writes between every two of its reservations, those writes fail, so it soon reads
    first again (a read and a write each). Whichever way, no two slots are closer than the interval."""
    from azure.data.tables import TableServiceClient

    clock, name = _Clock(4_000_000.0), account()
    requests_made = {"get_entity": 0, "update_entity": 0}

    def worker(counted: bool) -> AccountBudget:
        table = TableServiceClient.from_connection_string(tables).get_table_client(RATE_BUDGETS_TABLE)
        if counted:
            for method in requests_made:
                def counting(*args, _real=getattr(table, method), _method=method, **kwargs):
                    requests_made[_method] += 1
                    return _real(*args, **kwargs)
                setattr(table, method, counting)
        return AccountBudget(table, name, 60, 1200, clock=clock, sleep=lambda seconds: None)

    alone, other = worker(counted=True), worker(counted=False)
    slots = [alone.reserve("bulk") for _ in range(20)]
    assert requests_made["update_entity"] == 20, "no write failed: nothing else wrote"
    assert requests_made["get_entity"] <= 6, f"{requests_made['get_entity']} reads for 20 reservations alone"

    requests_made.update(get_entity=0, update_entity=0)
    for _ in range(20):
        slots.append(other.reserve("bulk"))
        slots.append(alone.reserve("bulk"))
    failed_writes = requests_made["update_entity"] - 20
    assert 1 <= failed_writes <= 5, f"{failed_writes} writes failed before it read first again"
    assert requests_made["get_entity"] == 20, "one read per reservation: after its failed write, or first"
    assert_spaced(sorted(slots), alone.bulk_interval)


def test_a_request_takes_a_free_place_before_imports_reserved_ahead_and_the_imports_keep_their_pace(tables):
    """Eight workers have reserved their imports' slots ahead; as each sends, it reads an earlier import's
    outcome. The read goes at once, between imports reserved ahead, instead of after the last of them,
    and the next import comes one interval after the last reserved: the imports' schedule does not slip."""
    from azure.data.tables import TableServiceClient

    clock = _Clock(3_000_000.0)
    table = TableServiceClient.from_connection_string(tables).get_table_client(RATE_BUDGETS_TABLE)
    budget = AccountBudget(table, account(), 60, 1200, clock=clock)
    imports = [budget.reserve("bulk") for _ in range(8)]
    reads = []
    for n in range(8):
        clock.now = imports[n] + 0.001  # worker n sent its import; now it reads an outcome, then reserves again
        reads.append(budget.reserve("request"))
        imports.append(budget.reserve("bulk"))
    assert all(imports[n] < read < imports[n + 1] for n, read in enumerate(reads)), (imports, reads)
    assert_spaced(imports, budget.bulk_interval)
    assert imports[-1] - imports[0] == pytest.approx(15 * budget.bulk_interval, abs=1e-5), "the imports kept their pace"
    assert_spaced(sorted(imports + reads), budget.request_interval)


def test_a_chunk_taking_its_turn_first_goes_ahead_of_the_chunks_already_waiting(tables):
    """The run's remainder chunk asks for its sending turn first: were it to wait behind the chunks queued in
    its process, it would start once they end and send the run's last imports alone."""
    budget = budget_for(tables, "first-turn.api-us1.com", 5, 100)
    order, waiting = [], threading.Barrier(2)
    lock = threading.Lock()

    def sender(name: str, first: bool, ready: threading.Barrier | None) -> None:
        if ready:
            ready.wait(10)
        with budget.sending(first=first):
            with lock:
                order.append(name)

    with contextlib.ExitStack() as turns:
        for _ in range(SENDERS_PER_PROCESS):
            turns.enter_context(budget.sending())
        queued = [threading.Thread(target=sender, args=(f"chunk {n}", False, None), daemon=True) for n in range(3)]
        for thread in queued:
            thread.start()
        time.sleep(0.2)  # the chunks are waiting for a turn
        remainder = threading.Thread(target=sender, args=("remainder", True, waiting), daemon=True)
        remainder.start()
        waiting.wait(10)
        time.sleep(0.2)  # and so is the remainder chunk, since after them
        assert order == [], "every turn is held"
    for thread in [remainder, *queued]:
        thread.join(10)
    assert order[0] == "remainder" and sorted(order[1:]) == ["chunk 0", "chunk 1", "chunk 2"], order


def test_a_process_has_a_bounded_number_of_sending_turns_per_account_and_the_next_one_waits(tables):
    budget, other_account = budget_for(tables, "turns.api-us1.com", 5, 100), budget_for(tables, "other.api-us1.com", 5, 100)
    taken = threading.Event()
    waited = []

    def one_more():
        with budget.sending() as had_to_wait:
            waited.append(had_to_wait)
            taken.set()

    with contextlib.ExitStack() as turns:
        assert [turns.enter_context(budget.sending()) for _ in range(SENDERS_PER_PROCESS)] == [False] * SENDERS_PER_PROCESS
        with other_account.sending() as had_to_wait:
            assert not had_to_wait, "another account's turns are its own"
        sender = threading.Thread(target=one_more, daemon=True)
        sender.start()
        assert not taken.wait(0.3), "every turn is taken: the next sender waits"
    assert taken.wait(10) and waited == [True]
    sender.join(10)
    with budget.sending() as had_to_wait:
        assert not had_to_wait, "every turn was given back"
