"""Which addresses the service may connect to, and name resolution that enforces it.

Everything the service fetches or calls comes from a user (image URLs, callback URLs), so every
connection is checked against the internal ranges below: otherwise a request could make the service
read its own metadata endpoint, admin ports or the private network it runs in (SSRF).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket

from reelgate.egress.errors import BlockedAddressError, EgressError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4_INTERNAL = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT: shared, not public
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, home of cloud metadata endpoints
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes the broadcast address 255.255.255.255
    )
)

# Only 2000::/3 holds public unicast today; everything outside it (loopback, unspecified, unique-local
# fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast ff00::/8, discard 100::/64, ...) is
# internal, except the forms that embed an IPv4 address, which are judged by that address.
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_INTERNAL_IN_GLOBAL = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "2001:2::/48",  # benchmarking
        "2001:10::/28",  # ORCHID
        "2001:20::/28",  # ORCHIDv2
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
    )
)
_V6_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V6_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # local-use NAT64 translates to private space
_V6_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")

# Legacy numeric IPv4 spellings ("127.1", "0x7f.0.0.1", "2130706433") that resolvers accept as
# literals; treating them as names would let them slip past a literal-address check.
_LEGACY_V4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)


def is_internal_address(ip: IPAddress) -> bool:
    """True when the service must not connect to `ip` (loopback, private, link-local, reserved...)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return any(ip in net for net in _V4_INTERNAL)
    embedded = _embedded_ipv4(ip)
    if embedded:
        return any(is_internal_address(v4) for v4 in embedded)
    if ip in _V6_NAT64_LOCAL or ip not in _V6_GLOBAL_UNICAST:
        return True
    return any(ip in net for net in _V6_INTERNAL_IN_GLOBAL)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses a packet to `ip` may end up at, through mapping or a transition mechanism."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        server, client = ip.teredo
        return [server, client]
    last_32_bits = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    if ip in _V6_NAT64:
        return [last_32_bits]
    # :: and ::1 also sit in ::/96 but are IPv6's own unspecified and loopback addresses.
    if ip in _V6_IPV4_COMPATIBLE and int(ip) > 1:
        return [last_32_bits]
    return []


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address `host` spells literally (IPv6 with or without brackets, legacy IPv4 forms), else None."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    if _LEGACY_V4.match(bare):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    return None


async def resolve_checked(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """All addresses `host` stands for, refusing the whole host if any of them is internal.

    One internal address is enough to refuse: a name with a public and a private record could otherwise
    be steered to the private one by whichever record a connection attempt happens to pick.
    """
    if not host:
        raise EgressError("the URL has no host")
    literal = parse_ip_literal(host)
    addresses = [literal] if literal is not None else await _resolve(host, port)
    if not allow_private and any(is_internal_address(address) for address in addresses):
        kind = "is" if literal is not None else "resolves to"
        raise BlockedAddressError(f"{host} {kind} a private or internal address, which is not allowed")
    return addresses


async def _resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError):
        raise EgressError(f"{host} does not resolve to any address") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise EgressError(f"{host} does not resolve to any address")
    return addresses
