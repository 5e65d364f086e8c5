"""The login the browser tests drive: today a stand-in for authplug's own, tomorrow authplug's.

:func:`log_in` is the one place that says how a person is logged in: it takes the
``on_authorize`` callable (a :class:`~tests.browser.chromium.ChromiumPerson`'s ``approve``)
and returns what the protected API says about the token it got. Until
``OAuth2AuthorizationCodeAuth`` is in ``authplug``, it does what that class will do with
Authlib's ``OAuth2Session`` (PKCE S256, a fresh ``state``, ``prompt=consent`` so that
oidc-provider grants ``offline_access``) and :class:`LoopbackReceiver`, a stand-in for
authplug's loopback listener that answers with the same landing-page titles. The tests and
``screenshot.py`` call only :func:`log_in`, :data:`LOGIN_ERROR` and :data:`PROVIDER_CONFIG`.
"""

from __future__ import annotations

import html
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session

from ..servers import PASSWORD, USERNAME
from .chromium import LOGGED_IN, LOGIN_FAILED

#: A public native client (RFC 8252): no secret, PKCE, a loopback redirect on any port.
CLIENT_ID = "browser-cli"
SCOPE = "openid offline_access"
PUBLIC_CLIENT = {
    "client_id": CLIENT_ID,
    "application_type": "native",
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    # oidc-provider compares a native client's loopback redirect without its port
    # (RFC 8252 §7.3), so the listener's ephemeral port matches this one registration.
    "redirect_uris": ["http://127.0.0.1/callback"],
}
#: oidc-provider's own login and consent pages (devInteractions), and the public client:
#: given to ``OidcProviderServer(extra_config=...)``. ``features`` is what today's server.mjs
#: reads; ``logins`` (the person's account and password, checked before devInteractions
#: signs anyone in) is what issue 22's server.mjs reads. Each ignores the other's key.
PROVIDER_CONFIG: dict[str, Any] = {
    "features": {"devInteractions": {"enabled": True}},
    "logins": {"accounts": {USERNAME: PASSWORD}},
    "clients": [PUBLIC_CLIENT],
}
LOGIN_TIMEOUT = 60.0


class LoginFailedError(Exception):
    """The stand-in login ended without a token (authplug raises its own AuthError)."""


#: What a login the person cancelled raises.
# LEAD: with authplug's login, this becomes authplug.AuthError (or the subclass it raises).
LOGIN_ERROR: type[Exception] = LoginFailedError


def log_in(server: Any, on_authorize: Callable[[str], object]) -> dict[str, Any]:
    """Log a person in on ``server`` (an OidcProviderServer started with
    :data:`PROVIDER_CONFIG`) through ``on_authorize``; return the API's answer (``sub``,
    ``client_id``, ``scope``) for the access token the login got.

    LEAD: once OAuth2AuthorizationCodeAuth is on main, this body becomes::

        auth = OAuth2AuthorizationCodeAuth(
            issuer=server.issuer, client_id=CLIENT_ID, scope=SCOPE,
            on_authorize=on_authorize, login_timeout=LOGIN_TIMEOUT,
        )
        auth.login()
        answer = requests.get(server.api_url, auth=auth, timeout=10)
        answer.raise_for_status()
        return dict(answer.json())

    (oidc-provider grants ``offline_access`` only with ``prompt=consent``: the class must
    send it, or the test's scope check shows it does not.) ``on_authorize`` blocks until
    the landing page is shown, so the listener must answer while it runs.
    """
    metadata = server.metadata
    with (
        LoopbackReceiver() as receiver,
        OAuth2Session(
            CLIENT_ID,
            redirect_uri=receiver.url,
            scope=SCOPE,
            code_challenge_method="S256",
            token_endpoint_auth_method="none",
        ) as session,
    ):
        session.trust_env = False  # loopback only: no proxy from the environment
        verifier = secrets.token_urlsafe(48)
        url, state = session.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier, prompt="consent"
        )
        receiver.expect(state)
        on_authorize(url)
        query = receiver.wait(LOGIN_TIMEOUT)
        if "code" not in query:
            raise LoginFailedError(f"the login failed: {query.get('error', 'no code')}")
        token = session.fetch_token(
            metadata["token_endpoint"], code=query["code"], code_verifier=verifier
        )
    answer = requests.get(
        server.api_url,
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    )
    answer.raise_for_status()
    return dict(answer.json())


class LoopbackReceiver:
    """A stand-in for authplug's loopback listener, on ``127.0.0.1`` and a free port.

    ``/callback`` with the expected ``state`` is answered with the landing page (title
    :data:`~tests.browser.chromium.LOGGED_IN`, or ``LOGIN_FAILED`` for an error) and ends
    the wait; a wrong ``state`` gets a 400 and the wait goes on; any other path a 404.
    """

    def __init__(self) -> None:
        self._state = ""
        self._query: dict[str, str] | None = None
        self._done = threading.Event()
        #: Callbacks refused for a wrong state, and requests for other paths.
        self.refused = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_port}/callback"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __repr__(self) -> str:
        return f"LoopbackReceiver(url={self.url!r}, done={self._done.is_set()})"

    def __enter__(self) -> LoopbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def expect(self, state: str) -> None:
        self._state = state

    def wait(self, timeout: float) -> dict[str, str]:
        """The valid callback's query parameters."""
        if not self._done.wait(timeout):
            raise LoginFailedError(f"no valid callback reached {self.url} in {timeout} s")
        assert self._query is not None
        return self._query

    def _answer(self, path: str, query: dict[str, str]) -> tuple[int, str, str]:
        """The status, title and message for one request."""
        if path != "/callback" or self._done.is_set():
            self.refused += 1
            return 404, "Not found", "Nothing here."
        if not self._state or not secrets.compare_digest(query.get("state", ""), self._state):
            self.refused += 1
            return 400, LOGIN_FAILED, "This answer is not for the login in progress."
        self._query = query
        self._done.set()
        if "code" in query:
            return 200, LOGGED_IN, "You can close this window and go back to the application."
        reason = query.get("error_description") or query.get("error") or "no code"
        return 200, LOGIN_FAILED, f"The login failed: {reason}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {key: values[0] for key, values in parse_qs(parts.query).items()}
                status, title, message = receiver._answer(parts.path, query)
                heading = HEADINGS.get(title, title)
                page = PAGE.format(
                    title=html.escape(title), heading=heading, message=html.escape(message)
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: the request line carries the authorization code."""

        return Handler


# The words and look of authplug's own landing page, so that the screenshot shows it.
HEADINGS = {LOGGED_IN: "You are logged in", LOGIN_FAILED: "The login failed"}
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:4em auto;max-width:32em;color:#222}}
h1{{font-size:1.4em}}</style></head><body><h1>{heading}</h1><p>{message}</p></body></html>
"""
