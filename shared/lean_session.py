"""A requests.Session that sends the Azure SDK's plain requests without the work they do not use.

Every Table, Blob and Queue call of the SDK goes through `Session.request` with headers and a body
only: no cookies, auth, hooks, query parameters, files or redirects (the SDK follows redirects
itself). For such a call, `Session.request` still builds and merges cookie jars, hooks and settings
and extracts cookies twice; that was a third of the CPU time of a Table call against local storage
(tests/bench). This session prepares the request and hands it to the mounted adapter directly, as
`Session.send` does; a call with anything else (a proxy, cookies, a redirect to follow) goes the
whole way through requests, unchanged.

Given to azure-core's RequestsTransport, the session keeps requests' adapter with no retries of its
own (the SDK's retry policy retries), and keeps up to CONNECTIONS_PER_HOST connections a host open.
"""
from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter

_FULL_WAY_ONLY = ("params", "cookies", "files", "auth", "hooks", "json", "proxies")
# Connections kept open to one storage endpoint. An instance works on host.json's 6 chunk messages at once,
# each reading and writing its sync-state shards 8 at a time (exports/run/send.py), beside the splits and
# the queues: some 50 requests at once. With requests' 10, each connection past them was opened for one
# request and closed ("Connection pool is full, discarding connection" in the log, tests/bench single).
CONNECTIONS_PER_HOST = 64


class LeanSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # no proxy or netrc from the environment (storage.py checks for a proxy first)
        for prefix in ("https://", "http://"):
            self.mount(prefix, HTTPAdapter(pool_maxsize=CONNECTIONS_PER_HOST))

    def request(self, method, url, *args, **kwargs):
        if args or kwargs.get("allow_redirects", True) or any(kwargs.get(name) for name in _FULL_WAY_ONLY):
            return super().request(method, url, *args, **kwargs)
        prepared = requests.PreparedRequest()
        prepared.prepare_method(method)
        prepared.prepare_url(url, None)
        prepared.prepare_headers(kwargs.get("headers"))
        prepared.prepare_body(kwargs.get("data"), None)
        stream = bool(kwargs.get("stream"))
        verify = kwargs.get("verify")
        response = self.get_adapter(prepared.url).send(
            prepared, stream=stream, timeout=kwargs.get("timeout"), verify=self.verify if verify is None else verify,
            cert=kwargs.get("cert") or self.cert, proxies={})
        if not stream:
            response.content  # noqa: B018 - read now, as Session.send does, so the connection goes back to the pool
        return response
