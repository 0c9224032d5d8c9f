"""Start the local parts (Azurite and the ActiveCampaign simulator) for `make demo` and `make start`.

    python -m tests.localparts -- func start     # default ports, runs the command, stops both after
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from tests.support.activecampaign import ActiveCampaignSimulator
from tests.support.azurite import Azurite

ROOT = Path(__file__).resolve().parent.parent
SIMULATOR_KEY = "local-simulator-key"
SIMULATOR_LISTS = {"1": "Newsletter", "2": "Customers", "3": "Segment export"}


@contextmanager
def local_parts(fixed_ports: bool = False, speedup: float = 1.0, location: str | None = None):
    """Yields the environment the app needs to use Azurite and the simulator."""
    ports = (10000, 10001, 10002) if fixed_ports else None
    rps, bulk = max(1, round(5 * speedup)), max(1, round(100 * speedup))
    simulator = ActiveCampaignSimulator(api_keys={SIMULATOR_KEY}, lists=SIMULATOR_LISTS, requests_per_second=rps,
                                        bulk_per_minute=bulk, port=8800 if fixed_ports else 0)
    with Azurite(location=location, ports=ports) as azurite, simulator:
        yield {
            "AzureWebJobsStorage": azurite.connection_string,
            "ACTIVECAMPAIGN_BASE_URL": simulator.base_url,
            "ACTIVECAMPAIGN_API_KEY": SIMULATOR_KEY,
            "ACTIVECAMPAIGN_REQUESTS_PER_SECOND": str(rps),
            "ACTIVECAMPAIGN_BULK_REQUESTS_PER_MINUTE": str(bulk),
        }, simulator


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs=argparse.REMAINDER, help="command to run with the parts up")
    args = parser.parse_args()
    command = [c for c in args.command if c != "--"]
    with local_parts(fixed_ports=True, location=str(ROOT / ".azurite")) as (env, simulator):
        print(f"Azurite on 127.0.0.1:10000-10002, ActiveCampaign simulator on {simulator.base_url} "
              f"(API key {SIMULATOR_KEY}, lists {', '.join(SIMULATOR_LISTS)})", file=sys.stderr)
        full_env = {**os.environ, **env}
        subprocess.run([sys.executable, "-m", "exports", "init"], env=full_env, cwd=ROOT, check=True)
        try:
            return subprocess.run(command, env=full_env, cwd=ROOT).returncode if command else 0
        except KeyboardInterrupt:
            return 130


if __name__ == "__main__":
    sys.exit(main())
