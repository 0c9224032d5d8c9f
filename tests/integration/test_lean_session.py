"""LeanSession against a loopback HTTP server: the SDK's plain calls take the short way with nothing lost, and
every other call goes the whole way through requests."""
from __future__ import annotations

import http.server
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from shared.lean_session import LeanSession


class Echo(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        if self.path.startswith("/moved"):
            self.send_response(307)
            self.send_header("Location", "/landed")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = json.dumps({"method": self.command, "path": self.path, "body": body.decode(),
                             "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "seen=1")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_PUT = do_PATCH = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class KeptOpen(Echo):
    """Answers in HTTP/1.1, keeping the connection open; /slow a moment later, so that calls overlap."""

    protocol_version = "HTTP/1.1"
    ports: set[int] = set()

    def _answer(self):
        if self.path.startswith("/slow"):
            self.ports.add(self.client_address[1])
            time.sleep(0.2)
        super()._answer()

    do_GET = _answer


def sdk_call(session, method, url, **kwargs):
    """The call shape azure-core's RequestsTransport makes."""
    return session.request(method, url, headers=kwargs.pop("headers", {}), data=kwargs.pop("data", None), files=None,
                           verify=True, timeout=(5, 5), cert=None, allow_redirects=False, proxies=None, **kwargs)


def test_a_plain_call_arrives_as_sent_and_its_answer_is_read(server, monkeypatch):
    session = LeanSession()
    spent = []
    real_request = requests.Session.request
    monkeypatch.setattr(requests.Session, "request", lambda *a, **k: spent.append(1) or real_request(*a, **k))
    response = sdk_call(session, "PATCH", f"{server}/table(PartitionKey='p',RowKey='r')",
                        headers={"If-Match": 'W/"1"', "x-ms-version": "2019-02-02"}, data=b'{"n": 1}')
    echoed = response.json()
    assert not spent, "the plain call took the short way"
    assert response.status_code == 200 and echoed["method"] == "PATCH" and echoed["body"] == '{"n": 1}'
    assert echoed["path"] == "/table(PartitionKey='p',RowKey='r')"
    assert echoed["headers"]["if-match"] == 'W/"1"' and echoed["headers"]["content-length"] == "8"
    assert not session.cookies, "nothing of the answer is kept for the next call"


def test_a_streamed_call_is_read_as_it_is_consumed(server):
    response = sdk_call(LeanSession(), "GET", f"{server}/blob", stream=True)
    assert b"".join(response.raw.stream(16, decode_content=False)).startswith(b'{"method": "GET"')


def test_a_redirect_is_not_followed_on_the_short_way_and_is_on_the_whole_way(server):
    assert sdk_call(LeanSession(), "GET", f"{server}/moved").status_code == 307  # the SDK follows redirects itself
    followed = LeanSession().get(f"{server}/moved")  # requests' own default: follow
    assert followed.status_code == 200 and followed.json()["path"] == "/landed"


def test_a_call_with_anything_more_goes_the_whole_way(server):
    session = LeanSession()
    answered = session.request("GET", f"{server}/q", params={"a": "b"}, allow_redirects=False)
    assert answered.json()["path"] == "/q?a=b"
    assert session.cookies.get("seen") == "1", "requests' own handling (its cookie jar) applied"


def test_storage_clients_on_the_short_way_keep_the_sdk_errors(server):
    """A refused connection is the SDK's ServiceRequestError, and a redirect it is not to follow its
    HttpResponseError: azure-core maps what the adapter raises and answers, as with requests' own session."""
    import socket

    from azure.core.exceptions import HttpResponseError, ServiceRequestError

    from shared.settings import StorageSettings
    from shared.storage import storage_clients
    from tests.support.azurite import ACCOUNT_KEY, ACCOUNT_NAME

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nothing listens once the probe is closed
    closed = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
              f"TableEndpoint=http://127.0.0.1:{closed_port}/{ACCOUNT_NAME};")
    tables = storage_clients(StorageSettings(closed, {}, None)).tables
    with pytest.raises(ServiceRequestError):
        tables.get_table_client("t").get_entity("p", "r", retry_total=0)

    redirected = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
                  f"TableEndpoint={server}/moved;")
    with pytest.raises(HttpResponseError) as info:  # the 307 is handed to the SDK, not followed by requests
        storage_clients(StorageSettings(redirected, {}, None)).tables.get_table_client("t").get_entity(
            "p", "r", retry_total=0, permit_redirects=False)
    assert info.value.status_code == 307


def test_as_many_calls_at_once_as_an_instance_makes_keep_their_connections_for_the_next_ones(caplog):
    """An instance works on 6 chunks at once, each with 8 state requests in flight (exports/run/send.py): their
    connections go back to the pool and serve the next calls, none is opened for one call and dropped."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), KeptOpen)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    session, at_once = LeanSession(), 48
    try:
        with ThreadPoolExecutor(max_workers=at_once) as pool:
            for _ in range(2):
                answers = list(pool.map(lambda _: sdk_call(session, "GET", f"http://127.0.0.1:{httpd.server_address[1]}/slow"),
                                        range(at_once)))
                assert all(answer.status_code == 200 for answer in answers)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert "Connection pool is full" not in caplog.text
    assert len(KeptOpen.ports) <= at_once, "the second round reused the first round's connections"
