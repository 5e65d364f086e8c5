"""What counts as loopback, where a token may travel over plain http without a warning."""

from __future__ import annotations

import socket

import pytest

from authplug._net import is_loopback


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("localhost.", True),
        ("10.0.0.1", False),
        ("192.168.1.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("localhostx", False),
        ("127.0.0.1.example.com", False),
        ("0.0.0.0", False),  # noqa: S104 - a host name to classify, nothing is bound
        ("::", False),
        ("", False),
    ],
)
def test_is_loopback_table(host: str, expected: bool) -> None:
    """What counts as loopback for plain http: loopback IPs, localhost, and
    ``*.localhost`` only when it resolves to loopback; nothing else."""
    assert is_loopback(host) is expected


def test_dot_localhost_counts_only_when_it_resolves_to_loopback() -> None:
    """``a.localhost`` is loopback only if this host resolves it to loopback
    addresses (many resolvers know nothing of it: then it is not)."""
    try:
        found = [str(address[4][0]) for address in socket.getaddrinfo("a.localhost", None)]
    except OSError:
        found = []
    resolves_to_loopback = bool(found) and all(a.startswith(("127.", "::1")) for a in found)
    assert is_loopback("a.localhost") is resolves_to_loopback
    assert is_loopback("A.LocalHost.") is resolves_to_loopback
