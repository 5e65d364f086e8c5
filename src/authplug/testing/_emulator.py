"""A token endpoint and a protected resource that behave like a real provider.

:class:`OAuth2Emulator` speaks RFC 6749 (form body, ``error``/``error_description``
errors). Provider emulators subclass it and change only what their provider does
differently: where the parameters are read from, what the answer looks like, how
errors read. Every knob a test needs is a method or attribute:

- ``token_lifetime``: seconds each new access token lives (None: no expiry given);
- ``revoke_all()``: every token issued so far is refused by the API from now on;
- ``reject_refresh``: refresh grants are refused;
- ``fail_next(n, status=503, retry_after=None)``: the next n token calls fail;
- ``malformed_next(n, body=…)``: the next n token calls answer 200 with that body;
- ``token_calls``: a Counter of token calls by grant type (``.total()`` for all);
- ``api_calls``: how many API requests arrived, and ``api_log`` what they carried.

The API answers ``/api/deny`` with 401 whatever the token, and ``/api/redirect?to=URL``
with a redirect.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, TypeVar

from ._server import LoopbackServer, Request, Response

__all__ = ["ApiHit", "JournalEntry", "OAuth2Emulator"]

_E = TypeVar("_E", bound="OAuth2Emulator")


@dataclass(frozen=True, slots=True)
class ApiHit:
    """One request the protected resource received."""

    method: str
    path: str
    authorization: str | None
    body_sha256: str
    status: int
    cookie: str | None = None


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One request the emulator answered, token endpoint or API, in arrival order."""

    kind: str  # "token" or "api"
    request: Request
    status: int
    issued: str | None = None  # the access token a token call issued


@dataclass(slots=True)
class _Issued:
    expires: float | None  # server monotonic time
    revoked: bool = False


class OAuth2Emulator:
    """An RFC 6749 token endpoint (password, client credentials, refresh) and an API."""

    name = "oauth2"
    base_path = ""  # the part of the base URL after the host (Login form: "/api")
    token_path = "/token"
    refresh_path: str | None = None  # a separate refresh endpoint, when the provider has one
    api_prefix = "/api"

    def __init__(
        self,
        *,
        username: str = "demo-user",
        password: str = "demo-password",
        client_id: str | None = "demo-client",
        client_secret: str | None = "demo-secret",
        token_lifetime: float | None = 3600,
        issue_refresh_tokens: bool = True,
        token_delay: float = 0.0,
    ) -> None:
        self.username = username
        self.password = password
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.issue_refresh_tokens = issue_refresh_tokens
        self.token_delay = token_delay
        self.reject_refresh = False
        self.token_calls: Counter[str] = Counter()
        self.token_requests: list[Request] = []
        self.api_calls = 0
        self.api_log: list[ApiHit] = []
        self.journal: list[JournalEntry] = []
        self._lock = threading.Lock()
        self._access: dict[str, _Issued] = {}
        # refresh token -> True (valid until revoked) or its monotonic deadline
        self._refresh: dict[str, float | bool] = {}
        self._failures: list[Response] = []
        self._serial = itertools.count(1)
        self._server: LoopbackServer | None = None

    # -- knobs -------------------------------------------------------------------

    def revoke_all(self) -> None:
        """Every access token issued so far is refused from now on."""
        with self._lock:
            for issued in self._access.values():
                issued.revoked = True

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = None) -> None:
        """The next ``count`` token calls answer ``status`` with an HTML error page."""
        headers = {"Content-Type": "text/html"}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        page = f"<html><head><title>{status} Service Unavailable</title></head></html>"
        with self._lock:
            self._failures.extend([Response(status, page.encode(), headers)] * count)

    def malformed_next(
        self,
        count: int = 1,
        body: bytes = b'{"access_token": "trunc',
        status: int = 200,
        content_type: str = "application/json",
    ) -> None:
        """The next ``count`` token calls answer with this (broken) body."""
        with self._lock:
            self._failures.extend([Response(status, body, {"Content-Type": content_type})] * count)

    def reset_counters(self) -> None:
        with self._lock:
            self.token_calls.clear()
            self.token_requests.clear()
            self.api_calls = 0
            self.api_log.clear()
            self.journal.clear()

    # -- server ------------------------------------------------------------------

    def start(self: _E) -> _E:
        if self._server is None:
            self._server = LoopbackServer(self.handle, ssl_context=self.server_ssl_context())
            self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self: _E) -> _E:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def server_ssl_context(self) -> Any:
        """None: plain http. The Mogoplus emulator serves TLS."""
        return None

    @property
    def server_url(self) -> str:
        """``scheme://127.0.0.1:port``."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return self._server.url

    @property
    def base_url(self) -> str:
        """What the provider's documentation calls the base URL."""
        return self.server_url + self.base_path

    @property
    def token_url(self) -> str:
        return self.base_url + self.token_path

    def api_url(self, path: str = "/resource") -> str:
        return self.base_url + self.api_prefix + path

    def endpoint_kwargs(self) -> dict[str, Any]:
        """How the matching auth class is told where the token endpoint is."""
        return {"token_url": self.token_url}

    def auth_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the matching auth class, pointed at this emulator."""
        kwargs: dict[str, Any] = self.endpoint_kwargs()
        kwargs.update(username=self.username, password=self.password)
        if self.client_id is not None:
            kwargs["client_id"] = self.client_id
        if self.client_secret is not None:
            kwargs["client_secret"] = self.client_secret
        return kwargs

    def handle(self, request: Request) -> Response:
        path = request.path
        if not path.startswith(self.base_path + "/"):
            return self.not_found()
        path = path[len(self.base_path) :]
        if path == self.token_path or (self.refresh_path and path == self.refresh_path):
            return self._token_endpoint(request)
        if path.startswith(self.api_prefix + "/"):
            return self._api(request, path[len(self.api_prefix) :])
        return self.not_found()

    # -- the wire format (what subclasses change) ----------------------------------

    def read_params(self, request: Request) -> dict[str, str] | Response:
        """The request's parameters under RFC 6749 names, or an error answer."""
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return self.error(400, "invalid_request", "expected a form body")
        params = request.form()
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            import base64
            from urllib.parse import unquote_plus

            # RFC 6749 §2.3.1: each part was form-encoded before the Base64.
            decoded = base64.b64decode(basic[6:]).decode("utf-8", "replace")
            client_id, _, secret = decoded.partition(":")
            params["client_id"], params["client_secret"] = (
                unquote_plus(client_id),
                unquote_plus(secret),
            )
        return params

    def token_body(
        self, access: str, refresh: str | None, lifetime: float | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"access_token": access, "token_type": "bearer"}
        if lifetime is not None:
            body["expires_in"] = lifetime
        if refresh is not None:
            body["refresh_token"] = refresh
        return body

    def error(self, status: int, code: str, description: str) -> Response:
        return Response.json(status, {"error": code, "error_description": description})

    def not_found(self) -> Response:
        return Response.json(404, {"error": "not_found", "error_description": "no such path"})

    def reject_client(self) -> Response:
        return self.error(401, "invalid_client", "client authentication failed")

    def reject_user(self) -> Response:
        return self.error(400, "invalid_grant", "wrong username or password")

    def reject_refresh_token(self) -> Response:
        return self.error(400, "invalid_grant", "refresh token is invalid")

    def reject_grant_type(self, grant: str) -> Response:
        return self.error(400, "unsupported_grant_type", f"grant type {grant!r}")

    def check_request(self, request: Request, params: dict[str, str]) -> Response | None:
        """A provider's extra demands on a token request (a client certificate…)."""
        return None

    def check_client(self, params: dict[str, str]) -> Response | None:
        """None when the client authenticates (or none is configured)."""
        if self.client_id is None:
            return None
        if params.get("client_id") != self.client_id or (
            self.client_secret is not None and params.get("client_secret") != self.client_secret
        ):
            return self.reject_client()
        return None

    def grants(self) -> tuple[str, ...]:
        return ("password", "client_credentials", "refresh_token")

    def new_access_token(self) -> str:
        return f"at-{next(self._serial)}-{secrets.token_hex(12)}"

    # -- token endpoint ----------------------------------------------------------

    def _token_endpoint(self, request: Request) -> Response:
        response = self._token_answer(request)
        issued = None
        if response.status == 200:
            try:
                issued = json.loads(response.body).get("access_token")
            except (ValueError, AttributeError, RecursionError):
                issued = None
        with self._lock:
            self.journal.append(JournalEntry("token", request, response.status, issued))
        return response

    def _token_answer(self, request: Request) -> Response:
        if request.method != "POST":
            return self.error(405, "invalid_request", "use POST")
        params = self.read_params(request)
        grant = params.get("grant_type", "") if isinstance(params, dict) else "invalid"
        with self._lock:
            self.token_requests.append(request)
            self.token_calls[grant or "missing"] += 1
            failure = self._failures.pop(0) if self._failures else None
        if self.token_delay:
            time.sleep(self.token_delay)
        if failure is not None:
            return failure
        if isinstance(params, Response):
            return params
        demand = self.check_request(request, params)
        if demand is not None:
            return demand
        if grant not in self.grants():
            return self.reject_grant_type(grant)
        client_error = self.check_client(params)
        if client_error is not None:
            return client_error
        if grant == "password":
            if params.get("username") != self.username or params.get("password") != self.password:
                return self.reject_user()
        elif grant == "refresh_token":
            with self._lock:
                deadline = self._refresh.get(params.get("refresh_token", ""))
            expired = deadline is None or (deadline is not True and time.monotonic() > deadline)
            if self.reject_refresh or expired:
                return self.reject_refresh_token()
        return self.issue(grant)

    def refresh_lifetime(self) -> float | None:
        """Seconds a refresh token lives (None: until revoked)."""
        return None

    def new_refresh_token(self) -> str:
        return f"rt-{secrets.token_hex(12)}"

    def issue(self, grant: str) -> Response:
        access = self.new_access_token()
        refresh = None
        if self.issue_refresh_tokens and grant != "client_credentials":
            refresh = self.new_refresh_token()
        lifetime = self.token_lifetime
        refresh_lifetime = self.refresh_lifetime()
        with self._lock:
            now = time.monotonic()
            self._access[access] = _Issued(now + lifetime if lifetime is not None else None)
            if refresh is not None:
                self._refresh[refresh] = (
                    now + refresh_lifetime if refresh_lifetime is not None else True
                )
        return self.token_response(self.token_body(access, refresh, lifetime))

    def token_response(self, body: dict[str, Any]) -> Response:
        return Response.json(200, body)

    # -- protected resource ------------------------------------------------------

    def token_valid(self, access: str) -> bool:
        with self._lock:
            issued = self._access.get(access)
        if issued is None or issued.revoked:
            return False
        return issued.expires is None or time.monotonic() < issued.expires

    def _api(self, request: Request, path: str) -> Response:
        header = request.headers.get("authorization")
        scheme, _, access = (header or "").partition(" ")
        ok = scheme == "Bearer" and self.token_valid(access)
        if path == "/deny":
            ok = False  # refuses every token: a replay that fails again
        if path == "/redirect" and ok:
            target = request.args().get("to", "/")
            response = Response(302, b"", {"Location": target})
        elif ok:
            response = Response.json(
                200,
                {
                    "ok": True,
                    "path": request.path,
                    "body_sha256": hashlib.sha256(request.body).hexdigest(),
                    "body_length": len(request.body),
                },
            )
        else:
            response = Response(
                401,
                json.dumps({"error": "invalid_token"}).encode(),
                {
                    "WWW-Authenticate": 'Bearer error="invalid_token"',
                    "Content-Type": "application/json",
                    "Set-Cookie": "seen401=yes; Path=/",
                },
            )
        with self._lock:
            self.api_calls += 1
            self.journal.append(JournalEntry("api", request, response.status))
            self.api_log.append(
                ApiHit(
                    request.method,
                    request.path,
                    header,
                    hashlib.sha256(request.body).hexdigest(),
                    response.status,
                    request.headers.get("cookie"),
                )
            )
        return response
