"""The emulator's logins of people: the authorization code with PKCE, and the device grant.

RFC 6749 §4.1, RFC 7636 (S256 only: ``plain`` is refused), RFC 8252 (a registered
loopback redirect URI matches any port) and RFC 8628, checked as a strict server does.
The emulator renders no login form: a valid authorization request waits for a person,
and the person's decision arrives as a browser would send it, by a form post, which
:class:`~authplug.testing.HeadlessPerson` sends.

- ``GET {authorize_path}``: an unknown client or an unregistered redirect URI gets a 400
  page, never a redirect; other errors redirect with ``error=`` and ``state``. A valid
  request answers a small page (200) holding a form: the request's id (``request``) and
  the buttons ``decision=approve`` / ``decision=deny``, posted to
  ``{authorize_path}/decision``, which answers the redirect (302) to the redirect URI
  with ``code`` and ``state``, or ``error=access_denied`` and ``state``.
- ``POST {device_authorization_path}``: RFC 8628 §3.2's answer. The person enters the
  user code at ``{verification_path}``: a form posting ``user_code`` and ``decision``.
- The token endpoint's two grants. A code is single use (any presentation spends it; a
  second one is ``invalid_grant`` and revokes the tokens the first gave, RFC 6749
  §4.1.2), lives :attr:`code_lifetime` seconds on the emulator's clock and is bound to
  the client, the redirect URI (equal at the token call) and the PKCE challenge. A device
  code answers ``slow_down`` to a poll sooner than its interval (which then grows by
  5 s), ``expired_token`` after its lifetime, ``authorization_pending`` until the person
  decides, ``access_denied`` after a denial, and tokens once.
"""

from __future__ import annotations

import base64
import hashlib
import html
import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from ._server import Response

if TYPE_CHECKING:
    import threading
    from collections.abc import Sequence

    from .._clock import Clock
    from ._api import _Issued
    from ._server import Request

__all__ = ["CODE_GRANT", "DEVICE_GRANT", "PersonLogins", "is_loopback"]

#: The grant types of the two logins, as the token endpoint reads them.
CODE_GRANT = "authorization_code"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# RFC 7636 §4.1: 43 to 128 unreserved characters; an S256 challenge is 43 (§4.2).
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")
# RFC 8628 §6.1: consonants only, so that no word is spelled and none is mistyped.
_USER_CODE_CHARS = "BCDFGHJKLMNPQRSTVWXZ"
# Seconds an authorization request waits for a person's decision.
_REQUEST_LIFETIME = 600.0


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a URL's host name) is this machine: ``localhost`` or a loopback IP."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def s256(verifier: str) -> str:
    """The RFC 7636 S256 challenge of ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(slots=True)
class _Waiting:
    """An authorization request waiting for a person."""

    client_id: str
    redirect_uri: str
    state: str | None
    scope: str
    challenge: str
    expires: float


@dataclass(slots=True)
class _Code:
    """An authorization code's bindings and fate (the code itself is the dict's key)."""

    client_id: str
    redirect_uri: str
    challenge: str
    expires: float
    used: bool = False
    reused: bool = False
    issued: list[str] = field(default_factory=list, repr=False)  # its tokens


@dataclass(slots=True)
class _Device:
    """A device authorization (the device code is the dict's key)."""

    client_id: str
    user_code: str
    expires: float
    interval: float
    last_poll: float | None = None
    approved: bool | None = None  # None: the person has not decided
    used: bool = False


def _page(status: int, title: str, body: str = "") -> Response:
    """A small HTML page; ``body`` is HTML already, ``title`` is text."""
    text = f"<!doctype html><html><head><title>{html.escape(title)}</title></head>"
    return Response.text(status, f"{text}<body>{body}</body></html>", "text/html; charset=utf-8")


def _redirect(uri: str, params: dict[str, str | None]) -> Response:
    """A 302 to ``uri`` with ``params`` (None values left out) added to its query."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    location = uri + ("&" if "?" in uri else "?") + query
    return Response(302, b"", {"Location": location, "Cache-Control": "no-store"})


def _buttons() -> str:
    return (
        '<button name="decision" value="approve">Approve</button>'
        '<button name="decision" value="deny">Deny</button>'
    )


class PersonLogins:
    """The authorization, device authorization and verification endpoints, and the two
    grants they lead to at the token endpoint."""

    #: The authorization endpoint's path under the base URL.
    authorize_path = "/authorize"
    #: The device authorization endpoint's path under the base URL.
    device_authorization_path = "/device_authorization"
    #: Where the person enters a user code (``verification_uri``), under the base URL.
    verification_path = "/device"
    #: Seconds an authorization code lives, on the emulator's clock.
    code_lifetime = 60.0

    if TYPE_CHECKING:
        _lock: threading.Lock
        _access: dict[str, _Issued]
        _refresh: dict[str, float | bool]
        clock: Clock
        client_id: str | None
        username: str
        base_path: str

        @property
        def base_url(self) -> str: ...
        def error(self, status: int, code: str, description: str) -> Response: ...
        def read_params(self, request: Request) -> dict[str, str] | Response: ...
        def check_client(self, params: dict[str, str]) -> Response | None: ...
        def grants(self) -> tuple[str, ...]: ...
        def issue(
            self, grant: str, jkt: str | None = None, record: list[str] | None = None
        ) -> Response: ...

    def _init_logins(
        self, redirect_uris: Sequence[str], device_interval: float, device_expires_in: float
    ) -> None:
        self.redirect_uris = list(redirect_uris)
        self.device_interval = device_interval
        self.device_expires_in = device_expires_in
        self.authorize_requests = 0
        self.device_authorizations = 0
        self.decisions: list[tuple[str, str, bool]] = []
        self._waiting: dict[str, _Waiting] = {}
        self._codes: dict[str, _Code] = {}
        self._devices: dict[str, _Device] = {}
        self._user_codes: dict[str, str] = {}  # user code, without its dash -> device code

    @property
    def authorization_url(self) -> str:
        """The authorization endpoint's URL."""
        return self.base_url + self.authorize_path

    @property
    def device_authorization_url(self) -> str:
        """The device authorization endpoint's URL (RFC 8628)."""
        return self.base_url + self.device_authorization_path

    @property
    def verification_url(self) -> str:
        """Where the person enters a user code (the ``verification_uri``)."""
        return self.base_url + self.verification_path

    def login_metadata(self) -> dict[str, Any]:
        """The metadata fields of the logins this emulator's grants include."""
        grants = self.grants()
        fields: dict[str, Any] = {}
        if CODE_GRANT in grants:
            fields["authorization_endpoint"] = self.authorization_url
            fields["response_types_supported"] = ["code"]
            fields["code_challenge_methods_supported"] = ["S256"]
        if DEVICE_GRANT in grants:
            fields["device_authorization_endpoint"] = self.device_authorization_url
        return fields

    def redirect_registered(self, uri: str) -> bool:
        """Whether ``uri`` is one of ``redirect_uris``: equal, or a loopback ``http``
        one registered without a port, given with any port (RFC 8252 §7.3)."""
        try:
            given = urlsplit(uri)
            given.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError:
            return False
        if given.fragment or "#" in uri:
            return False
        for registered in self.redirect_uris:
            if uri == registered:
                return True
            entry = urlsplit(registered)
            if entry.scheme == "http" and is_loopback(entry.hostname) and entry.port is None:
                same = (given.scheme, given.hostname, given.path, given.query)
                if same == (entry.scheme, entry.hostname, entry.path, entry.query):
                    return True
        return False

    def _login_route(self, request: Request, path: str) -> Response | None:
        """The answer of a login endpoint at ``path`` (under the base path), or None."""
        grants = self.grants()
        if CODE_GRANT in grants and path == self.authorize_path:
            return self._authorize(request)
        if CODE_GRANT in grants and path == self.authorize_path + "/decision":
            return self._authorize_decision(request)
        if DEVICE_GRANT in grants and path == self.device_authorization_path:
            return self._device_authorization(request)
        if DEVICE_GRANT in grants and path == self.verification_path:
            return self._verification(request)
        return None

    # -- the authorization code ---------------------------------------------------

    def _authorize(self, request: Request) -> Response:
        with self._lock:
            self.authorize_requests += 1
        if request.method not in ("GET", "POST"):
            return _page(405, "use GET")
        args = request.args() if request.method == "GET" else request.form()
        client_id, redirect_uri = args.get("client_id", ""), args.get("redirect_uri", "")
        if not client_id or (self.client_id is not None and client_id != self.client_id):
            return _page(400, "unknown client", "<p>The client_id is not registered here.</p>")
        if not self.redirect_registered(redirect_uri):
            return _page(400, "redirect_uri not registered", "<p>No redirect is made.</p>")
        state = args.get("state")
        # RFC 6749 §3.1: no parameter may be sent twice.
        repeated = request.method == "GET" and any(len(v) > 1 for v in request.query.values())
        refusal = None
        if repeated:
            refusal = ("invalid_request", "a parameter was given more than once")
        elif args.get("response_type") != "code":
            refusal = ("unsupported_response_type", "only response_type=code is supported")
        elif args.get("code_challenge_method") != "S256":
            refusal = ("invalid_request", "PKCE is required, with code_challenge_method=S256")
        elif not _CHALLENGE.fullmatch(args.get("code_challenge", "")):
            refusal = ("invalid_request", "code_challenge is not an S256 challenge")
        if refusal is not None:
            error, why = refusal
            return _redirect(
                redirect_uri, {"error": error, "error_description": why, "state": state}
            )
        scope = args.get("scope", "")
        waiting = _Waiting(
            client_id,
            redirect_uri,
            state,
            scope,
            args["code_challenge"],
            self.clock.monotonic() + _REQUEST_LIFETIME,
        )
        request_id = secrets.token_urlsafe(16)
        with self._lock:
            self._waiting[request_id] = waiting
        action = html.escape(self.base_path + self.authorize_path + "/decision")
        body = (
            f"<p>{html.escape(client_id)} asks for: {html.escape(scope)}</p>"
            f'<form method="post" action="{action}">'
            f'<input type="hidden" name="request" value="{request_id}">'
            f'<input name="username" value="{html.escape(self.username)}">'
            f"{_buttons()}</form>"
        )
        return _page(200, "authplug emulator: sign in", body)

    def _authorize_decision(self, request: Request) -> Response:
        if request.method != "POST":
            return _page(405, "use POST")
        form = request.form()
        decision = form.get("decision")
        if decision not in ("approve", "deny"):
            return _page(400, "decision must be approve or deny")
        with self._lock:
            waiting = self._waiting.pop(form.get("request", ""), None)
        if waiting is None or self.clock.monotonic() > waiting.expires:
            return _page(400, "no such request", "<p>Decided already, or expired.</p>")
        username = form.get("username") or self.username
        with self._lock:
            self.decisions.append((CODE_GRANT, username, decision == "approve"))
        if decision == "deny":
            params: dict[str, str | None] = {
                "error": "access_denied",
                "error_description": "the person denied the request",
            }
        else:
            code = secrets.token_urlsafe(32)
            expires = self.clock.monotonic() + self.code_lifetime
            bound = _Code(waiting.client_id, waiting.redirect_uri, waiting.challenge, expires)
            with self._lock:
                self._codes[code] = bound
            params = {"code": code}
        return _redirect(waiting.redirect_uri, {**params, "state": waiting.state})

    def _revoke_issued(self, tokens: list[str]) -> None:
        """Revoke these access and refresh tokens; the caller holds the lock."""
        for token in tokens:
            if token in self._access:
                self._access[token].revoked = True
            self._refresh.pop(token, None)

    def _code_grant(self, params: dict[str, str], jkt: str | None) -> Response:
        with self._lock:
            found = self._codes.get(params.get("code", ""))
            second = found is not None and found.used
            if found is not None and second:
                found.reused = True
                self._revoke_issued(found.issued)
            elif found is not None:
                found.used = True
        if found is None:
            return self.error(400, "invalid_grant", "unknown authorization code")
        if second:
            return self.error(400, "invalid_grant", "authorization code used already")
        if self.clock.monotonic() > found.expires:
            return self.error(400, "invalid_grant", "authorization code expired")
        if (params.get("client_id") or self.client_id) != found.client_id:
            return self.error(400, "invalid_grant", "the code was issued to another client")
        if params.get("redirect_uri") != found.redirect_uri:
            return self.error(400, "invalid_grant", "redirect_uri differs from the request's")
        verifier = params.get("code_verifier", "")
        if not _VERIFIER.fullmatch(verifier) or s256(verifier) != found.challenge:
            return self.error(400, "invalid_grant", "code_verifier does not match")
        issued: list[str] = []
        answer = self.issue(CODE_GRANT, jkt, record=issued)
        with self._lock:
            found.issued.extend(issued)
            if found.reused:  # a second use came while these were made
                self._revoke_issued(issued)
        return answer

    # -- the device grant -----------------------------------------------------------

    def _device_authorization(self, request: Request) -> Response:
        with self._lock:
            self.device_authorizations += 1
        if request.method != "POST":
            return self.error(405, "invalid_request", "use POST")
        params = self.read_params(request)
        if isinstance(params, Response):
            return params
        refused = self.check_client(params)
        if refused is not None:
            return refused
        device_code = secrets.token_urlsafe(32)
        letters = "".join(secrets.choice(_USER_CODE_CHARS) for _ in range(8))
        user_code = f"{letters[:4]}-{letters[4:]}"
        client_id = params.get("client_id") or self.client_id or ""
        expires = self.clock.monotonic() + self.device_expires_in
        with self._lock:
            self._devices[device_code] = _Device(
                client_id, user_code, expires, self.device_interval
            )
            self._user_codes[letters] = device_code
        return Response.json(
            200,
            {
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": self.verification_url,
                "verification_uri_complete": self.verification_url + "?user_code=" + user_code,
                "expires_in": self.device_expires_in,
                "interval": self.device_interval,
            },
        )

    def _verification(self, request: Request) -> Response:
        if request.method == "GET":
            given = html.escape(request.args().get("user_code", ""))
            body = (
                f'<form method="post" action="{html.escape(self.base_path)}'
                f'{self.verification_path}"><input name="user_code" value="{given}">'
                f"{_buttons()}</form>"
            )
            return _page(200, "authplug emulator: enter the code", body)
        form = request.form()
        decision = form.get("decision")
        if request.method != "POST" or decision not in ("approve", "deny"):
            return _page(400, "post user_code and decision=approve|deny")
        # RFC 8628 §6.1: case and dashes are the person's to get wrong.
        typed = re.sub(r"[\s-]", "", form.get("user_code", "")).upper()
        now = self.clock.monotonic()
        with self._lock:
            device = self._devices.get(self._user_codes.get(typed, ""))
            known = device is not None and device.approved is None and now < device.expires
            if device is not None and known:
                device.approved = decision == "approve"
                username = form.get("username") or self.username
                self.decisions.append((DEVICE_GRANT, username, device.approved))
        if not known:
            return _page(400, "unknown or expired code")
        return _page(200, "device approved" if decision == "approve" else "device denied")

    def _device_grant(self, params: dict[str, str], jkt: str | None) -> Response:
        now = self.clock.monotonic()
        refusal = None
        with self._lock:
            device = self._devices.get(params.get("device_code", ""))
            if device is None or device.used:
                refusal = ("invalid_grant", "unknown device code")
            elif (params.get("client_id") or self.client_id) != device.client_id:
                refusal = ("invalid_grant", "the device code was issued to another client")
            elif now >= device.expires:
                refusal = ("expired_token", "the device code expired")
            elif device.last_poll is not None and now - device.last_poll < device.interval:
                device.last_poll = now
                device.interval += 5  # RFC 8628 §3.5
                refusal = ("slow_down", f"poll at most every {device.interval:g} s")
            else:
                device.last_poll = now
                if device.approved is None:
                    refusal = ("authorization_pending", "the person has not decided yet")
                elif not device.approved:
                    refusal = ("access_denied", "the person denied the request")
                else:
                    device.used = True
        if refusal is not None:
            return self.error(400, *refusal)
        return self.issue(DEVICE_GRANT, jkt)

    def _login_grant(self, grant: str, params: dict[str, str], jkt: str | None) -> Response:
        """The token endpoint's answer to one of the two login grants."""
        if grant == CODE_GRANT:
            return self._code_grant(params, jkt)
        return self._device_grant(params, jkt)
