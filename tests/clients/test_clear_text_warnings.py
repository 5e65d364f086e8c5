"""A token sent in clear is told once: plain http to a host not on loopback; verify=False."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
import requests

from authplug import (
    BaseAuth,
)
from authplug.testing import (
    OAuth2Emulator,
)

from ..conftest import password_auth


def authplug_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The WARNING records of the authplug logger."""
    return [r for r in caplog.records if r.name == "authplug" and r.levelno == logging.WARNING]


def send_via_proxy(kind: str, auth: BaseAuth, proxy: str, urls: list[str]) -> list[int]:
    """GET each URL through ``proxy`` (the emulator) with one kind of client."""
    if kind == "requests":
        with requests.Session() as session:
            session.auth = auth
            return [session.get(u, proxies={"http": proxy}, timeout=10).status_code for u in urls]
    if kind == "httpx":
        with httpx.Client(auth=auth, proxy=proxy, timeout=10) as client:
            return [client.get(u).status_code for u in urls]

    async def go() -> list[int]:
        async with httpx.AsyncClient(auth=auth, proxy=proxy, timeout=10) as client:
            return [(await client.get(u)).status_code for u in urls]

    return asyncio.run(go())


@pytest.mark.parametrize("kind", ["requests", "httpx", "httpx_async"])
def test_plain_http_warns_once_per_auth_and_origin(
    emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture, kind: str
) -> None:
    """A Bearer token over http:// to a non-loopback host logs one WARNING per auth
    object and origin; 127.0.0.1, localhost and ::1 never warn. (The emulator serves as
    the HTTP proxy, so ``api.example.test`` needs no DNS.)"""
    proxy = emulator.server_url
    port = emulator.server_url.rsplit(":", 1)[1]
    loopback = [
        f"http://127.0.0.1:{port}/api/resource",
        f"http://localhost:{port}/api/resource",
        f"http://LOCALHOST:{port}/api/resource",
        f"http://[::1]:{port}/api/resource",
    ]
    first = password_auth(emulator)
    assert send_via_proxy(kind, first, proxy, loopback) == [200] * 4
    assert not [r for r in authplug_warnings(authlog) if "plain http" in r.getMessage()]
    remote = ["http://api.example.test/api/resource", "http://api.example.test:8080/api/x"]
    assert send_via_proxy(kind, first, proxy, remote * 3) == [200] * 6
    second = password_auth(emulator)
    assert send_via_proxy(kind, second, proxy, remote[:1] * 2 + loopback) == [200] * 6
    plain = [r.getMessage() for r in authplug_warnings(authlog) if "plain http" in r.getMessage()]
    assert len(plain) == 3, plain
    assert sum("to http://api.example.test: " in m for m in plain) == 2
    assert sum("to http://api.example.test:8080: " in m for m in plain) == 1
    assert len(emulator.api_log) == 16
    assert all((hit.authorization or "").startswith("Bearer ") for hit in emulator.api_log)
    assert emulator.token_calls == {"password": 2}


def test_verify_false_warns_once(
    emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture
) -> None:
    """Verify=False logs one WARNING when the auth object is built, not per call;
    the default (verify=True) logs none."""
    password_auth(emulator)
    assert authplug_warnings(authlog) == []
    auth = password_auth(emulator, verify=False)
    assert len(authplug_warnings(authlog)) == 1
    assert "verify=False" in authplug_warnings(authlog)[0].getMessage()
    with httpx.Client(auth=auth, timeout=10) as client:
        assert client.get(emulator.api_url()).status_code == 200
        assert client.get(emulator.api_url()).status_code == 200
    assert len(authplug_warnings(authlog)) == 1
