"""Shared fixtures: emulators on loopback, a fake clock, and one driver per HTTP client.

The behavioural suite is written once against :class:`Driver` and runs for requests,
httpx and httpx async.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests

from authplug import BaseAuth
from authplug.testing import FakeClock, OAuth2Emulator, asettle, settle

CLIENTS = ("requests", "httpx", "httpx_async")


@dataclass
class Result:
    status: int
    data: Any
    history: int


class Driver:
    """Sends requests through one kind of client with a given auth object."""

    kind: str

    def send(self, auth: BaseAuth, method: str, url: str, **kwargs: Any) -> Result:
        """Send one request; return once any renewal it started has ended.

        A request that finds its token due goes out with it at once and renews in the
        background: settling makes the token-call counts of the tests exact.
        """
        result = self._send(auth, method, url, **kwargs)
        settle(auth)
        return result

    def _send(self, auth: BaseAuth, method: str, url: str, **kwargs: Any) -> Result:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the driver holds."""


def _json(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


class RequestsDriver(Driver):
    kind = "requests"

    def __init__(self, verify: str | bool = True) -> None:
        self.session = requests.Session()
        # Passed on each call: the machine's REQUESTS_CA_BUNDLE beats a session's verify.
        self.verify = verify

    def _send(self, auth: BaseAuth, method: str, url: str, **kwargs: Any) -> Result:
        self.session.auth = auth
        if "content" in kwargs:
            kwargs["data"] = kwargs.pop("content")
        response = self.session.request(method, url, timeout=10, verify=self.verify, **kwargs)
        return Result(response.status_code, _json(response.text), len(response.history))

    def close(self) -> None:
        self.session.close()


class HttpxDriver(Driver):
    kind = "httpx"

    def __init__(self, verify: str | bool = True) -> None:
        self.client = httpx.Client(timeout=10, verify=_context(verify))

    def _send(self, auth: BaseAuth, method: str, url: str, **kwargs: Any) -> Result:
        response = self.client.request(method, url, auth=auth, **kwargs)
        return Result(response.status_code, _json(response.text), len(response.history))

    def close(self) -> None:
        self.client.close()


class AsyncHttpxDriver(Driver):
    kind = "httpx_async"

    def __init__(self, verify: str | bool = True) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(timeout=10, verify=_context(verify))

    def _send(self, auth: BaseAuth, method: str, url: str, **kwargs: Any) -> Result:
        async def go() -> Result:
            response = await self.client.request(method, url, auth=auth, **kwargs)
            await asettle(auth)  # the renewal task runs on this loop, while it turns
            return Result(response.status_code, _json(response.text), len(response.history))

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


def _context(verify: str | bool) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify


def make_driver(kind: str, verify: str | bool = True) -> Driver:
    """A driver of that kind; ``verify`` is a CA file for HTTPS emulators."""
    classes: dict[str, type[RequestsDriver | HttpxDriver | AsyncHttpxDriver]] = {
        "requests": RequestsDriver,
        "httpx": HttpxDriver,
        "httpx_async": AsyncHttpxDriver,
    }
    return classes[kind](verify)


@pytest.fixture(params=CLIENTS)
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    """Each behavioural test runs once per HTTP client."""
    made = make_driver(request.param)
    yield made
    made.close()


@pytest.fixture
def emulator() -> Iterator[OAuth2Emulator]:
    with OAuth2Emulator() as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def authlog(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record of the authplug logger, down to DEBUG."""
    caplog.set_level(logging.DEBUG, logger="authplug")
    return caplog


def password_auth(emulator: OAuth2Emulator, **options: Any) -> BaseAuth:
    """The generic password grant against an emulator's default credentials."""
    from authplug import OAuth2PasswordAuth

    options.setdefault("username", emulator.username)
    options.setdefault("password", emulator.password)
    options.setdefault("client_id", emulator.client_id)
    options.setdefault("client_secret", emulator.client_secret)
    return OAuth2PasswordAuth(token_url=emulator.token_url, **options)


@pytest.fixture
def redis_server(tmp_path: Any) -> Iterator[Any]:
    """A real redis-server on a free port (skipped, with the reason, when not installed)."""
    from .redis_server import RedisServer

    server = RedisServer(tmp_path).start()
    yield server
    server.stop()
