"""The loopback redirect of a person's login (RFC 8252 §7.3): one valid callback, then closed.

A :class:`Loopback` listens on ``127.0.0.1`` (an ephemeral port unless the redirect URI
names one), in a daemon thread of its own, for the authorization server's redirect:

- the redirect URI's path with the ``state`` of this login and a ``code`` (or an
  ``error``) completes the login and answers a small landing page (no external
  resources) saying that the login worked, or why it failed;
- the same path with another ``state`` (a stale tab, a forged link) is refused with a
  400 page and the login keeps waiting for the right one;
- any other path is a 404.

The code is kept as a :class:`~authplug._redact.Secret` and never logged: the standard
library's request log line (which holds the query string) is switched off.
"""

from __future__ import annotations

import hmac
import html
import http.server
import threading
import time
from urllib.parse import parse_qs, urlsplit

from .._redact import Secret
from ..errors import AuthError, ConfigurationError

__all__ = ["LOOPBACK_HOSTS", "Loopback", "loopback_parts"]

#: The hosts a redirect URI of ours may name: a listener on this machine only.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:4em auto;max-width:32em;color:#222}}
h1{{font-size:1.4em}}</style></head>
<body><h1>{heading}</h1><p>{text}</p></body></html>
"""


def loopback_parts(redirect_uri: str | None) -> tuple[str, int, str]:
    """``(host, port, path)`` to listen on for ``redirect_uri`` (default: 127.0.0.1, an
    ephemeral port, ``/callback``).

    Raises:
        ConfigurationError: the URI is not ``http://`` on a loopback host.
    """
    if redirect_uri is None:
        return "127.0.0.1", 0, "/callback"
    parts = urlsplit(redirect_uri)
    host = parts.hostname or ""
    if parts.scheme != "http" or host not in {h.strip("[]") for h in LOOPBACK_HOSTS}:
        raise ConfigurationError(
            "redirect_uri= must be http:// on a loopback host (127.0.0.1, localhost or "
            f"[::1], RFC 8252 §7.3): authplug listens for the redirect itself; got {redirect_uri!r}"
        )
    try:
        port = parts.port or 0
    except ValueError:
        raise ConfigurationError(f"redirect_uri= has no valid port: {redirect_uri!r}") from None
    return host, port, parts.path or "/"


def _page(ok: bool, text: str) -> bytes:
    title = "authplug: logged in" if ok else "authplug: login failed"
    heading = "You are logged in" if ok else "The login failed"
    return _PAGE.format(title=title, heading=heading, text=html.escape(text)).encode("utf-8")


class Loopback:
    """Listens for one login's redirect; :meth:`wait` gives the code."""

    def __init__(self, redirect_uri: str | None, state: str, provider: str) -> None:
        host, port, self._path = loopback_parts(redirect_uri)
        self._state = state
        self._provider = provider
        self._done = threading.Event()
        self._code: Secret | None = None
        self._failure: AuthError | None = None
        bind = "::1" if host in ("::1", "[::1]") else ("127.0.0.1" if host == "localhost" else host)
        server_class = _IPv6Server if ":" in bind else http.server.ThreadingHTTPServer
        try:
            self._server = server_class((bind, port), _handler_for(self))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen on {bind}:{port} for the login's redirect: {exc.strerror}"
            ) from None
        self._server.daemon_threads = True
        actual = self._server.server_address[1]
        shown = "localhost" if host == "localhost" else ("[::1]" if ":" in bind else bind)
        #: The redirect URI to send: the one given, with the port the listener got.
        self.redirect_uri = f"http://{shown}:{actual}{self._path}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="authplug-login-redirect",
            daemon=True,
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"Loopback(redirect_uri={self.redirect_uri!r})"

    # -- the server's side ---------------------------------------------------------

    def answer(self, path: str, query: str) -> tuple[int, bytes]:
        """The status and page for one GET (called in the server's threads)."""
        if path != self._path or self._done.is_set():
            return 404, b"not found"
        params = parse_qs(query, keep_blank_values=True)
        state = params.get("state", [""])[0]
        if not hmac.compare_digest(state.encode(), self._state.encode()):
            return 400, _page(
                False,
                "This answer does not belong to the login under way (its state differs). "
                "Go back to the application and start again if it is still waiting.",
            )
        if "error" in params:
            error = params["error"][0][:80]
            said = params.get("error_description", [""])[0][:200]
            self._finish(
                None,
                AuthError(
                    f"the authorization server refused the login: {said or error}",
                    provider=self._provider,
                    error=error,
                ),
            )
            return 200, _page(False, f"The authorization server said: {said or error}.")
        code = params.get("code", [""])[0]
        if not code:
            return 400, _page(False, "The answer holds neither a code nor an error.")
        self._finish(Secret(code), None)
        return 200, _page(True, "You can close this window and go back to the application.")

    def _finish(self, code: Secret | None, failure: AuthError | None) -> None:
        self._code, self._failure = code, failure
        self._done.set()

    # -- the login's side ----------------------------------------------------------

    def wait(self, timeout: float) -> Secret:
        """The code, once the redirect came (blocking, at most ``timeout`` seconds).

        Raises:
            AuthError: the server refused the login, or no redirect came in time.
        """
        self._done.wait(timeout)
        return self.outcome(timeout)

    async def await_code(self, timeout: float) -> Secret:
        """:meth:`wait` without blocking the event loop (a cancellable poll)."""
        from .. import _aio

        end = time.monotonic() + timeout
        while not self._done.is_set() and time.monotonic() < end:
            await _aio.sleep(0.05)
        return self.outcome(timeout)

    def outcome(self, timeout: float) -> Secret:
        """The code, or the error the login ended with."""
        if self._failure is not None:
            raise self._failure
        if self._code is None:
            raise AuthError(
                f"nobody completed the login within {timeout:g} s (login_timeout=)",
                provider=self._provider,
                error="login_timeout",
            )
        return self._code

    def close(self) -> None:
        """Stop listening (and wake a waiter: the login is over)."""
        self._done.set()
        self._server.shutdown()
        self._server.server_close()


class _IPv6Server(http.server.ThreadingHTTPServer):
    import socket

    address_family = socket.AF_INET6


def _handler_for(loopback: Loopback) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "authplug"
        sys_version = ""

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            status, body = loopback.answer(parts.path, parts.query)
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Nothing: the request line holds the code."""

    return Handler
