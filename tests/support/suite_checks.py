"""Checks over the whole test session, loaded by tests/conftest.py as a plugin.

- Every HTTP response any test produced was checked against exports/openapi.json as it was made
  (tests/apphost.py); here the document itself is validated once, before any test runs.
- No API key (every test key contains SECRET_MARKER) reached a log record in the whole session.
  Responses are searched as they are made, Table entities and queue messages when each test's app
  closes (tests/apphost.py).
"""
from __future__ import annotations

import pytest

from tests.support.apphost import SECRET_MARKER
from tests.support.openapi_contract import document


@pytest.fixture(scope="session", autouse=True)
def _suite_contract_and_leak_checks(log_lines):
    document()  # raises when exports/openapi.json is not a valid OpenAPI 3.1 document
    yield
    leaked = [line for line in log_lines if SECRET_MARKER in line]
    assert not leaked, f"an API key reached {len(leaked)} log record(s) during the session, e.g. {leaked[0][:200]!r}"
