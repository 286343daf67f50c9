"""Who the client is: header hops parsed, forwarding believed only from trusted proxies, CIDR sets."""

from __future__ import annotations

import pytest

from server.client_ip import CidrError, ClientIp, IpSet, check_cidrs, forwarded_for, parse_ip


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("1.2.3.4", "1.2.3.4"),
        (" 1.2.3.4:8080 ", "1.2.3.4"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ('"[2001:db8::1]"', "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("unknown", None),
        ("_hidden", None),
        ("", None),
        ("[::1", None),
    ],
)
def test_parse_ip(raw: str, want: str | None) -> None:
    assert parse_ip(raw) == want


def test_forwarded_header_for_params() -> None:
    value = 'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711"'
    assert forwarded_for(value) == ["192.0.2.60", '"[2001:db8:cafe::17]:4711"']


def test_client_ip_believes_forwarded_headers_only_from_trusted_proxies() -> None:
    plain = ClientIp()
    assert plain.resolve("127.0.0.1", "6.6.6.6") == "127.0.0.1"  # nobody trusted: the peer
    cip = ClientIp(("127.0.0.1", "10.0.0.0/8"))
    assert cip.resolve("203.0.113.9", "6.6.6.6") == "203.0.113.9"  # untrusted peer: header ignored
    assert cip.resolve("127.0.0.1", "198.51.100.7") == "198.51.100.7"
    # A client-forged leftmost entry is skipped: the rightmost untrusted hop is the client.
    assert cip.resolve("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.1.1") == "198.51.100.7"
    assert cip.resolve("127.0.0.1", "10.0.0.2, 10.1.1.1") == "10.0.0.2"  # all trusted: the leftmost
    assert cip.resolve("127.0.0.1", "garbage, 10.1.1.1") == "10.1.1.1"  # unparseable hop: stop before it
    assert cip.resolve("127.0.0.1", None, "for=198.51.100.8") == "198.51.100.8"
    assert cip.resolve("127.0.0.1", "198.51.100.7", "for=1.1.1.1") == "198.51.100.7"  # XFF first
    assert cip.resolve("127.0.0.1") == "127.0.0.1"
    assert cip.resolve(None) == "unknown"
    assert cip.resolve("::ffff:203.0.113.9") == "203.0.113.9"


def test_ip_set_matches_cidrs_of_both_families() -> None:
    s = IpSet(("10.0.0.0/8", "2001:db8::/32", "192.0.2.1"))
    assert "10.200.0.1" in s and "2001:db8:1::5" in s and "192.0.2.1" in s
    assert "192.0.2.2" not in s and "not-an-ip" not in s and "::1" not in s
    assert not IpSet(())


def test_check_cidrs_names_the_setting_and_the_entry() -> None:
    check_cidrs(("10.0.0.0/8", " 2001:db8::/32 ", "192.0.2.1"), "safelist")
    with pytest.raises(CidrError) as caught:
        check_cidrs(("10.0.0.0/8", "10.0.0.0/33"), "limits.blocklist")
    assert (caught.value.field, str(caught.value)) == (
        "limits.blocklist[1]",
        "limits.blocklist[1]: '10.0.0.0/33' is not an IP address or CIDR range",
    )
