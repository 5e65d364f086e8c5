"""The sending of token calls, with httpcore: imported by the first token call.

:mod:`authplug._call.transport` describes the transport's rules; this module carries them out.
It is kept apart so that importing authplug loads neither httpcore nor what httpcore
imports when it is loaded (anyio, and trio where it is installed).
"""

from __future__ import annotations

import contextvars
import logging
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

import httpcore

from .._redact import reveal
from .messages import RawResponse, TokenRequest, TransportFailure

__all__ = ["MAX_ANSWER", "asend", "proxy_from_url", "send"]

# A token answer is a few hundred bytes; an error page a few kB. What lies beyond this
# is not read (a JSON answer cut here reads as truncated).
MAX_ANSWER = 1 << 20


# -- one deadline for the whole call ---------------------------------------------------


class _Deadline:
    __slots__ = ("at", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.at = time.monotonic() + timeout

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def left(self, timeout: float | None, error: type[Exception]) -> float:
        """What an operation may take: its own timeout, cut to what is left."""
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise error("deadline passed")
        return remaining if timeout is None else min(timeout, remaining)


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, left), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, deadline: _Deadline) -> None:
        self._backend = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, left, local_address, socket_options)
        return _Stream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:  # pragma: no cover - token calls never use a unix socket
        raise httpcore.UnsupportedProtocol("unix sockets are not used for token calls")

    def sleep(self, seconds: float) -> None:  # pragma: no cover - pools made with retries=0
        self._backend.sleep(seconds)


class _AsyncStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: httpcore.AsyncNetworkStream, deadline: _Deadline) -> None:
        self._stream = stream
        self._deadline = deadline

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        left = self._deadline.left(timeout, httpcore.ReadTimeout)
        return await self._stream.read(max_bytes, left)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, self._deadline.left(timeout, httpcore.WriteTimeout))

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        stream = await self._stream.start_tls(ssl_context, server_hostname, left)
        return _AsyncStream(stream, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, deadline: _Deadline) -> None:
        self._backend = httpcore.AnyIOBackend()  # asyncio and trio alike
        self._deadline = deadline

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        stream = await self._backend.connect_tcp(host, port, left, local_address, socket_options)
        return _AsyncStream(stream, self._deadline)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - token calls never use a unix socket
        raise httpcore.UnsupportedProtocol("unix sockets are not used for token calls")

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - pools made with retries=0
        await self._backend.sleep(seconds)


# -- what httpcore logs while a token call runs ----------------------------------------

_scrubbing: contextvars.ContextVar[Callable[[str], str] | None] = contextvars.ContextVar(
    "authplug_scrubbing", default=None
)


class _ScrubRecords(logging.Filter):
    """Scrubs httpcore's DEBUG records of a token call (an endpoint may echo a secret)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub = _scrubbing.get()
        if scrub is not None:
            record.msg = scrub(record.getMessage())
            record.args = None
        return True


for _name in ("connection", "http11", "http2", "proxy", "socks"):
    logging.getLogger(f"httpcore.{_name}").addFilter(_ScrubRecords())


# -- the answer ------------------------------------------------------------------------


class _Answer:
    """An answer's body, kept up to MAX_ANSWER bytes."""

    __slots__ = ("_chunks", "_size")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; False once enough has been read."""
        room = MAX_ANSWER - self._size
        self._chunks.append(chunk[:room])
        self._size += min(len(chunk), room)
        return self._size < MAX_ANSWER

    def response(self, response: httpcore.Response) -> RawResponse:
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in response.headers
        }
        return RawResponse(response.status, headers, b"".join(self._chunks))


# What each kind of request is called when it runs out of time.
_CALLED = {
    "token": "the token call",
    "revocation": "the revocation",
    "metadata": "the metadata read",
    "device": "the device authorization",
}


def _describe(exc: BaseException, deadline: _Deadline, request: TokenRequest) -> str:
    text = str(exc).strip()
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if deadline.passed():
        called = _CALLED[request.purpose]
        return f"{called} took longer than {deadline.timeout:g}s ({described})"
    return described


def _env_proxy(url: str) -> httpcore.Proxy | None:
    """The proxy the environment names for ``url`` (HTTPS_PROXY, ALL_PROXY, NO_PROXY)."""
    proxies = urllib.request.getproxies_environment()
    if not proxies:
        return None
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    chosen = proxies.get(parts.scheme) or proxies.get("all")
    if not chosen:
        return None
    return proxy_from_url(chosen)


def proxy_from_url(url: str) -> httpcore.Proxy:
    """httpcore's proxy for ``http://[user:password@]host:port`` (the credentials go in
    a Proxy-Authorization header, not in the URL httpcore keeps)."""
    proxy = urlsplit(url if "://" in url else "http://" + url)
    auth = (unquote(proxy.username), unquote(proxy.password or "")) if proxy.username else None
    netloc = proxy.hostname or ""
    if ":" in netloc:  # an IPv6 address
        netloc = f"[{netloc}]"
    if proxy.port:
        netloc += f":{proxy.port}"
    return httpcore.Proxy(f"{proxy.scheme}://{netloc}", auth=auth)


def _timeouts(timeout: float) -> dict[str, float]:
    return {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}


def _proxy(configured: str | None, url: str) -> httpcore.Proxy | None:
    return proxy_from_url(configured) if configured is not None else _env_proxy(url)


def send(
    request: TokenRequest, timeout: float, context: ssl.SSLContext, proxy: str | None
) -> RawResponse:
    """Send ``request`` and read its answer, all within ``timeout``."""
    deadline = _Deadline(timeout)
    pool = httpcore.ConnectionPool(
        ssl_context=context,
        proxy=_proxy(proxy, request.url),
        network_backend=_Backend(deadline),
    )
    scrubbing = _scrubbing.set(request.scrub)
    failure = ""
    try:
        with pool:
            return _exchange(pool, request, timeout)
    except Exception as exc:  # whatever it is, it ends as a description
        failure = _describe(exc, deadline, request)
    finally:
        _scrubbing.reset(scrubbing)
    raise TransportFailure(failure)


def _exchange(pool: httpcore.ConnectionPool, request: TokenRequest, timeout: float) -> RawResponse:
    url, headers, body = reveal(
        request.url, request.headers, request.body, request.body_kind, request.stand_ins
    )
    answer = _Answer()
    with pool.stream(
        request.method,
        url,
        headers=list(headers.items()),
        content=body,
        extensions={"timeout": _timeouts(timeout)},
    ) as response:
        for chunk in response.iter_stream():
            if not answer.add(chunk):
                break
    return answer.response(response)


async def asend(
    request: TokenRequest, timeout: float, context: ssl.SSLContext, proxy: str | None
) -> RawResponse:
    """Send ``request`` and read its answer, all within ``timeout`` (asyncio or trio)."""
    deadline = _Deadline(timeout)
    pool = httpcore.AsyncConnectionPool(
        ssl_context=context,
        proxy=_proxy(proxy, request.url),
        network_backend=_AsyncBackend(deadline),
    )
    scrubbing = _scrubbing.set(request.scrub)
    failure = ""
    try:
        async with pool:
            return await _aexchange(pool, request, timeout)
    except Exception as exc:  # whatever it is, it ends as a description
        failure = _describe(exc, deadline, request)
    finally:
        _scrubbing.reset(scrubbing)
    raise TransportFailure(failure)


async def _aexchange(
    pool: httpcore.AsyncConnectionPool, request: TokenRequest, timeout: float
) -> RawResponse:
    url, headers, body = reveal(
        request.url, request.headers, request.body, request.body_kind, request.stand_ins
    )
    answer = _Answer()
    async with pool.stream(
        request.method,
        url,
        headers=list(headers.items()),
        content=body,
        extensions={"timeout": _timeouts(timeout)},
    ) as response:
        async for chunk in response.aiter_stream():
            if not answer.add(chunk):
                break
    return answer.response(response)
