"""Start and stop a private Azurite (blob, queue, table) for tests.

    with Azurite() as azurite:
        blobs = BlobServiceClient.from_connection_string(azurite.connection_string)

Azurite comes from npm (``npm ci`` installs it to ``node_modules/.bin/azurite``). Each
instance listens on free loopback ports picked by the OS, so it never clashes with a
developer's own Azurite on 10000-10002, and keeps its data in a temporary directory
unless ``location`` is given. ``--skipApiVersionCheck`` is required: the newest storage
SDKs send API versions newer than Azurite knows.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["ACCOUNT_KEY", "ACCOUNT_NAME", "Azurite", "AzuriteError", "AzuriteNotFoundError", "find_azurite"]

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_NAME = "devstoreaccount1"
# Azurite's well-known development key (public, documented; not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
HOST = "127.0.0.1"


class AzuriteError(RuntimeError):
    """Azurite did not start (or stop) as expected."""


class AzuriteNotFoundError(AzuriteError, FileNotFoundError):
    """No Azurite executable."""


def find_azurite(executable: str | None = None, repo_root: Path | None = None) -> str:
    """The Azurite executable: ``executable`` if given, else ``<repo>/node_modules/.bin/azurite``,
    else ``azurite`` on PATH."""
    if executable is not None:
        path = Path(executable)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        found = shutil.which(executable)
        if found:
            return found
        raise AzuriteNotFoundError(
            f"Azurite executable not found: {executable}. Run `npm ci` in the repository root "
            "(package.json lists Azurite as a dev dependency).")
    local = Path(repo_root or REPO_ROOT) / "node_modules" / ".bin" / "azurite"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise AzuriteNotFoundError(
        f"Azurite not found at {local} nor on PATH. Run `npm ci` in the repository root "
        "(package.json lists Azurite as a dev dependency).")


def _free_ports(count: int) -> list[int]:
    # Hold all sockets open together so the ports are distinct.
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class Azurite:
    """One Azurite process on free loopback ports. ``start()`` (or ``with``) launches it."""

    def __init__(self, executable: str | None = None, location: str | None = None, *,
                 timeout: float = 30.0, ports: tuple[int, int, int] | None = None) -> None:
        """`ports` (blob, queue, table) fixes the ports, e.g. Azurite's usual 10000-10002 for `func start`."""
        self.executable = find_azurite(executable)
        self._fixed_ports = ports
        self.timeout = timeout
        self._given_location = location
        self.location: str | None = location
        self.blob_port = self.queue_port = self.table_port = 0
        self._process: subprocess.Popen | None = None
        self._workdir: str | None = None
        self._log = None

    # ------------------------------------------------------------------ endpoints
    @property
    def blob_endpoint(self) -> str:
        return f"http://{HOST}:{self.blob_port}/{ACCOUNT_NAME}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://{HOST}:{self.queue_port}/{ACCOUNT_NAME}"

    @property
    def table_endpoint(self) -> str:
        return f"http://{HOST}:{self.table_port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        if self._process is None:
            raise AzuriteError("Azurite is not running; call start() first")
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};"
                f"TableEndpoint={self.table_endpoint};")

    def _output(self) -> str:
        if self._workdir is None:
            return ""
        try:
            return Path(self._workdir, "azurite.log").read_text(errors="replace")[-4000:].strip()
        except OSError:
            return ""

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Azurite:
        if self._process is not None:
            return self
        self._workdir = tempfile.mkdtemp(prefix="azurite-test-")
        if self._given_location is None:
            self.location = os.path.join(self._workdir, "data")
            os.makedirs(self.location)
        self.blob_port, self.queue_port, self.table_port = self._fixed_ports or _free_ports(3)
        cmd = [self.executable, "--silent", "--location", str(self.location), "--loose", "--skipApiVersionCheck",
               "--blobHost", HOST, "--queueHost", HOST, "--tableHost", HOST,
               "--blobPort", str(self.blob_port), "--queuePort", str(self.queue_port),
               "--tablePort", str(self.table_port)]
        self._log = open(os.path.join(self._workdir, "azurite.log"), "wb")
        try:
            self._process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            self._cleanup()
            raise AzuriteError(f"could not run {self.executable}: {exc}. Run `npm ci`?") from exc

        deadline = time.monotonic() + self.timeout
        pending = {self.blob_port, self.queue_port, self.table_port}
        while pending:
            code = self._process.poll()
            if code is not None:
                output = self._output()
                self._process = None
                self._cleanup()
                raise AzuriteError(f"Azurite exited with code {code} before listening on {sorted(pending)}. "
                                   f"Command: {' '.join(cmd)}\nOutput:\n{output}")
            pending = {p for p in pending if not _accepts(p)}
            if pending and time.monotonic() > deadline:
                output = self._output()
                self.stop()
                raise AzuriteError(f"Azurite did not listen on ports {sorted(pending)} within {self.timeout:.0f} s. "
                                   f"Command: {' '.join(cmd)}\nOutput:\n{output}")
            if pending:
                time.sleep(0.1)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        if self._given_location is None:
            self.location = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __del__(self) -> None:  # last resort: never leave a node process behind
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            process.kill()
