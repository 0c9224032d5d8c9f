"""Where the API key may go: only to public internet addresses, checked on the address the socket connects to.

Names resolve from a table (tests/unit/name_resolution.py: socket.getaddrinfo is the only stand-in)
and a tripwire stops, before the system call, any connect to an address that is not loopback, so
these tests never send a packet off the machine, whatever the client does.
"""
from __future__ import annotations

import pytest

from exports.activecampaign.client import ActiveCampaignClient, is_public_address
from exports.errors import AddressNotPublic, Transient
from tests.unit.name_resolution import resolving

KEY = "unit-key-DO-NOT-LEAK-1234"
HOST = "myaccount.api-us1.com"
PUBLIC_V4, PUBLIC_V6 = "93.184.215.14", "2606:4700:4700::1111"

NOT_PUBLIC = {
    "10.0.0.5": "a private network address",
    "172.16.3.4": "a private network address",
    "192.168.1.10": "a private network address",
    "169.254.169.254": "a link-local address",
    "127.0.0.1": "an address of the machine itself",
    "0.0.0.0": "an address of the machine itself",
    "::1": "an address of the machine itself",
    "fd00::1": "a private network address",
    "fe80::1": "a link-local address",
    "100.64.0.1": "an address that is not on the public internet",
    "224.0.0.251": "an address that is not on the public internet",
    # IPv6 forms of private IPv4 addresses (mapped, 6to4, NAT64); how each is described depends on
    # the Python version's ipaddress tables.
    "::ffff:10.0.0.5": "",
    "2002:a9fe:a9fe::": "",
    "64:ff9b::a9fe:a9fe": "",
}


@pytest.mark.parametrize("address", [*NOT_PUBLIC, "192.0.2.1", "::"])
def test_addresses_off_the_public_internet_are_not_public(address):
    assert is_public_address(address) is False


@pytest.mark.parametrize("address", [PUBLIC_V4, PUBLIC_V6, "::ffff:93.184.215.14", "64:ff9b::5db8:d70e"])
def test_public_addresses_are(address):
    assert is_public_address(address) is True


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_a_hostname_resolving_off_the_public_internet_is_refused_before_any_connection(address):
    with resolving({HOST: [address]}) as network:
        client = ActiveCampaignClient.for_hostname(HOST, KEY, timeout=2)
        with pytest.raises(AddressNotPublic) as refused:
            client.users_me()
    message = str(refused.value)
    assert message.startswith(f"{HOST} resolves to {NOT_PUBLIC[address]}")
    assert "not a public internet address, so the API key is not sent there" in message
    assert KEY not in message and address not in message, "the message names the host, not the key or the address"
    assert network.lookups == [HOST]
    assert network.attempts == [], "nothing was connected to"


def test_one_non_public_address_among_public_ones_refuses_them_all():
    with resolving({HOST: [PUBLIC_V4, "169.254.169.254", PUBLIC_V6]}) as network:
        with pytest.raises(AddressNotPublic, match="link-local"):
            ActiveCampaignClient.for_hostname(HOST, KEY, timeout=2).get_list("3")
    assert network.attempts == []


def test_a_public_address_is_connected_to_exactly_as_checked():
    # The tripwire stops the connect, so the client reports no answer, like a refused connection.
    with resolving({HOST: [PUBLIC_V4]}) as network:
        with pytest.raises(Transient, match="no answer"):
            ActiveCampaignClient.for_hostname(HOST, KEY, timeout=2).users_me()
    assert network.attempts == [(PUBLIC_V4, 443)]


def test_a_name_that_rebinds_after_the_check_cannot_redirect_the_connection():
    # The first answer is public and every later one private: a client that checked with one
    # look-up and let the connection resolve again would connect to 10.0.0.5.
    with resolving({HOST: [[PUBLIC_V4], ["10.0.0.5"]]}) as network:
        with pytest.raises(Transient):
            ActiveCampaignClient.for_hostname(HOST, KEY, timeout=2).users_me()
    assert network.lookups == [HOST]
    assert network.attempts == [(PUBLIC_V4, 443)]


def test_a_name_that_does_not_resolve_is_no_answer():
    with resolving({}) as network:
        with pytest.raises(Transient, match="no answer"):
            ActiveCampaignClient.for_hostname(HOST, KEY, timeout=2).users_me()
    assert network.lookups == [HOST] and network.attempts == []


def test_with_the_local_base_url_the_hostname_is_not_resolved_and_loopback_is_reached():
    with resolving({}) as network:
        client = ActiveCampaignClient.for_hostname("not-resolvable.example.com", KEY, timeout=2,
                                                   base_url_override="http://127.0.0.1:9")
        with pytest.raises(Transient, match="no answer"):  # nothing listens on port 9
            client.users_me()
    assert network.lookups == [] and network.attempts == []
