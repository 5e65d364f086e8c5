"""Hosts and origins: what counts as loopback, and the warning for tokens sent in clear.

Only ``localhost``, a ``*.localhost`` name that actually resolves to loopback
addresses, and loopback IPs count as loopback. Plain ``http://`` is fine there (a
test server, a sidecar); anywhere else a Bearer token in clear can be read on the way,
so the first request to each such origin logs one WARNING per auth object.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading

__all__ = ["PlainHttpWarner", "is_loopback"]

log = logging.getLogger("authplug")


def _loopback_ip(host: str) -> bool | None:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """True for localhost, loopback IPs, and ``*.localhost`` names that resolve to loopback."""
    host = host.lower().rstrip(".")
    if host == "localhost":
        return True
    literal = _loopback_ip(host)
    if literal is not None:
        return literal
    if not host.endswith(".localhost"):
        return False
    try:
        addresses = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return bool(addresses) and all(
        _loopback_ip(str(address[4][0])) is True for address in addresses
    )


class PlainHttpWarner:
    """Warns once per origin when a token goes over plain HTTP to a non-loopback host."""

    __slots__ = ("_lock", "_provider", "_seen")

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def check(self, scheme: str, host: str, port: int | None) -> None:
        """Called with each request's URL parts; costs a set lookup after the first time."""
        if scheme != "http":
            return
        shown = f"[{host}]" if ":" in host else host  # an IPv6 address
        origin = f"{shown}:{port}" if port else shown
        if origin in self._seen:
            return
        with self._lock:
            if origin in self._seen:
                return
            self._seen.add(origin)
        if not is_loopback(host):
            log.warning(
                "%s: sending the access token over plain http to %s: anyone on the way "
                "can read and reuse it; use https",
                self._provider,
                f"http://{origin}",
            )
