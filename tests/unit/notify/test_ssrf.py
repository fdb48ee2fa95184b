from __future__ import annotations

import asyncio

import pytest

from notify.ssrf import Allowlist, UnsafeUrlError, VettedUrl, check_url


def fixed(*ips: str):  # a resolver that needs no DNS
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return list(ips)

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def check(url: str, allow: tuple[str, ...] = (), resolver=None) -> VettedUrl:
    return asyncio.run(check_url(url, allow, resolver or fixed("93.184.216.34")))


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://127.0.0.1/",
        "http://0.0.0.0/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://224.0.0.1/",  # multicast
        "http://240.0.0.1/",  # reserved
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
        "http://[::ffff:169.254.169.254]/",
        "http://[2002:a00:1::]/",  # 6to4 around 10.0.0.1
        "http://[64:ff9b::a00:1]/",  # NAT64 around 10.0.0.1
        "http://[::]/",
    ],
)
def test_non_public_literals_refused(url: str) -> None:
    with pytest.raises(UnsafeUrlError, match="non-public"):
        check(url)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://x/", "ftp://example.org/", "//x/"])
def test_only_http_and_https(url: str) -> None:
    with pytest.raises(UnsafeUrlError, match="scheme"):
        check(url)


def test_hostname_resolving_to_loopback_refused_unless_allowlisted() -> None:
    resolver = fixed("127.0.0.1")
    refused = "internal.test resolves to non-public address 127.0.0.1"
    with pytest.raises(UnsafeUrlError, match=refused):
        check("https://internal.test/hook", resolver=resolver)
    assert check("https://internal.test/x", ("internal.test",), resolver).ips == ("127.0.0.1",)
    assert check("https://Internal.Test./x", ("127.0.0.0/8",), resolver).host == "internal.test"


def test_one_private_answer_among_public_ones_is_enough_to_refuse() -> None:
    with pytest.raises(UnsafeUrlError, match="10.1.2.3"):
        check("https://mixed.test/", resolver=fixed("93.184.216.34", "10.1.2.3"))


def test_loopback_allowed_when_allowlisted() -> None:
    vetted = check("http://127.0.0.1:8123/hook", ("127.0.0.1",))
    assert (vetted.host, vetted.port, vetted.ips) == ("127.0.0.1", 8123, ("127.0.0.1",))
    assert check("http://[::1]/", ("::1/128",)).ips == ("::1",)


def test_public_addresses_pass_and_literals_skip_dns() -> None:
    resolver = fixed("10.0.0.1")  # would be refused if it were asked
    assert check("https://93.184.216.34/", resolver=resolver).port == 443
    assert check("http://[2606:4700::1111]/", resolver=resolver).ips == ("2606:4700::1111",)
    assert resolver.calls == []  # type: ignore[attr-defined]


def test_resolution_failure_propagates_as_oserror() -> None:
    async def broken(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(OSError, match="no such host"):
        asyncio.run(check_url("https://gone.test/", (), broken))
    with pytest.raises(OSError, match="no addresses"):
        check("https://empty.test/", resolver=fixed())


def test_system_resolver_localhost_refused() -> None:
    # /etc/hosts answers, no network needed
    with pytest.raises(UnsafeUrlError, match="non-public"):
        asyncio.run(check_url("http://localhost:9/"))


def test_allowlist_parse() -> None:
    allow = Allowlist.parse(["10.0.0.0/8", " hooks.internal ", "", "[::1]"])
    assert len(allow.networks) == 2 and allow.hosts == frozenset({"hooks.internal"})
