"""Real local parts for the integration tier: Azurite, the Key Vault fake over TLS, the ActiveCampaign simulator."""
from __future__ import annotations

import pytest

from tests.support.activecampaign import ActiveCampaignSimulator
from tests.support.apphost import ACCOUNT_HOST, API_KEY, TestApp
from tests.support.azurite import Azurite
from tests.support.keyvault import FakeKeyVault

# Limits of the simulated account in most tests: ten times ActiveCampaign's, so that runs of
# tens of thousands of contacts take seconds. The app is configured with the same numbers.
REQUESTS_PER_SECOND = 50
BULK_PER_MINUTE = 1000


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
    # Imports are processed at once here; tests of the asynchronous outcomes set a processing time.
    sim = ActiveCampaignSimulator(api_keys={API_KEY}, lists={"3": "Newsletter", "4": "Customers"},
                                  requests_per_second=REQUESTS_PER_SECOND, bulk_per_minute=BULK_PER_MINUTE,
                                  import_processing_seconds=0.0)
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
