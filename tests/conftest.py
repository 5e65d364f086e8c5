"""Shared fixtures: emulators on loopback, a fake clock, and one driver per HTTP client.

The behavioural suite is written once against :class:`Driver` and runs for every client
the package serves: requests, httpx (sync, asyncio, trio), httpx2 (sync and async),
aiohttp, and niquests (sync and async). niquests replaces urllib3 with urllib3-future in
the environment it is installed in, so its drivers run in a tox environment of their own
(``tox -e niquests``); elsewhere they are skipped, with that reason.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests

from authplug import BaseAuth
from authplug.testing import FakeClock, OAuth2Emulator, asettle, settle

ALL_CLIENTS = (
    "requests",
    "httpx",
    "httpx_async",
    "httpx_trio",
    "httpx2",
    "httpx2_async",
    "aiohttp",
    "niquests",
    "niquests_async",
)


def _clients(chosen: str | None) -> tuple[str, ...]:
    """``AUTHPLUG_TEST_CLIENTS`` (comma-separated) runs the suite for those clients only
    (tox.ini spreads the clients over the Pythons; py313 runs every client)."""
    if not chosen:
        return ALL_CLIENTS
    names = [name.strip() for name in chosen.split(",") if name.strip()]
    unknown = set(names) - set(ALL_CLIENTS)
    if unknown:
        raise pytest.UsageError(f"AUTHPLUG_TEST_CLIENTS: unknown {sorted(unknown)}")
    return tuple(name for name in ALL_CLIENTS if name in names)


CLIENTS = _clients(os.environ.get("AUTHPLUG_TEST_CLIENTS"))


@dataclass
class Result:
    status: int
    data: Any
    history: int


class Driver:
    """Sends requests through one kind of client with a given auth object.

    ``send`` takes httpx's words (``content=``, ``params=``, ``follow_redirects=``); the
    drivers of clients that follow redirects by default (requests, niquests, aiohttp)
    always follow them.
    """

    kind: str
    is_async = False  # its bodies may be async iterators
    logger: str | None = None  # the client's own logger, if it logs each request

    def __init__(self, verify: str | bool = True) -> None:
        """``verify``: a CA file for HTTPS emulators."""

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
    logger = "urllib3"

    def __init__(self, verify: str | bool = True) -> None:
        self.session = requests.Session()
        # Passed on each call: the machine's REQUESTS_CA_BUNDLE beats a session's verify.
        self.verify = verify

    def _send(self, auth: BaseAuth, method: str, url: str, **kwargs: Any) -> Result:
        self.session.auth = auth
        kwargs.pop("follow_redirects", None)
        if "content" in kwargs:
            kwargs["data"] = kwargs.pop("content")
        response = self.session.request(method, url, timeout=10, verify=self.verify, **kwargs)
        return Result(response.status_code, _json(response.text), len(response.history))

    def close(self) -> None:
        self.session.close()


class HttpxDriver(Driver):
    kind = "httpx"
    logger = "httpx"

    def __init__(self, verify: str | bool = True) -> None:
        self.client = self.module().Client(timeout=10, verify=_context(verify))

    @staticmethod
    def module() -> Any:
        return httpx

    def _send(self, auth: BaseAuth, method: str, url: str, **kwargs: Any) -> Result:
        response = self.client.request(method, url, auth=auth, **kwargs)
        return Result(response.status_code, _json(response.text), len(response.history))

    def close(self) -> None:
        self.client.close()


class AsyncHttpxDriver(Driver):
    kind = "httpx_async"
    is_async = True
    logger = "httpx"

    def __init__(self, verify: str | bool = True) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = self.module().AsyncClient(timeout=10, verify=_context(verify))

    @staticmethod
    def module() -> Any:
        return httpx

    async def _go(self, auth: BaseAuth, method: str, url: str, **kwargs: Any) -> Result:
        response = await self.client.request(method, url, auth=auth, **kwargs)
        await asettle(auth)  # the renewal task runs on this loop, while it turns
        return Result(response.status_code, _json(response.text), len(response.history))

    def _send(self, auth: BaseAuth, method: str, url: str, **kwargs: Any) -> Result:
        return self.loop.run_until_complete(self._go(auth, method, url, **kwargs))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


class TrioHttpxDriver(AsyncHttpxDriver):
    """httpx.AsyncClient inside one ``trio.run`` that lives as long as the driver."""

    kind = "httpx_trio"

    def __init__(self, verify: str | bool = True) -> None:
        pytest.importorskip("trio")
        from anyio.from_thread import start_blocking_portal

        self._portal_cm = start_blocking_portal("trio")
        self.portal = self._portal_cm.__enter__()
        self.client = httpx.AsyncClient(timeout=10, verify=_context(verify))

    def _send(self, auth: BaseAuth, method: str, url: str, **kwargs: Any) -> Result:
        async def go() -> Result:
            return await self._go(auth, method, url, **kwargs)

        return self.portal.call(go)

    def close(self) -> None:
        self.portal.call(self.client.aclose)
        self._portal_cm.__exit__(None, None, None)


class Httpx2Driver(HttpxDriver):
    kind = "httpx2"
    logger = "httpx2"

    @staticmethod
    def module() -> Any:
        return pytest.importorskip("httpx2")


class AsyncHttpx2Driver(AsyncHttpxDriver):
    kind = "httpx2_async"
    logger = "httpx2"

    @staticmethod
    def module() -> Any:
        return pytest.importorskip("httpx2")


class AiohttpDriver(Driver):
    """aiohttp with the auth object as a per-request middleware.

    aiohttp's ``response.history`` holds redirects only (a middleware's earlier answer,
    like the 401 before a replay, is not kept there, as with aiohttp's own
    ``DigestAuthMiddleware``): the driver counts the requests each call sent instead,
    from aiohttp's connection traces, so ``Result.history`` means the same as for the
    other clients.
    """

    kind = "aiohttp"
    is_async = True

    def __init__(self, verify: str | bool = True) -> None:
        self.aiohttp = pytest.importorskip("aiohttp")
        self.loop = asyncio.new_event_loop()
        self.ssl: Any = (
            ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        )
        self.session: Any = None

    def _session(self) -> Any:
        aiohttp = self.aiohttp
        traces = aiohttp.TraceConfig()

        async def sent(session: Any, context: Any, params: Any) -> None:
            context.trace_request_ctx["sent"] += 1

        traces.on_connection_create_end.append(sent)
        traces.on_connection_reuseconn.append(sent)
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10), trace_configs=[traces]
        )

    def _send(self, auth: BaseAuth, method: str, url: str, **kwargs: Any) -> Result:
        kwargs.pop("follow_redirects", None)
        if "content" in kwargs:
            kwargs["data"] = kwargs.pop("content")
        if "files" in kwargs:  # requests' and httpx's multipart words, in aiohttp's
            form = self.aiohttp.FormData()
            for name, value in kwargs.pop("data", {}).items():
                form.add_field(name, value)
            for name, (filename, content) in kwargs.pop("files").items():
                form.add_field(name, content, filename=filename)
            kwargs["data"] = form

        async def go() -> Result:
            if self.session is None:
                self.session = self._session()
            count = {"sent": 0}
            async with self.session.request(
                method, url, middlewares=(auth,), ssl=self.ssl, trace_request_ctx=count, **kwargs
            ) as response:
                text = await response.text()
            await asettle(auth)
            return Result(response.status, _json(text), count["sent"] - 1)

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        if self.session is not None:
            self.loop.run_until_complete(self.session.close())
        self.loop.close()


def _niquests() -> Any:
    return pytest.importorskip(
        "niquests", reason="niquests runs in its own tox environment: tox -e niquests"
    )


class NiquestsDriver(RequestsDriver):
    kind = "niquests"

    def __init__(self, verify: str | bool = True) -> None:
        self.session = _niquests().Session()
        self.verify = verify


class AsyncNiquestsDriver(Driver):
    kind = "niquests_async"
    is_async = True
    logger = "urllib3"

    def __init__(self, verify: str | bool = True) -> None:
        self.session = _niquests().AsyncSession()
        self.verify = verify
        self.loop = asyncio.new_event_loop()

    def _send(self, auth: BaseAuth, method: str, url: str, **kwargs: Any) -> Result:
        kwargs.pop("follow_redirects", None)
        if "content" in kwargs:
            kwargs["data"] = kwargs.pop("content")

        async def go() -> Result:
            response = await self.session.request(
                method, url, auth=auth, timeout=10, verify=self.verify, **kwargs
            )
            text = response.text
            if inspect.isawaitable(text):
                text = await text
            await asettle(auth)
            return Result(response.status_code, _json(text), len(response.history))

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.loop.run_until_complete(self.session.close())
        self.loop.close()


_DEFAULT_CONTEXT: list[ssl.SSLContext] = []


def _context(verify: str | bool) -> ssl.SSLContext | bool:
    """An SSL context for a client; the default one is built once (loading the system's
    CA bundle costs tens of milliseconds, and the suite builds hundreds of clients)."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    if verify is False:
        return False
    if not _DEFAULT_CONTEXT:
        _DEFAULT_CONTEXT.append(httpx.create_ssl_context())
    return _DEFAULT_CONTEXT[0]


def make_driver(kind: str, verify: str | bool = True) -> Driver:
    """A driver of that kind; ``verify`` is a CA file for HTTPS emulators."""
    classes: dict[str, type[Driver]] = {
        "requests": RequestsDriver,
        "httpx": HttpxDriver,
        "httpx_async": AsyncHttpxDriver,
        "httpx_trio": TrioHttpxDriver,
        "httpx2": Httpx2Driver,
        "httpx2_async": AsyncHttpx2Driver,
        "aiohttp": AiohttpDriver,
        "niquests": NiquestsDriver,
        "niquests_async": AsyncNiquestsDriver,
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
    if "issuer" not in options:
        options.setdefault("token_url", emulator.token_url)
    return OAuth2PasswordAuth(**options)


def key_for(emulator: OAuth2Emulator) -> str:
    """The cache key ``password_auth(emulator)`` stores its token under."""
    from authplug.cache import cache_key

    return cache_key(
        provider="oauth2",
        token_url=emulator.token_url,
        client_id=emulator.client_id,
        username=emulator.username,
        scope=None,
    )


@pytest.fixture
def redis_server(tmp_path: Any) -> Iterator[Any]:
    """A real redis-server on a free port (skipped, with the reason, when not installed)."""
    from .system.redis_server import RedisServer

    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def running_servers() -> Iterator[dict[str, Any]]:
    """Each real server starts once, when a test first needs it, and stops at the end."""
    import contextlib

    from .servers.running import start

    with contextlib.ExitStack() as stack:

        class Lazy(dict[str, Any]):
            def __missing__(self, name: str) -> Any:
                self[name] = stack.enter_context(start(name))
                return self[name]

        yield Lazy()


def _counted(request: pytest.FixtureRequest, running: dict[str, Any]) -> Any:
    server = running[request.param]
    server.reset_counts()
    return server


@pytest.fixture(params=("authlib", "django-oauth-toolkit", "oidc-provider"))
def server(request: pytest.FixtureRequest, running_servers: dict[str, Any]) -> Any:
    """Each real server in turn, its token-call counts at zero."""
    return _counted(request, running_servers)


@pytest.fixture(params=("authlib", "django-oauth-toolkit"))
def password_server(request: pytest.FixtureRequest, running_servers: dict[str, Any]) -> Any:
    """Each real server with the password grant (oidc-provider 9 has none), counts at zero."""
    return _counted(request, running_servers)


@pytest.fixture(scope="session")
def oidc() -> Iterator[Any]:
    """node oidc-provider 9 with its test configuration (DPoP on), started once.

    Shared by the DPoP tests of tests/clients/ and tests/endpoint/; a test module that
    needs another configuration defines its own ``oidc``.
    """
    from .servers.oidc_provider import OidcProviderServer

    with OidcProviderServer() as server:
        yield server


def dpop_client_credentials(server: Any, **options: Any) -> Any:
    """The client-credentials grant of a real server's client_secret_post client."""
    from authplug import OAuth2ClientCredentialsAuth

    client = server.client("client_credentials", "client_secret_post")
    return OAuth2ClientCredentialsAuth(
        token_url=server.token_url,
        client_id=client.client_id,
        client_secret=client.client_secret,
        **options,
    )
