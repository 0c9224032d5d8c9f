"""Baseline: the same sample sent one call per contact, against the same simulated account.

Both sides run in this process against simulators with ActiveCampaign's documented limits
(5 requests/s, 100 bulk imports/min). Ours: the app end to end (start_run, splitter, chunk worker
through LocalQueueHost, one execution at a time, as `python -m exports run` does), timed from
start_run to the final status. The baseline: for each contact of the same sample, contact/sync
then contactLists (FACTS.md: contact/sync takes no list), paced by the same shared budget so it
gets the whole 5/s and is never throttled; it stops after BASELINE_SECONDS, since at 2.5 contacts/s
the whole sample would take over half an hour. Its rate does not depend on how many it sends.
"""
from __future__ import annotations

import time

import requests

from exports.activecampaign.budget import AccountBudget
from exports.context import set_context
from exports.local_host import LocalQueueHost
from exports.names import RATE_BUDGETS_TABLE
from tests.bench.harness import API_KEY, LIST_ID, app_env, context, create_export, profile_rows, write_segment
from tests.support.activecampaign import ActiveCampaignSimulator
from tests.support.azurite import Azurite
from tests.support.driving import is_final, run_status, start_run

DOCUMENTED_REQUESTS_PER_SECOND = 5
DOCUMENTED_BULK_PER_MINUTE = 100
BASELINE_SECONDS = 30.0


def _simulator() -> ActiveCampaignSimulator:
    return ActiveCampaignSimulator(api_keys={API_KEY}, lists={LIST_ID: "Bench"},
                                   requests_per_second=DOCUMENTED_REQUESTS_PER_SECOND,
                                   bulk_per_minute=DOCUMENTED_BULK_PER_MINUTE)


def _ours(azurite, rows: int) -> dict:
    from function_app import app

    with _simulator() as simulator:
        env = app_env(azurite, simulator, DOCUMENTED_REQUESTS_PER_SECOND, DOCUMENTED_BULK_PER_MINUTE)
        ctx = context(env)
        write_segment(ctx, "baseline-ours/", rows, blobs=1)
        export_id = create_export(ctx, "ours.api-us1.com", "baseline-ours/")
        set_context(ctx)
        try:
            began = time.monotonic()
            run_id = start_run(ctx, export_id, trigger="cli")
            LocalQueueHost(ctx, app).drain(lambda: is_final(ctx, run_id),
                                           timeout_seconds=300)
            seconds = time.monotonic() - began
        finally:
            set_context(None)
        status = run_status(ctx, run_id)
        stats = simulator.stats()
        return {"contacts": status["sent"], "status": status["status"], "seconds": round(seconds, 2),
                "requests": stats["requests"], "bulk_requests": stats["bulk_requests"],
                "throttled": stats["throttled_429"] + stats["throttled_bulk"],
                "on_list": len(simulator.subscribed(LIST_ID)),
                "contacts_per_second": round(status["sent"] / seconds, 1)}


def _one_call_per_contact(azurite, rows: int, seconds: float) -> dict:
    with _simulator() as simulator:
        env = app_env(azurite, simulator, DOCUMENTED_REQUESTS_PER_SECOND, DOCUMENTED_BULK_PER_MINUTE)
        ctx = context(env)
        budget = AccountBudget(ctx.storage.tables.get_table_client(RATE_BUDGETS_TABLE), "baseline.api-us1.com",
                               DOCUMENTED_REQUESTS_PER_SECOND, DOCUMENTED_BULK_PER_MINUTE)
        session = requests.Session()
        session.headers.update({"Api-Token": API_KEY, "Content-Type": "application/json"})
        api = simulator.base_url + "/api/3"
        sent = []
        began = time.monotonic()
        for email, first, last, phone, _ in profile_rows(0, rows):
            if time.monotonic() - began >= seconds:
                break
            budget.before_request()
            contact = session.post(f"{api}/contact/sync", timeout=30, json={"contact": {
                "email": email.lower(), "firstName": first.strip(), "lastName": last, "phone": phone}})
            contact.raise_for_status()
            budget.before_request()
            session.post(f"{api}/contactLists", timeout=30, json={"contactList": {
                "list": int(LIST_ID), "contact": int(contact.json()["contact"]["id"]), "status": 1}}).raise_for_status()
            sent.append(email.lower())
        elapsed = time.monotonic() - began
        session.close()
        stats = simulator.stats()
        return {"contacts": len(sent), "seconds": round(elapsed, 2), "requests": stats["requests"],
                "throttled": stats["throttled_429"] + stats["throttled_bulk"],
                "list_exact": simulator.subscribed(LIST_ID) == set(sent),
                "contacts_per_second": round(len(sent) / elapsed, 2)}


def run(rows: int = 5000, baseline_seconds: float = BASELINE_SECONDS) -> dict:
    with Azurite() as azurite:
        ours = _ours(azurite, rows)
        baseline = _one_call_per_contact(azurite, rows, baseline_seconds)
    ratio = ours["contacts_per_second"] / baseline["contacts_per_second"] if baseline["contacts_per_second"] else None
    return {
        "benchmark": "baseline", "sample_profiles": rows,
        "limits": {"requests_per_second": DOCUMENTED_REQUESTS_PER_SECOND, "bulk_per_minute": DOCUMENTED_BULK_PER_MINUTE},
        "ours": ours, "one_call_per_contact": baseline,
        "speedup": round(ratio, 1) if ratio else None,
        "one_call_per_contact_hours_for_1m": round(1_000_000 / baseline["contacts_per_second"] / 3600, 1)
        if baseline["contacts_per_second"] else None,
    }
