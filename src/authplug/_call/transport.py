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
- The answer is read up to :data:`authplug._call.engine.MAX_ANSWER` bytes (1 MiB); what lies
  beyond is not read.
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

import os
import ssl
import threading
from typing import TYPE_CHECKING

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from .._option_types import CertOption, VerifyOption
    from .messages import RawResponse, TokenRequest

__all__ = ["TokenTransport", "check_cert_files", "ssl_context"]


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


class TokenTransport:
    """Sends token requests, sync or async, within one deadline each.

    The sending itself (httpcore) lives in :mod:`authplug._call.engine`, imported by the
    first token call: importing authplug, or building an auth object, loads neither
    httpcore nor the async libraries it brings.
    """

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
        self._proxy = proxy

    def __repr__(self) -> str:
        return f"TokenTransport(timeout={self.timeout!r})"

    def check(self) -> None:
        """Build the TLS settings now, so that a bad certificate fails at construction."""
        self._context()

    def _context(self) -> ssl.SSLContext:
        return ssl_context(self._verify, self._cert)

    def send(self, request: TokenRequest) -> RawResponse:
        from . import engine as _engine

        return _engine.send(request, self.timeout, self._context(), self._proxy)

    async def asend(self, request: TokenRequest) -> RawResponse:
        from . import engine as _engine

        return await _engine.asend(request, self.timeout, self._context(), self._proxy)
