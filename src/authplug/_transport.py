"""The thin HTTP transport of token calls: one request out, one answer back.

Token calls never go through the user's session or client (a user's auth on that
client would recurse into us); they go through a private httpx client built from the
``timeout``, ``verify`` and ``cert`` options. Retries and interpretation live in
:mod:`authplug._authlib`.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from .errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["CertOption", "HttpxTransport", "RawResponse", "TokenRequest", "TransportFailure"]

# A token answer is a few hundred bytes; an error page a few kB. What lies beyond this
# is not read (a JSON answer cut here reads as truncated).
MAX_ANSWER = 1 << 20

CertOption = str | tuple[str, str] | None
VerifyOption = bool | str | ssl.SSLContext


@dataclass(frozen=True, slots=True, repr=False)
class TokenRequest:
    """A token request as Authlib prepared it. Its repr never shows the body or query."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes

    def __repr__(self) -> str:
        url = httpx.URL(self.url)
        return f"TokenRequest({self.method} {url.scheme}://{url.netloc.decode()}{url.path})"


@dataclass(frozen=True, slots=True)
class RawResponse:
    """The token endpoint's answer, read whole (token answers are small)."""

    status_code: int
    headers: Mapping[str, str] = field(repr=False)
    content: bytes = field(repr=False)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class TransportFailure(Exception):
    """No answer at all: connection refused, TLS failure, timeout…"""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def build_ssl_context(verify: VerifyOption, cert: CertOption) -> ssl.SSLContext:
    """The TLS settings of token calls; the client certificate goes in the context.

    httpx 0.28 deprecates ``cert=``: a client certificate travels in an SSLContext.
    """
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif isinstance(verify, str):
        if os.path.isdir(verify):
            context = ssl.create_default_context(capath=verify)
        else:
            context = ssl.create_default_context(cafile=verify)
    else:
        context = httpx.create_ssl_context(verify=verify)
    if cert is not None:
        certfile, keyfile = (cert, None) if isinstance(cert, str) else cert
        try:
            context.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"cert=: the client certificate {certfile!r} could not be loaded "
                f"({type(exc).__name__}: {exc.strerror or exc}); give a PEM certificate "
                "file and its key file"
            ) from None
    return context


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


class _Answer:
    """An answer's body, read within the call's deadline and up to MAX_ANSWER bytes.

    httpx's ``timeout`` bounds each read, not the whole call: a server that trickles
    its answer a byte at a time would never time out. The deadline does: after it, no
    further chunk is waited for, so a call ends within about twice ``timeout``.
    """

    __slots__ = ("_chunks", "_deadline", "_size", "_timeout")

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; False once enough has been read."""
        if time.monotonic() > self._deadline:
            raise TransportFailure(f"the answer took longer than {self._timeout:g}s to arrive")
        room = MAX_ANSWER - self._size
        self._chunks.append(chunk[:room])
        self._size += min(len(chunk), room)
        return self._size < MAX_ANSWER

    def response(self, response: httpx.Response) -> RawResponse:
        return RawResponse(response.status_code, dict(response.headers), b"".join(self._chunks))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class HttpxTransport:
    """Sends token requests with httpx, sync or async."""

    def __init__(self, *, timeout: float, verify: VerifyOption, cert: CertOption) -> None:
        self._timeout = timeout
        self._verify = verify
        self._cert = cert
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"HttpxTransport(timeout={self._timeout!r})"

    def check(self) -> None:
        """Build the TLS settings now, so that a bad certificate fails at construction."""
        self._ssl_context()

    def _ssl_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._context is None:
                self._context = build_ssl_context(self._verify, self._cert)
            return self._context

    def send(self, request: TokenRequest) -> RawResponse:
        # A fresh client per call: token calls are rare (a keep-alive connection would
        # long be closed by the next one), and nothing is left open when the auth
        # object is dropped or the process forks. The SSL context, the costly part,
        # is shared.
        answer = _Answer(self._timeout)
        try:
            with (
                httpx.Client(
                    verify=self._ssl_context(), timeout=self._timeout, follow_redirects=False
                ) as client,
                client.stream(
                    request.method, request.url, headers=dict(request.headers), content=request.body
                ) as response,
            ):
                for chunk in response.iter_bytes():
                    if not answer.add(chunk):
                        break
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            raise TransportFailure(_describe(exc)) from exc
        return answer.response(response)

    async def asend(self, request: TokenRequest) -> RawResponse:
        # Likewise, and an async client is bound to the event loop it first ran on,
        # while one auth object may serve several loops.
        context = self._ssl_context()
        answer = _Answer(self._timeout)
        try:
            async with (
                httpx.AsyncClient(
                    verify=context, timeout=self._timeout, follow_redirects=False
                ) as client,
                client.stream(
                    request.method, request.url, headers=dict(request.headers), content=request.body
                ) as response,
            ):
                async for chunk in response.aiter_bytes():
                    if not answer.add(chunk):
                        break
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            raise TransportFailure(_describe(exc)) from exc
        return answer.response(response)
