"""The emulator's grants that make credentials from other credentials: token exchange
(RFC 8693) and the JWT bearer grant (RFC 7523 §2.1), checked as a strict server does.

- **Token exchange**: ``subject_token`` and ``subject_token_type`` are required, and
  ``actor_token_type`` with an ``actor_token`` (and only then). A subject or actor token
  is an access token this emulator issued and still accepts (type ``access_token``), or a
  JWT signed by a trusted issuer (type ``jwt``, ``id_token`` or ``access_token``); any
  other is ``invalid_request`` (§2.2.2). ``audience`` and ``resource`` may be repeated; a
  ``resource`` is an absolute URI without a fragment (RFC 8707), and a target outside
  :attr:`allowed_targets` is ``invalid_target``. An access token is issued, or a JWT
  signed by the emulator's key (:attr:`jwks`) for ``requested_token_type`` ``...:jwt``
  (``token_type`` ``N_A``); another type is ``invalid_request``. A ``scope`` wider than
  the subject token's (one issued here) is ``invalid_scope``. The answer carries
  ``issued_token_type`` (§2.2.1) and ``scope`` when it differs from the one asked for,
  and the new token never outlives its subject token.
- **JWT bearer**: the ``assertion`` is checked per RFC 7523 §3 by
  :class:`~._trusted_jwt.TrustedIssuers` (trusted ``iss`` and key, ``sub``, ``aud``
  naming the token URL or the issuer, ``exp``, ``nbf``, ``iat``, ``jti`` replay); each
  failure is ``invalid_grant`` with a description. Client authentication is optional
  (§2.1): credentials are checked only when sent.

No refresh token is issued by either grant: the client presents its credential again.
The tokens issued record their subject, actor, audiences and scope, which the API
answers (``sub``, ``act``, ``aud``, ``scope``).
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from ._api import _Issued
from ._server import Response
from ._trusted_jwt import JWTRefused, TrustedIssuers

if TYPE_CHECKING:
    import threading

    from .._clock import Clock
    from ._server import Request

__all__ = ["EXCHANGE_GRANT", "JWT_BEARER_GRANT", "TOKEN_TYPES", "CredentialGrants"]

#: The grant types of the two grants, as the token endpoint reads them.
EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_TYPE = "urn:ietf:params:oauth:token-type:"
#: RFC 8693 §3's token type identifiers, by short name.
TOKEN_TYPES = {name: _TYPE + name for name in ("access_token", "jwt", "id_token")}
# RFC 6749 §3.2: a parameter sent twice is invalid_request; RFC 8693 §2.1 and RFC 8707
# allow these two more than once.
_REPEATABLE = frozenset({"audience", "resource"})
_ISSUABLE = (TOKEN_TYPES["access_token"], TOKEN_TYPES["jwt"])


def _malformed_exchange(params: dict[str, str]) -> str | None:
    """Why a token exchange request is malformed (RFC 8693 §2.1), or None."""
    if not params.get("subject_token") or not params.get("subject_token_type"):
        return "subject_token and subject_token_type are required"
    if bool(params.get("actor_token")) != bool(params.get("actor_token_type")):
        return "actor_token_type is given with an actor_token, and only then"
    if params.get("requested_token_type", TOKEN_TYPES["access_token"]) not in _ISSUABLE:
        return "requested_token_type: only access tokens and JWTs are issued"
    return None


def _with_life_and_scope(
    body: dict[str, Any], lifetime: float | None, scope: str | None
) -> dict[str, Any]:
    """``body`` with ``expires_in`` and ``scope`` when there are some."""
    if lifetime is not None:
        body["expires_in"] = max(0, int(lifetime))
    if scope is not None:
        body["scope"] = scope
    return body


class CredentialGrants:
    """The token exchange and JWT bearer grants of the token endpoint."""

    if TYPE_CHECKING:
        _lock: threading.Lock
        _access: dict[str, _Issued]
        clock: Clock
        token_lifetime: float | None

        @property
        def token_url(self) -> str: ...
        @property
        def issuer(self) -> str: ...
        def error(self, status: int, code: str, description: str) -> Response: ...
        def check_client(self, params: dict[str, str]) -> Response | None: ...
        def new_access_token(self) -> str: ...
        def token_response(self, body: dict[str, Any]) -> Response: ...

    def _init_exchange(self, trusted_issuers: Mapping[str, Mapping[str, Any]]) -> None:
        #: The issuers whose JWTs are accepted as assertions and subject or actor tokens
        #: (``trusted_issuers.trust(iss, jwks)`` adds one).
        self.trusted_issuers = TrustedIssuers(trusted_issuers, self.clock)
        self._signing_key: Any = None  # made when the first JWT is issued
        #: When True, a token exchange needs no client authentication (a public client).
        self.exchange_public_clients = False
        #: When True (RFC 7523 §3), an assertion's ``jti`` is accepted once (until its
        #: ``exp``); False for a source that presents one JWT many times (a file).
        self.refuse_replayed_assertions = True
        #: The audiences and resources tokens may be issued for (None: any).
        self.allowed_targets: set[str] | None = None
        #: How many calls of the two grants named each ``audience`` value.
        self.exchanges_by_audience: Counter[str] = Counter()
        #: How many calls of the two grants named each ``resource`` value.
        self.exchanges_by_resource: Counter[str] = Counter()

    def check_grant_client(self, grant: str, params: dict[str, str]) -> Response | None:
        """The client check of a token call: optional for the JWT bearer grant (RFC 7523
        §2.1) and, with ``exchange_public_clients``, for token exchange, when the
        client sends no credentials; otherwise :meth:`check_client`."""
        optional = grant == JWT_BEARER_GRANT or (
            grant == EXCHANGE_GRANT and self.exchange_public_clients
        )
        sent = any(name in params for name in ("client_secret", "client_assertion"))
        if optional and not sent:
            return None
        return self.check_client(params)

    def _credential_grant(
        self, grant: str, params: dict[str, str], request: Request, jkt: str | None
    ) -> Response:
        """The token endpoint's answer to one of the two grants."""
        multi = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        audiences, resources = multi.get("audience", []), multi.get("resource", [])
        with self._lock:
            self.exchanges_by_audience.update(audiences)
            self.exchanges_by_resource.update(resources)
        repeated = sorted(k for k, v in multi.items() if len(v) > 1 and k not in _REPEATABLE)
        if repeated:
            return self.error(400, "invalid_request", f"{repeated[0]} was given more than once")
        refused = self._check_targets(audiences, resources)
        if refused is not None:
            return refused
        if grant == JWT_BEARER_GRANT:
            return self._jwt_bearer(params, audiences + resources, jkt)
        return self._exchange(params, audiences + resources, jkt)

    def _check_targets(self, audiences: list[str], resources: list[str]) -> Response | None:
        for resource in resources:
            parts = urlsplit(resource)
            if not (parts.scheme and parts.netloc) or "#" in resource:
                return self.error(
                    400, "invalid_target", "a resource is an absolute URI without a fragment"
                )
        allowed = self.allowed_targets
        unknown = [t for t in audiences + resources if allowed is not None and t not in allowed]
        if unknown or any(not a for a in audiences):
            return self.error(400, "invalid_target", "no token is issued for that target")
        return None

    def _jwt_bearer(self, params: dict[str, str], targets: list[str], jkt: str | None) -> Response:
        assertion = params.get("assertion")
        if not assertion:
            return self.error(400, "invalid_request", "the assertion parameter is required")
        try:
            verified = self.trusted_issuers.check_grant(
                assertion,
                {self.token_url, self.issuer},
                refuse_replay=self.refuse_replayed_assertions,
            )
        except JWTRefused as refusal:
            return self.error(400, "invalid_grant", str(refusal))
        remaining = verified.expires_at - self.clock.time()
        # RFC 7521 §4.1: the token may live longer than the assertion (no refresh token).
        lifetime = self.token_lifetime if self.token_lifetime is not None else remaining
        scope = params.get("scope")
        record = _Issued(None, jkt=jkt, sub=verified.subject, aud=tuple(targets), scope=scope)
        return self._issue_credential(record, lifetime, None)

    def _exchange(self, params: dict[str, str], targets: list[str], jkt: str | None) -> Response:
        why = _malformed_exchange(params)
        if why is not None:
            return self.error(400, "invalid_request", why)
        subject, subject_type = params["subject_token"], params["subject_token_type"]
        actor, actor_type = params.get("actor_token"), params.get("actor_token_type", "")
        found = self._presented(subject, subject_type)
        if isinstance(found, str):
            return self.error(400, "invalid_request", f"subject_token: {found}")
        acting = self._presented(actor, actor_type) if actor else None
        if isinstance(acting, str):
            return self.error(400, "invalid_request", f"actor_token: {acting}")
        (sub, remaining, subject_scope) = found
        asked = params.get("scope")
        granted = asked if asked is not None else subject_scope
        wider = set((asked or "").split()) - set((subject_scope or asked or "").split())
        if wider:  # only a token issued here has a scope to stay within
            return self.error(400, "invalid_scope", "wider than the subject token's scope")
        lifetime = self.token_lifetime
        if remaining is not None:  # never outlive the subject token
            lifetime = remaining if lifetime is None else min(lifetime, remaining)
        act = acting[0] if acting is not None else None
        record = _Issued(None, jkt=jkt, sub=sub, aud=tuple(targets), scope=granted, act=act)
        body_scope = granted if granted != asked else None
        if params.get("requested_token_type") == TOKEN_TYPES["jwt"]:
            return self._issue_jwt(record, lifetime, body_scope)
        return self._issue_credential(record, lifetime, body_scope)

    def _presented(
        self, token: str, token_type: str
    ) -> tuple[str | None, float | None, str | None] | str:
        """A subject or actor token's (subject, seconds left, scope), or why it is refused."""
        if token_type not in TOKEN_TYPES.values():
            return "unsupported token type"
        if token_type == TOKEN_TYPES["access_token"]:
            with self._lock:
                issued = self._access.get(token)
            if issued is not None:
                now = self.clock.monotonic()
                if issued.revoked or (issued.expires is not None and now >= issued.expires):
                    return "the access token expired or was revoked"
                left = issued.expires - now if issued.expires is not None else None
                return (issued.sub, left, issued.scope)
            if token.count(".") != 2:  # not a JWT either
                return "not an access token issued here"
        try:
            verified = self.trusted_issuers.verify(token)
        except JWTRefused as refusal:
            return str(refusal)
        return (verified.subject, verified.expires_at - self.clock.time(), None)

    def _issue_credential(
        self, record: _Issued, lifetime: float | None, scope: str | None
    ) -> Response:
        """Issue an access token described by ``record``, living ``lifetime`` seconds;
        ``scope`` is the answer's (when it differs from the one asked for)."""
        access = self.new_access_token()
        with self._lock:
            record.expires = self.clock.monotonic() + lifetime if lifetime is not None else None
            self._access[access] = record
        body: dict[str, Any] = {
            "access_token": access,
            "issued_token_type": TOKEN_TYPES["access_token"],
            "token_type": "DPoP" if record.jkt is not None else "Bearer",
        }
        return self.token_response(_with_life_and_scope(body, lifetime, scope))

    @property
    def jwks(self) -> dict[str, Any]:
        """The public keys of the JWTs token exchange issues (``requested_token_type``
        ``...:jwt``), as a JWKS; the emulator trusts them as its own issuer's."""
        from joserfc.jwk import ECKey

        with self._lock:
            if self._signing_key is None:
                self._signing_key = ECKey.generate_key("P-256", auto_kid=True)
            public = self._signing_key.as_dict(private=False)
        self.trusted_issuers.trust(self.issuer, public)
        return {"keys": [public]}

    def _issue_jwt(self, record: _Issued, lifetime: float | None, scope: str | None) -> Response:
        """Issue a JWT (RFC 8693 §2.2.1: ``token_type`` ``N_A``, not an access token)."""
        from joserfc import jwt

        kid = self.jwks["keys"][0]["kid"]
        now = int(self.clock.time())
        claims: dict[str, Any] = {"iss": self.issuer, "sub": record.sub, "iat": now}
        claims.update(jti=secrets.token_urlsafe(16), aud=list(record.aud) or self.issuer)
        if lifetime is not None:
            claims["exp"] = now + int(lifetime)
        if record.scope:
            claims["scope"] = record.scope
        if record.act is not None:
            claims["act"] = {"sub": record.act}  # RFC 8693 §4.1
        token = jwt.encode({"alg": "ES256", "kid": kid}, claims, self._signing_key)
        body: dict[str, Any] = {
            "access_token": token,
            "issued_token_type": TOKEN_TYPES["jwt"],
            "token_type": "N_A",
        }
        return self.token_response(_with_life_and_scope(body, lifetime, scope))
