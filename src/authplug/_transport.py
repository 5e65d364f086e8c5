"""The thin HTTP transport of token calls: one request out, one answer back.

Token calls never go through the user's session or client (a user's auth on that
client would recurse into us). They go through httpcore, httpx's own engine, with a
fresh connection pool per call (token calls are rare: a kept-alive connection would
long be closed by the next one, and nothing stays open when an auth object is dropped
or the process forks). Four rules:

- ``timeout`` bounds the whole call. Every connect, TLS handshake, write and read is
  given at most what is left of one deadline, so a server that sends its status line,
  its headers or its body a byte at a time cannot hold the call (and the single flight
  waiting on it) past ``timeout``.
- The answer is read up to :data:`MAX_ANSWER` bytes; what lies beyond is not read.
- Nothing of the request reaches a log: httpx's INFO line, which shows the URL (a
  query may hold a password), is never emitted because httpx's client is not used, and
  httpcore's DEBUG records are scrubbed while a token call runs.
- Secrets enter the request at the last moment (:func:`authplug._redact.reveal`), in a
  frame no exception leaves: a failure comes back as :class:`TransportFailure`
  carrying a description only, raised outside the ``except`` block so that it
  chains to nothing.

SSL contexts, the costly part (a CA bundle is hundreds of kilobytes), are shared by
every auth object with the same TLS settings.
"""

from __future__ import annotations

import contextvars
import logging
import os
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

import httpcore

from ._redact import reveal
from ._wire import RawResponse, TokenRequest, TransportFailure
from .errors import ConfigurationError

__all__ = ["CertOption", "TokenTransport", "VerifyOption", "ssl_context"]

# A token answer is a few hundred bytes; an error page a few kB. What lies beyond this
# is not read (a JSON answer cut here reads as truncated).
MAX_ANSWER = 1 << 20

CertOption = str | tuple[str, str] | None
VerifyOption = bool | str | ssl.SSLContext


# -- TLS -------------------------------------------------------------------------------

_contexts: dict[tuple[object, ...], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def _load_cert(context: ssl.SSLContext, cert: CertOption) -> None:
    if cert is None:
        return
    certfile, keyfile = (cert, None) if isinstance(cert, str) else cert
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cert=: the client certificate {certfile!r} could not be loaded "
            f"({type(exc).__name__}: {exc.strerror or exc}); give a PEM certificate "
            "file and its key file"
        ) from None


def _build_context(verify: bool | str, cert: CertOption) -> ssl.SSLContext:
    if isinstance(verify, str):
        if os.path.isdir(verify):
            context = ssl.create_default_context(capath=verify)
        else:
            context = ssl.create_default_context(cafile=verify)
    else:
        import httpx  # its CA logic: certifi, or SSL_CERT_FILE / SSL_CERT_DIR

        context = httpx.create_ssl_context(verify=verify)
    _load_cert(context, cert)
    return context


def ssl_context(verify: VerifyOption, cert: CertOption) -> ssl.SSLContext:
    """The TLS settings of token calls, one shared context per distinct setting.

    A caller's own ``ssl.SSLContext`` is used as it is (the client certificate, if
    any, is loaded into it).
    """
    if isinstance(verify, ssl.SSLContext):
        _load_cert(verify, cert)
        return verify
    env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    key = (verify, cert if not isinstance(cert, list) else tuple(cert), env)
    with _contexts_lock:
        context = _contexts.get(key)
        if context is None:
            context = _contexts[key] = _build_context(verify, cert)
        return context


def _reset_after_fork() -> None:
    global _contexts_lock
    _contexts_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def check_cert_files(cert: CertOption) -> None:
    """Fail at construction, naming the file, when a certificate file cannot be read."""
    if cert is None:
        return
    files = (cert,) if isinstance(cert, str) else tuple(cert)
    if not files or not all(isinstance(f, (str, os.PathLike)) for f in files):
        raise ConfigurationError("cert= takes a PEM file name or a (certfile, keyfile) pair")
    for name in files:
        try:
            with open(name, "rb") as handle:
                handle.read(1)
        except OSError as exc:
            raise ConfigurationError(
                f"cert=: cannot read {os.fspath(name)!r} ({exc.strerror}); give a readable "
                "PEM certificate file and key file"
            ) from None


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


def _describe(exc: BaseException, deadline: _Deadline) -> str:
    text = str(exc).strip()
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if deadline.passed():
        return f"the token call took longer than {deadline.timeout:g}s ({described})"
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


class TokenTransport:
    """Sends token requests with httpcore, sync or async, within one deadline each."""

    def __init__(
        self,
        *,
        timeout: float,
        verify: VerifyOption,
        cert: CertOption,
        proxy: str | None = None,
    ) -> None:
        self.timeout = timeout
        self._verify = verify
        self._cert = cert
        # A proxy given to the auth object; without one, the environment's (per URL).
        self._proxy = proxy_from_url(proxy) if proxy is not None else None

    def __repr__(self) -> str:
        return f"TokenTransport(timeout={self.timeout!r})"

    def check(self) -> None:
        """Build the TLS settings now, so that a bad certificate fails at construction."""
        self._context()

    def _context(self) -> ssl.SSLContext:
        return ssl_context(self._verify, self._cert)

    def _timeouts(self) -> dict[str, float]:
        t = self.timeout
        return {"connect": t, "read": t, "write": t, "pool": t}

    def send(self, request: TokenRequest) -> RawResponse:
        deadline = _Deadline(self.timeout)
        pool = httpcore.ConnectionPool(
            ssl_context=self._context(),
            proxy=self._proxy or _env_proxy(request.url),
            network_backend=_Backend(deadline),
        )
        scrubbing = _scrubbing.set(request.scrub)
        failure = ""
        try:
            with pool:
                return self._exchange(pool, request)
        except Exception as exc:  # whatever it is, it ends as a description
            failure = _describe(exc, deadline)
        finally:
            _scrubbing.reset(scrubbing)
        raise TransportFailure(failure)

    def _exchange(self, pool: httpcore.ConnectionPool, request: TokenRequest) -> RawResponse:
        url, headers, body = reveal(
            request.url, request.headers, request.body, request.body_kind, request.stand_ins
        )
        answer = _Answer()
        with pool.stream(
            request.method,
            url,
            headers=list(headers.items()),
            content=body,
            extensions={"timeout": self._timeouts()},
        ) as response:
            for chunk in response.iter_stream():
                if not answer.add(chunk):
                    break
        return answer.response(response)

    async def asend(self, request: TokenRequest) -> RawResponse:
        deadline = _Deadline(self.timeout)
        pool = httpcore.AsyncConnectionPool(
            ssl_context=self._context(),
            proxy=self._proxy or _env_proxy(request.url),
            network_backend=_AsyncBackend(deadline),
        )
        scrubbing = _scrubbing.set(request.scrub)
        failure = ""
        try:
            async with pool:
                return await self._aexchange(pool, request)
        except Exception as exc:  # whatever it is, it ends as a description
            failure = _describe(exc, deadline)
        finally:
            _scrubbing.reset(scrubbing)
        raise TransportFailure(failure)

    async def _aexchange(
        self, pool: httpcore.AsyncConnectionPool, request: TokenRequest
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
            extensions={"timeout": self._timeouts()},
        ) as response:
            async for chunk in response.aiter_stream():
                if not answer.add(chunk):
                    break
        return answer.response(response)
