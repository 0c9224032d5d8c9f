"""Name resolution for the tests of where the API key may go, and a tripwire against leaving the machine.

These machines have no DNS, and no test may send a packet anywhere but loopback. So:
- `socket.getaddrinfo` is replaced, and only it (the one stand-in these tests allow): names in
  the table get its addresses, IP literals and `localhost` go to the real function with
  AI_NUMERICHOST or the hosts file (no DNS query either way), any other name does not resolve;
- while the table is in place, a Python audit hook aborts every socket connect to an address
  that is not loopback before the connect system call runs, and records it. A client that
  skipped the address check therefore fails its test without a packet leaving the machine.
"""
from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

_real_getaddrinfo = socket.getaddrinfo
_lock = threading.Lock()
_active: list[Network] = []


class OffMachineConnect(ConnectionRefusedError):
    """A connect to an address other than loopback, stopped before it was made."""


@dataclass
class Network:
    answers: Mapping[str, Sequence[str] | Sequence[Sequence[str]]]
    lookups: list[str] = field(default_factory=list)  # every name (not IP literal) looked up, in order
    attempts: list[tuple[str, int]] = field(default_factory=list)  # connects stopped by the tripwire

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        if _is_ip_literal(name):
            return _real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        with _lock:
            self.lookups.append(name)
            looked_up = self.lookups.count(name)
        if name == "localhost":
            return _real_getaddrinfo(host, port, family, type, proto, flags)
        if name not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, f"{name} is not in the test's name table")
        addresses = self.answers[name]
        if addresses and not isinstance(addresses[0], str):
            # One answer per look-up, the last one repeating: a name that rebinds between look-ups.
            addresses = addresses[min(looked_up, len(addresses)) - 1]
        return [_real_getaddrinfo(address, port, 0, type or socket.SOCK_STREAM, proto, socket.AI_NUMERICHOST)[0]
                for address in addresses]


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _tripwire(event: str, args: tuple) -> None:
    if event != "socket.connect" or not _active:
        return
    address = args[1]
    if not isinstance(address, tuple):
        return  # a Unix socket: never leaves the machine
    host = str(address[0]).split("%", 1)[0]
    if _is_ip_literal(host) and ipaddress.ip_address(host).is_loopback:
        return
    _active[-1].attempts.append((address[0], address[1]))
    raise OffMachineConnect(f"the test tried to connect to {address[0]}:{address[1]}, which is not loopback")


sys.addaudithook(_tripwire)  # audit hooks cannot be removed: it acts only inside resolving()


@contextmanager
def resolving(answers: Mapping[str, Sequence[str] | Sequence[Sequence[str]]]) -> Iterator[Network]:
    """Names resolve from `answers` (name -> addresses, or a list of answers for successive look-ups)."""
    network = Network(answers)
    socket.getaddrinfo = network.getaddrinfo
    _active.append(network)
    try:
        yield network
    finally:
        _active.remove(network)
        socket.getaddrinfo = _real_getaddrinfo
