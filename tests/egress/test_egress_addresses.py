from __future__ import annotations

import asyncio
import ipaddress

import pytest

from reelgate.egress.addresses import is_internal_address, parse_ip_literal, resolve_checked
from reelgate.egress.errors import BlockedAddressError, EgressError

INTERNAL = [
    "127.0.0.1",
    "127.255.0.9",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "255.255.255.255",
    "240.0.0.1",
    "224.0.0.251",
    "192.0.2.10",
    "198.51.100.7",
    "203.0.113.200",
    "198.18.0.1",
    "::",
    "::1",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",
    "ff02::1",
    "2001:db8::1",
    "3fff::1",
    "64:ff9b:1::a00:1",
]

# IPv6 forms that carry an IPv4 address, judged by what they carry.
EMBEDDED_INTERNAL = [
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible
    "::10.0.0.1",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1 (obfuscated)
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "172.32.0.1",
    "100.128.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize("address", INTERNAL + EMBEDDED_INTERNAL)
def test_internal_addresses(address: str) -> None:
    assert is_internal_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert not is_internal_address(ipaddress.ip_address(address))


def test_teredo_fixture_really_embeds_loopback() -> None:
    teredo = ipaddress.IPv6Address("2001:0:4136:e378:8000:63bf:80ff:fffe").teredo
    assert teredo is not None and teredo[1] == ipaddress.IPv4Address("127.0.0.1")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:10.0.0.1", "::ffff:a00:1"),
        ("example.com", None),
        ("cafe.bad", None),
        ("1.2.3.4.5", None),
    ],
)
def test_parse_ip_literal(host: str, expected: str | None) -> None:
    parsed = parse_ip_literal(host)
    assert (str(parsed) if parsed is not None else None) == expected


def test_resolve_checked_refuses_loopback_name_and_literals() -> None:
    for host in ("localhost", "127.0.0.1", "127.1", "::1", "::ffff:127.0.0.1"):
        with pytest.raises(BlockedAddressError) as caught:
            asyncio.run(resolve_checked(host, 80, allow_private=False))
        assert host in caught.value.message


def test_resolve_checked_allows_private_when_asked() -> None:
    addresses = asyncio.run(resolve_checked("localhost", 80, allow_private=True))
    assert addresses and all(address.is_loopback for address in addresses)


def test_resolve_checked_public_literal_needs_no_dns() -> None:
    assert asyncio.run(resolve_checked("8.8.8.8", 443, allow_private=False)) == [ipaddress.IPv4Address("8.8.8.8")]


def test_unresolvable_name_is_an_egress_error_not_a_block() -> None:
    with pytest.raises(EgressError) as caught:
        asyncio.run(resolve_checked("no-such-host.invalid", 443, allow_private=False))
    assert not isinstance(caught.value, BlockedAddressError)
    assert "does not resolve" in caught.value.message
