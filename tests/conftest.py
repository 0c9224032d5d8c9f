"""Real local parts for every test: Azurite, the Key Vault fake over TLS, the ActiveCampaign simulator."""
from __future__ import annotations

import logging

import pytest

from tests.apphost import ACCOUNT_HOST, API_KEY, TestApp
from tests.fakes.activecampaign import ActiveCampaignSimulator
from tests.fakes.azurite import Azurite
from tests.fakes.keyvault import FakeKeyVault

# Session-wide checks: responses against exports/openapi.json, no API key in any log record.
pytest_plugins = ("tests.suite_checks",)

# Limits of the simulated account in most tests: ten times ActiveCampaign's, so that runs of
# tens of thousands of contacts take seconds. The app is configured with the same numbers.
REQUESTS_PER_SECOND = 50
BULK_PER_MINUTE = 1000


class _Records(logging.Handler):
    """Every log record of the session, formatted, so a test can prove no secret reached a log line."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


_records = _Records()
_records.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))


@pytest.fixture(scope="session")
def log_lines():
    root = logging.getLogger()
    root.addHandler(_records)
    root.setLevel(logging.DEBUG)
    yield _records.lines


@pytest.fixture(scope="session")
def azurite():
    with Azurite() as instance:
        yield instance


@pytest.fixture(scope="session")
def vault():
    with FakeKeyVault() as instance:
        yield instance


@pytest.fixture
def simulator():
    sim = ActiveCampaignSimulator(api_keys={API_KEY}, lists={"3": "Newsletter", "4": "Customers"},
                                  requests_per_second=REQUESTS_PER_SECOND, bulk_per_minute=BULK_PER_MINUTE)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def app(azurite, vault, simulator, log_lines):
    test_app = TestApp(azurite, vault, simulator, settings={
        "ACTIVECAMPAIGN_REQUESTS_PER_SECOND": str(REQUESTS_PER_SECOND),
        "ACTIVECAMPAIGN_BULK_REQUESTS_PER_MINUTE": str(BULK_PER_MINUTE),
    })
    yield test_app
    test_app.close()


__all__ = ["ACCOUNT_HOST", "API_KEY"]
