"""What the Functions host will index: triggers, queues, routes, the schedule, and message encoding."""
from __future__ import annotations

import base64
import inspect
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import azure.functions as func
import pytest
from azure.storage.queue import QueueClient

from exports.functions.timer import RETENTION_SCHEDULE
from exports.local_host import LocalQueueHost, indexed_functions
from exports.names import CHUNKS_POISON_QUEUE, CHUNKS_QUEUE, SEGMENTS_POISON_QUEUE, SEGMENTS_QUEUE, STORAGE_CONNECTION
from tests.support.apphost import HOST_URL, Response
from tests.support.openapi_contract import check_response
from tests.support.openapi_contract import document as openapi_document
from tests.support.profiles import make_segment

ROOT = Path(__file__).resolve().parents[2]
HTTP_ROUTES = (
    "connections", "connections/{connectionId}",
    "exports", "exports/{exportId}", "exports/{exportId}/runs",
    "runs/{runId}", "runs/{runId}/cancel", "runs/{runId}/approve", "runs/{runId}/rejects", "runs/{runId}/preview",
    "openapi.json",
)


def index():
    import function_app

    return {f.get_function_name(): f for f in indexed_functions(function_app.app)}


def test_every_function_has_the_trigger_the_pipeline_expects():
    functions = index()
    triggers = {name: json.loads(f.get_function_json())["bindings"] for name, f in functions.items()}

    http = {name: b[0] for name, b in triggers.items() if b[0]["type"] == "httpTrigger"}
    # One function per route, declaring no method list: the host then routes every method to it and
    # the function answers 405 with Allow itself, where the host gives a bare 404 to a method that no
    # function lists (and a list cannot name TRACE: azure.functions.HttpMethod lacks it).
    assert sorted(b["route"] for b in http.values()) == sorted(HTTP_ROUTES)
    assert all(b.get("methods") is None for b in http.values()), "a method list makes the host 404 every other method"
    assert all(b["authLevel"] == "FUNCTION" for b in http.values())
    documented = {path.removeprefix("/") for path in openapi_document()["paths"]}
    assert documented == set(HTTP_ROUTES), "exports/openapi.json documents exactly the routes the host indexes"

    queues = {b[0]["queueName"]: (name, b[0]) for name, b in triggers.items() if b[0]["type"] == "queueTrigger"}
    assert set(queues) == {SEGMENTS_QUEUE, CHUNKS_QUEUE, SEGMENTS_POISON_QUEUE, CHUNKS_POISON_QUEUE}
    assert all(b["connection"] == STORAGE_CONNECTION for _, b in queues.values())

    timers = {name: b[0] for name, b in triggers.items() if b[0]["type"] == "timerTrigger"}
    assert set(timers) == {"scheduled_exports", "retention_sweep"}
    assert timers["scheduled_exports"]["schedule"] == "0 * * * * *", "a tick a minute: the exports' schedules are the app's"
    assert timers["retention_sweep"]["schedule"] == RETENTION_SCHEDULE
    assert all(timer["runOnStartup"] is False for timer in timers.values())


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND"])
def test_methods_a_list_could_not_name_reach_every_route_and_get_405_with_allow(method):
    """TRACE and extension methods reach the functions (no method list) and get the documented 405."""
    routes = 0
    for function in index().values():
        trigger = json.loads(function.get_function_json())["bindings"][0]
        if trigger["type"] != "httpTrigger":
            continue
        routes += 1
        params = {name: "any-id" for name in re.findall(r"\{(\w+)\}", trigger["route"])}
        path = "/api/" + trigger["route"].format(**params)
        request = func.HttpRequest(method, HOST_URL + path, headers={}, route_params=params, body=b"")
        response = Response.of(function.get_user_function()(request), method, path)
        assert response.status == 405 and response.body["error"]["code"] == "method_not_allowed", (path, response.body)
        assert method not in response.headers["Allow"] and response.headers["Allow"]
        check_response(method, path, response.status, response.headers, response.body)
    assert routes == len(HTTP_ROUTES)


def test_parameter_names_equal_binding_names():
    for name, function in index().items():
        parameters = list(inspect.signature(function.get_user_function()).parameters)
        bindings = [b["name"] for b in json.loads(function.get_function_json())["bindings"] if b["name"] != "$return"]
        assert parameters == bindings, name


def test_host_json_sets_the_queue_behaviour_the_app_relies_on():
    host = json.loads((ROOT / "host.json").read_text())
    queues = host["extensions"]["queues"]
    assert queues["maxDequeueCount"] == 5
    assert queues["messageEncoding"] == "base64"
    assert {"batchSize", "newBatchThreshold", "visibilityTimeout"} <= set(queues)
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"
    assert host["functionTimeout"]


def test_every_enqueued_message_is_base64_json_that_references_and_carries_no_data(app):
    files, _ = make_segment(rows=300, blobs=2, seed=1)
    for name, data in files:
        app.upload("b64/" + name, data)
    export = app.export(prefix="b64/", mapping={"email": "email"})
    run_id = app.start(export.id).body["runId"]
    raw = QueueClient.from_connection_string(app.environ["AzureWebJobsStorage"], SEGMENTS_QUEUE)

    segment_messages = [json.loads(base64.b64decode(m.content)) for m in raw.peek_messages(max_messages=32)]
    assert [m["segment"] for m in segment_messages] == [0, 1]
    assert all(m["runId"] == run_id and m["etag"] and m["blob"].startswith("b64/") for m in segment_messages)

    app.host.step(queues=(SEGMENTS_QUEUE,))
    raw_chunks = QueueClient.from_connection_string(app.environ["AzureWebJobsStorage"], CHUNKS_QUEUE)
    chunk_messages = [json.loads(base64.b64decode(m.content)) for m in raw_chunks.peek_messages(max_messages=32)]
    assert chunk_messages and all(set(m) == {"runId", "chunk"} for m in chunk_messages)
    assert all("@" not in json.dumps(m) for m in segment_messages + chunk_messages), "no profile data in messages"


def test_importing_the_app_opens_no_connection():
    # The host imports function_app to index it; a connection or secret read there would slow
    # every cold start and fail indexing whenever storage or Key Vault is unreachable.
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('connection opened at import time')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import function_app\n"
        "assert len(function_app.app.get_functions()) == 17\n"
    )
    env = {"PATH": "/usr/bin:/bin", "KEY_VAULT_URL": "https://127.0.0.1:9/", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_concurrent_local_drain_delivers_as_many_messages_at_once_and_retries_a_failed_one(app):
    """The CLI drains host.json's batchSize of messages at once, as an instance of the host works on a batch."""
    side = func.FunctionApp()
    together = threading.Barrier(2, timeout=5)  # broken unless two deliveries wait on it at the same time
    delivered, failed = [], []

    @side.queue_trigger(arg_name="message", queue_name=CHUNKS_QUEUE, connection=STORAGE_CONNECTION)
    def work(message: func.QueueMessage) -> None:
        body = message.get_body().decode()
        if body == "flaky" and not failed:
            failed.append(body)
            raise RuntimeError("fails once")
        if body != "flaky":
            together.wait()
        delivered.append(body)

    queue = app.ctx.storage.queue(CHUNKS_QUEUE)
    for body in ("first", "second", "flaky"):
        queue.send_message(body)
    LocalQueueHost(app.ctx, side, retry_delay_seconds=0).drain(lambda: len(delivered) == 3, timeout_seconds=30,
                                                               executions=2)

    assert sorted(delivered) == ["first", "flaky", "second"] and failed == ["flaky"]
    assert not together.broken
    assert list(queue.peek_messages(max_messages=5)) == [], "every message deleted once its delivery returned"
