"""Who is the client: the socket peer, or what trusted proxies say about it (rightmost untrusted hop)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

from syncbed.wire import list_header

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_CACHE_MAX = 4096


def parse_ip(text: str) -> str | None:
    """A normalised address from a header hop ('1.2.3.4:80', '[::1]:80', '"[::1]"'), or None."""
    s = text.strip().strip('"')
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            return None
        s = s[1:end]
    elif s.count(":") == 1:
        s = s.split(":", 1)[0]  # IPv4 with a port
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def forwarded_for(value: str) -> list[str]:
    """The `for=` of every element of an RFC 7239 Forwarded header, left to right."""
    hops = []
    for element in value.split(","):
        for pair in element.split(";"):
            name, _, val = pair.strip().partition("=")
            if name.strip().lower() == "for":
                hops.append(val.strip())
    return hops


class IpSet:
    """CIDR membership with a small cache: the same few addresses ask again and again."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        self.cidrs = tuple(cidrs)
        self._nets: list[IpNetwork] = [ipaddress.ip_network(c.strip(), strict=False) for c in self.cidrs]
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._nets)

    def __contains__(self, ip: str) -> bool:
        hit = self._cache.get(ip)
        if hit is not None:
            return hit
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            found = False
        else:
            found = any(addr in net for net in self._nets if net.version == addr.version)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[ip] = found
        return found


class CidrError(ValueError):
    """An entry of a CIDR list that is not an address or range; `field` names it, as 'safelist[2]'."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def check_cidrs(cidrs: Iterable[str], where: str) -> None:
    """Raise CidrError naming the setting and the entry when one is not an address or CIDR range."""
    for i, c in enumerate(cidrs):
        try:
            ipaddress.ip_network(c.strip(), strict=False)
        except ValueError:
            raise CidrError(f"{where}[{i}]", f"{c!r} is not an IP address or CIDR range") from None


class ClientIp:
    """Resolves the client address of a request.

    X-Forwarded-For (or, when absent, Forwarded) is read only when the socket peer is a trusted
    proxy, and then from the right: each trusted hop vouches for the one before it, and the first
    untrusted (or unparseable) hop is the client. The leftmost entry is whatever the client sent.
    """

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self.trusted = IpSet(trusted_proxies)
        self.any_trusted = bool(self.trusted)

    def for_scope(self, scope: Scope) -> str:
        """The client address of an ASGI request: the only place forwarding headers are read."""
        client = scope.get("client")
        peer = _peer(client[0] if client else None)
        if not self.any_trusted or peer not in self.trusted:
            return peer  # what an untrusted peer says about others is worthless: not even read
        headers = scope["headers"]
        xff = list_header(headers, b"x-forwarded-for")
        forwarded = list_header(headers, b"forwarded") if xff is None else None  # XFF wins when both come
        return self._behind(peer, xff, forwarded)

    def resolve(self, peer: str | None, xff: str | None = None, forwarded: str | None = None) -> str:
        """for_scope's answer from values already read."""
        client = _peer(peer)
        if not self.any_trusted or client not in self.trusted:
            return client
        return self._behind(client, xff, forwarded)

    def _behind(self, client: str, xff: str | None, forwarded: str | None) -> str:
        """Walk the hops right to left from a trusted peer, while each hop is trusted."""
        if xff is not None:
            hops = xff.split(",")
        elif forwarded is not None:
            hops = forwarded_for(forwarded)
        else:
            return client
        for raw in reversed(hops):
            if client not in self.trusted:
                break
            hop = parse_ip(raw)
            if hop is None:
                break  # garbage, 'unknown' or an obfuscated name: the last trusted hop is all we know
            client = hop
        return client


def _peer(peer: str | None) -> str:
    """The socket peer as an address; an IPv4-mapped IPv6 one as plain IPv4."""
    if not peer:
        return "unknown"
    return parse_ip(peer) or peer if peer.startswith("::ffff:") else peer
