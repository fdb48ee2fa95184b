"""Server-side request forgery guard for subscriber-supplied URLs (webhooks, Slack).

``check_url`` resolves the host and refuses the request if any address is not public:
loopback, private, link-local (including the 169.254.169.254 cloud metadata service),
unique-local, multicast, reserved, unspecified, and the same ranges hidden in IPv4-mapped,
6to4 or NAT64 IPv6 addresses. An allowlist of CIDRs or host names admits exceptions (a test
receiver on 127.0.0.1, an in-house endpoint). The webhook sender calls it right before every
attempt and connects to the vetted address it returns, so a DNS answer that changes between
check and connect (rebinding) cannot redirect the request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from cpwatch.exceptions import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeUrlError(ConfigError):
    """The URL may not be requested: bad scheme, no host, or a non-public address."""


async def system_resolver(host: str, port: int) -> list[str]:
    """``getaddrinfo`` in a thread: the event loop never blocks on DNS."""
    infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Allowlist:
    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        """Each entry an IP, a CIDR (``10.1.0.0/16``) or a host name (exact, case-insensitive)."""
        nets: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                nets.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(tuple(nets), frozenset(hosts))

    def admits(self, host: str, ip: IPAddress) -> bool:
        return host in self.hosts or any(ip in net for net in self.networks)


@dataclass(frozen=True)
class VettedUrl:
    url: str
    scheme: str
    host: str  # lower-case, without brackets
    port: int
    ips: tuple[str, ...]  # every address the host resolved to, all admitted


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses."""
    if isinstance(ip, ipaddress.IPv6Address) and (v4 := _embedded_v4(ip)) is not None:
        return is_public(v4)
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_private
    )


async def check_url(
    url: str,
    allowlist: Allowlist | Iterable[str] = (),
    resolver: Resolver | None = None,
) -> VettedUrl:
    """Resolve ``url``'s host and return its addresses, or raise ``UnsafeUrlError``.

    Resolution failures (``OSError``) propagate: they are transient, unlike a refusal.
    """
    allow = allowlist if isinstance(allowlist, Allowlist) else Allowlist.parse(allowlist)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrlError(f"malformed URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeUrlError(f"scheme {scheme or '(none)'!r} refused: only http and https")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeUrlError("URL has no host")
    port = port or DEFAULT_PORTS[scheme]
    try:
        ips = [str(ipaddress.ip_address(host))]  # a literal: no DNS, no surprises
    except ValueError:
        ips = await (resolver or system_resolver)(host, port)
    if not ips:
        raise OSError(f"{host}: no addresses")
    for text in ips:
        ip = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
        if not is_public(ip) and not allow.admits(host, ip):
            raise UnsafeUrlError(f"{host} resolves to non-public address {ip}; not allowlisted")
    return VettedUrl(url, scheme, host, port, tuple(ips))
