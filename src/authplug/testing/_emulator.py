"""A token endpoint and a protected resource that behave like a real provider.

:class:`OAuth2Emulator` speaks RFC 6749 (form body, ``error``/``error_description``
errors). Provider emulators subclass it and change only what their provider does
differently: where the parameters are read from, what the answer looks like, how
errors read. Every knob a test needs is a method or attribute (``token_lifetime``,
``revoke_all()``, ``reject_refresh``, ``fail_next()``, ``malformed_next()``), and so is
every counter (``token_calls``, ``api_calls``, ``api_log``, ``journal``): see the class.
The API answers ``/api/deny`` with 401 whatever the token, and ``/api/redirect?to=URL``
with a redirect.

This module is the authorization server (token and revocation endpoints, the wire
format subclasses change); :class:`OAuth2Emulator` combines it with the roles kept apart:
the server lifecycle (``_lifecycle``), the discovery documents (``_metadata``), fault
injection (``_faults``), the resource server (``_api``), the logins of people
(``_logins``: authorization code with PKCE, device grant), the grants that make
credentials from credentials (``_exchange_grants``: token exchange, JWT bearer), and the
kit's verifiers (``_dpop``, ``_assertion``, ``_trusted_jwt``). Every expiry is read on
``clock`` (a :class:`FakeClock` moves it by hand).
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from .._clock import Clock, SystemClock
from ._api import ApiHit, JournalEntry, ResourceServer, _Issued
from ._assertion import AssertionVerifier
from ._dpop import DPoPVerifier
from ._exchange_grants import EXCHANGE_GRANT, JWT_BEARER_GRANT, CredentialGrants
from ._faults import FaultInjection
from ._lifecycle import ServerLifecycle
from ._logins import CODE_GRANT, DEVICE_GRANT, PersonLogins
from ._metadata import ServerMetadata
from ._server import LoopbackServer, Request, Response

__all__ = ["ApiHit", "JournalEntry", "OAuth2Emulator"]


class OAuth2Emulator(
    ServerLifecycle, ServerMetadata, FaultInjection, ResourceServer, PersonLogins, CredentialGrants
):
    """An RFC 6749 token endpoint (password, client credentials, refresh, the logins of
    people: authorization code with PKCE, device code; token exchange, JWT bearer) and an
    API.

    A context manager: entering starts it on a free loopback port, leaving stops it.
    The API, any path under :meth:`api_url`, accepts the tokens issued while they are
    valid and not revoked, and answers JSON.

    Args:
        username: the user the password grant accepts.
        password: that user's password.
        client_id: the client it accepts (None: any client, without authentication).
        client_secret: that client's secret (None: the client id alone is checked).
        token_lifetime: seconds each new access token lives (None: no expiry given).
        issue_refresh_tokens: grants other than client credentials return a refresh
            token.
        token_delay: seconds each token call waits before it is answered.
        redirect_uris: the redirect URIs registered for the authorization code; a
            loopback ``http`` one without a port matches any port (RFC 8252 §7.3).
        device_interval: the seconds between polls a device authorization asks for.
        device_expires_in: the seconds a device code lives.
        clock: where every expiry is read (a :class:`FakeClock`; default: the real one).
        trusted_issuers: the issuers whose JWTs are accepted as JWT bearer assertions
            and as exchanged tokens, each ``iss`` with its public keys (a JWKS or a JWK).

    Each argument is kept in the attribute of its name (``token_lifetime`` may be changed
    at any time).

    Attributes:
        reject_refresh: when True, refresh grants are refused.
        token_calls: a Counter of token calls by grant type (``.total()`` for all).
        token_requests: every token request received (:class:`Request`), in order.
        api_calls: how many API requests arrived.
        api_log: what each API request carried (:class:`ApiHit`), in order.
        journal: every request answered, token endpoint and API, in arrival order;
            each entry has ``kind`` (``"token"`` or ``"api"``), ``request``,
            ``status`` and ``issued`` (the access token a token call issued).
        metadata_calls: how many times the metadata document was asked for.
        authorize_requests: how many requests the authorization endpoint received.
        device_authorizations: how many requests the device authorization endpoint
            received.
        decisions: each person's decision, as (grant type, user name, approved).
    """

    #: The provider's lower-case name.
    name = "oauth2"
    #: The part of the base URL after the host (Login form: ``"/api"``).
    base_path = ""
    #: The token endpoint's path under the base URL.
    token_path = "/token"
    #: A separate refresh endpoint, when the provider has one.
    refresh_path: str | None = None
    #: The API's path under the base URL.
    api_prefix = "/api"
    #: The revocation endpoint's path under the base URL.
    revocation_path = "/revoke"

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
        redirect_uris: Sequence[str] = ("http://127.0.0.1/callback",),
        device_interval: float = 5,
        device_expires_in: float = 600,
        clock: Clock | None = None,
        trusted_issuers: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.username = username
        self.password = password
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.issue_refresh_tokens = issue_refresh_tokens
        self.token_delay = token_delay
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._init_logins(redirect_uris, device_interval, device_expires_in)
        self._init_exchange(trusted_issuers or {})
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
        self._init_metadata()
        #: The RFC 7009 revocations received, as (token_type_hint, whether the token
        #: was known).
        self.revocations: list[tuple[str | None, bool]] = []
        #: Served by the revocation endpoint in place of its work when set (a failure).
        self.revocation_answer: Response | None = None
        #: When True (DPoP, RFC 9449), a token call with a valid proof gets a token bound
        #: to its key (``token_type: DPoP``), which the API accepts only with a valid
        #: proof by that key; ``dpop_verifier.nonce`` set asks for nonces. When False,
        #: proofs are ignored and tokens are Bearer (a server without DPoP).
        self.dpop = False
        #: Checks the DPoP proofs; set its ``nonce`` to a string to require nonces.
        self.dpop_verifier = DPoPVerifier()
        #: Checks the API's DPoP proofs when set, with nonces of its own (a token endpoint
        #: and an API on one origin, each with its nonce); None: :attr:`dpop_verifier`.
        self.api_dpop_verifier: DPoPVerifier | None = None
        #: The client's public key (a JWK) for ``private_key_jwt``; see check_assertion.
        self.client_key: dict[str, Any] | None = None
        self._assertion_verifier = AssertionVerifier()

    def _revocation_endpoint(self, request: Request) -> Response:
        """RFC 7009: the client authenticates as at the token endpoint; an unknown token
        is no error (§2.2)."""
        if request.method != "POST":
            return self.error(405, "invalid_request", "use POST")
        if self.revocation_answer is not None:
            return self.revocation_answer
        params = OAuth2Emulator.read_params(self, request)
        if isinstance(params, Response):
            return params
        refused = self.check_client(params)
        if refused is not None:
            return refused
        token = params.get("token", "")
        with self._lock:
            known = token in self._access or token in self._refresh
            if token in self._access:
                self._access[token].revoked = True
            self._refresh.pop(token, None)
            self.revocations.append((params.get("token_type_hint"), known))
        return Response(200, b"", {"Content-Type": "application/json"})

    def handle(self, request: Request) -> Response:
        """Answer one request: the server's app (see :class:`LoopbackServer`).

        Serves the metadata documents, the revocation endpoint, the token endpoint
        (and refresh endpoint) and the API; anything else is :meth:`not_found`.
        """
        path = request.path
        metadata = self._metadata_route(request)
        if metadata is not None:
            return metadata
        if path == self.base_path + self.revocation_path:
            return self._revocation_endpoint(request)
        if not path.startswith(self.base_path + "/"):
            return self.not_found()
        path = path[len(self.base_path) :]
        login = self._login_route(request, path)
        if login is not None:
            return login
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
        """The JSON answer of a successful token call, in the provider's shape.

        Args:
            access: the new access token.
            refresh: the new refresh token, or None.
            lifetime: the access token's lifetime in seconds, or None.

        Returns:
            The answer's fields.
        """
        body: dict[str, Any] = {"access_token": access, "token_type": "bearer"}
        if lifetime is not None:
            body["expires_in"] = lifetime
        if refresh is not None:
            body["refresh_token"] = refresh
        return body

    def error(self, status: int, code: str, description: str) -> Response:
        """An error answer in the provider's shape (RFC 6749 §5.2 here).

        Args:
            status: the HTTP status.
            code: the error code (``"invalid_grant"``).
            description: the words.

        Returns:
            The response.
        """
        return Response.json(status, {"error": code, "error_description": description})

    def not_found(self) -> Response:
        """The answer to an unknown path."""
        return Response.json(404, {"error": "not_found", "error_description": "no such path"})

    def reject_client(self) -> Response:
        """The answer to a client that failed to authenticate."""
        return self.error(401, "invalid_client", "client authentication failed")

    def reject_user(self) -> Response:
        """The answer to a wrong user name or password."""
        return self.error(400, "invalid_grant", "wrong username or password")

    def reject_refresh_token(self) -> Response:
        """The answer to an unknown, expired or refused refresh token."""
        return self.error(400, "invalid_grant", "refresh token is invalid")

    def reject_grant_type(self, grant: str) -> Response:
        """The answer to a grant type :meth:`grants` does not list."""
        return self.error(400, "unsupported_grant_type", f"grant type {grant!r}")

    def check_request(self, request: Request, params: dict[str, str]) -> Response | None:
        """A provider's extra demands on a token request (a client certificate…)."""
        return None

    def check_client(self, params: dict[str, str]) -> Response | None:
        """None when the client authenticates (or none is configured)."""
        if "client_assertion" in params:
            return self.check_assertion(params)
        if self.client_id is None:
            return None
        if params.get("client_id") != self.client_id or (
            self.client_secret is not None and params.get("client_secret") != self.client_secret
        ):
            return self.reject_client()
        return None

    def check_assertion(self, params: dict[str, str]) -> Response | None:
        """RFC 7523 client authentication, checked as a server must: the signature (by
        :attr:`client_key`, or HMAC with the client secret), ``iss`` = ``sub`` = the
        client id, ``aud`` (this token, revocation or issuer URL), ``exp`` in the future
        and at most 10 minutes away, and a ``jti`` never seen before. Needs joserfc."""
        assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        if params.get("client_assertion_type") != assertion_type:
            return self.error(400, "invalid_request", "unknown client_assertion_type")
        valid = self._assertion_verifier.check(
            params["client_assertion"],
            client_id=self.client_id,
            client_secret=self.client_secret,
            client_key=self.client_key,
            audiences={self.token_url, self.revocation_url, self.issuer},
        )
        # checked after the verifier, which spends the jti of any validly signed assertion
        valid = valid and params.get("client_id", self.client_id) == self.client_id
        return None if valid else self.reject_client()

    def grants(self) -> tuple[str, ...]:
        """The grant types the token endpoint accepts."""
        return (
            *("password", "client_credentials", "refresh_token", CODE_GRANT, DEVICE_GRANT),
            *(EXCHANGE_GRANT, JWT_BEARER_GRANT),
        )

    def new_access_token(self) -> str:
        """A new access token, in the provider's style."""
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
        client_error = self.check_grant_client(grant, params)
        if client_error is not None:
            return client_error
        if grant == "password":
            if params.get("username") != self.username or params.get("password") != self.password:
                return self.reject_user()
        elif grant == "refresh_token":
            with self._lock:
                deadline = self._refresh.get(params.get("refresh_token", ""))
            now = self.clock.monotonic()
            expired = deadline is None or (deadline is not True and now > deadline)
            if self.reject_refresh or expired:
                return self.reject_refresh_token()
        jkt = None
        if self.dpop and "dpop" in request.headers:
            check = self.dpop_verifier.check(
                request.headers["dpop"], "POST", self.server_url + request.path
            )
            if check.error is not None:
                return check.refusal(400, self.dpop_verifier.nonce, token_endpoint=True)
            jkt = check.jkt
        if grant in (CODE_GRANT, DEVICE_GRANT):
            return self._login_grant(grant, params, jkt)
        if grant in (EXCHANGE_GRANT, JWT_BEARER_GRANT):
            return self._credential_grant(grant, params, request, jkt)
        return self.issue(grant, jkt)

    def refresh_lifetime(self) -> float | None:
        """Seconds a refresh token lives (None: until revoked)."""
        return None

    def new_refresh_token(self) -> str:
        """A new refresh token, in the provider's style."""
        return f"rt-{secrets.token_hex(12)}"

    def issue(
        self, grant: str, jkt: str | None = None, record: list[str] | None = None
    ) -> Response:
        """Issue a token (and a refresh token, unless for client credentials).

        Args:
            grant: the grant type of the call.
            jkt: the thumbprint of the DPoP key to bind the token to, or None.
            record: where to append the tokens issued (to revoke them later), or None.

        Returns:
            The successful answer (:meth:`token_body` through :meth:`token_response`).
        """
        access = self.new_access_token()
        refresh = None
        if self.issue_refresh_tokens and grant != "client_credentials":
            refresh = self.new_refresh_token()
        lifetime = self.token_lifetime
        refresh_lifetime = self.refresh_lifetime()
        if record is not None:
            record.extend(t for t in (access, refresh) if t is not None)
        with self._lock:
            now = self.clock.monotonic()
            expires = now + lifetime if lifetime is not None else None
            # whom the token is for: the client itself, or the person
            sub = self.client_id if grant == "client_credentials" else self.username
            self._access[access] = _Issued(expires, jkt=jkt, sub=sub)
            if refresh is not None:
                self._refresh[refresh] = (
                    now + refresh_lifetime if refresh_lifetime is not None else True
                )
        body = self.token_body(access, refresh, lifetime)
        if jkt is not None:
            body["token_type"] = "DPoP"
        return self.token_response(body)

    def token_response(self, body: dict[str, Any]) -> Response:
        """The response carrying a successful answer's fields (JSON here)."""
        return Response.json(200, body)
