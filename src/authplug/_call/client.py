"""Authlib's only door: token requests are prepared and answers read by Authlib's OAuth2 core.

Authlib's transport-independent ``OAuth2Client`` builds the grant and refresh
requests (``prepare_token_request``, scope handling) and authenticates them with a
client-auth method; its ``parse_response_token`` and compliance hooks read the answer.
What Authlib has no hook for (a JSON body, a grant type in the query string, renamed
parameters) is done by a client-auth method registered here, built from the
:class:`~authplug.spec.ProviderSpec`.

Two things Authlib does not do are done here too:

- ``client_secret_basic`` form-encodes the client id and the secret before Base64
  (RFC 6749 §2.3.1; Authlib 1.9 sends them raw, which servers refuse for a secret
  holding ``+``, ``/``, ``=`` or ``%``).
- Authlib, the spec's encoding and the user's ``extra_params`` see only stand-ins for
  the password, the client secret and the refresh token (:mod:`authplug._redact`); the
  transport puts the real values in at the last moment. An exception from any of them
  therefore carries no secret in its frames' locals.

A token call is a plan (:mod:`authplug._call.plan`): the retries of
:func:`authplug._call.retry.attempts`, then the reading of the final answer. Every answer,
whatever its shape, ends as a :class:`~authplug.Token` or one of the package's errors.

Authlib is imported on the first token call, not when ``authplug`` is imported.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._redact import Scrubber, Secret, StandIn, basic_credentials, stand_in
from ..errors import (
    AuthError,
    ConfigurationError,
    CredentialsRejectedError,
    TokenEndpointError,
    TokenResponseError,
)
from ..spec import ErrorDetails, describe_body, read_json
from ..token import Token, parse_number
from .messages import RawResponse, TokenRequest, TransportFailure
from .plan import Call, Effect, Plan, aperform, perform
from .retry import RetryPolicy, attempts

if TYPE_CHECKING:
    from .._assertion import AssertionSource, SigningKey
    from .._clock import Clock
    from .._dpop import DPoP
    from ..spec import ProviderSpec
    from .discovery import Discovery
    from .transport import TokenTransport

__all__ = ["TokenClient"]

log = logging.getLogger("authplug")


REJECTED_STATUSES = frozenset({400, 401, 403, 422})
_AUTH_METHOD = "authplug"
_FORM = "application/x-www-form-urlencoded"
_JWT_METHODS = ("private_key_jwt", "client_secret_jwt")


class _Unusable(Exception):
    """A 2xx answer that is not a usable token (raised and caught inside this module)."""


class _ResponseView:
    """What Authlib's ``parse_response_token`` expects of a response object."""

    def __init__(self, status_code: int, data: dict[str, Any]) -> None:
        self.status_code = status_code
        self._data = data

    def json(self) -> dict[str, Any]:
        return self._data

    def raise_for_status(self) -> None:
        """Non-2xx answers never reach Authlib: they are read by the spec's error parser."""


@functools.cache
def _preparing_client_class() -> type[Any]:
    """An Authlib ``OAuth2Client`` that returns the prepared request instead of sending it."""
    from authlib.oauth2.client import OAuth2Client

    def prepared(
        method: str, url: str, headers: Mapping[str, str], body: str | bytes, auth: Any
    ) -> Any:
        url, headers, body = auth.prepare(method, url, dict(headers), body)
        data = body if isinstance(body, bytes) else body.encode("utf-8")
        return TokenRequest(method, url, dict(headers), data)

    class PreparingClient(OAuth2Client):  # type: ignore[misc]
        def _fetch_token(
            self,
            url: str,
            body: str = "",
            headers: Mapping[str, str] | None = None,
            auth: Any = None,
            method: str = "POST",
            **kwargs: Any,
        ) -> TokenRequest:
            return prepared(method, url, headers or {}, body, auth)  # type: ignore[no-any-return]

        def _refresh_token(
            self,
            url: str,
            refresh_token: str | None = None,
            body: str = "",
            headers: Mapping[str, str] | None = None,
            auth: Any = None,
            **kwargs: Any,
        ) -> TokenRequest:
            return prepared("POST", url, headers or {}, body, auth)  # type: ignore[no-any-return]

        def _http_post(  # the revocation request (RFC 7009)
            self,
            url: str,
            body: str | None = None,
            auth: Any = None,
            headers: Mapping[str, str] | None = None,
            **kwargs: Any,
        ) -> TokenRequest:
            return prepared("POST", url, headers or {}, body or "", auth)  # type: ignore[no-any-return]

    return PreparingClient


class TokenClient:
    """Obtains tokens for one auth object: the full grant, or a refresh."""

    def __init__(
        self,
        *,
        spec: ProviderSpec,
        token_url: str | None,
        refresh_url: str | None,
        client_id: str | None,
        client_secret: Secret | None,
        username: str | None,
        password: Secret | None,
        scope: str | None,
        client_auth: str,
        transport: TokenTransport,
        resource: tuple[str, ...] = (),
        audience: str | None = None,
        signing_key: SigningKey | None = None,
        assertion_source: AssertionSource | None = None,
        assertion_type: str = "",
        assertion_audience: str | None = None,
        discovery: Discovery | None = None,
        revocation_url: str | None = None,
        dpop: DPoP | None = None,
        retry: RetryPolicy,
        clock: Clock,
    ) -> None:
        self.spec = spec
        self.token_url = token_url
        self.refresh_url = refresh_url or token_url
        self.discovery = discovery
        self._revocation_url = revocation_url
        self._dpop = dpop
        self._warned_bearer = False
        self._signing_key = signing_key
        self._assertion_source = assertion_source
        self._assertion_type = assertion_type
        self._assertion_audience = assertion_audience
        self._client_id = client_id
        self._client_secret = client_secret
        self._username = username
        self._password = password
        self._scope = scope
        # Sent on every grant and refresh (RFC 8707 resource indicators, an audience).
        self._targets = [("resource", r) for r in resource]
        if audience is not None:
            self._targets.append(("audience", audience))
        self._client_auth = client_auth if client_id is not None else "none"
        self._basic = (
            basic_credentials(client_id, client_secret)
            if self._client_auth == "client_secret_basic" and client_id and client_secret
            else None
        )
        self._scrub = Scrubber((password, client_secret, self._basic))
        self._transport = transport
        self._retry = retry
        self._clock = clock
        self._warned_lifetime = False

    def __repr__(self) -> str:
        where = f"token_url={self.token_url!r}"
        if self.discovery is not None:
            where = f"issuer={self.discovery.issuer!r}"
        return f"TokenClient(provider={self.spec.name!r}, {where})"

    @property
    def wait_limit(self) -> float:
        """The longest a token call may take, retries and waits included (with
        discovery, the two places of the metadata may be tried first; with
        ``client_assertion=``, the assertion's ``timeout`` before)."""
        calls = 3 if self.discovery is not None else 1
        timeout = self._transport.timeout
        assertion = timeout if self._assertion_source is not None else 0.0
        return calls * self._retry.worst_case(timeout) + assertion

    # -- running -----------------------------------------------------------------

    def step(self, effect: Effect) -> RawResponse | Secret | None:
        """Perform one effect of a plan of this client (for drivers of larger plans)."""
        return perform(effect, self._transport, self._clock)

    async def astep(self, effect: Effect) -> RawResponse | Secret | None:
        """:meth:`step` without blocking the event loop."""
        return await aperform(effect, self._transport, self._clock)

    def grant(self) -> Plan[Token]:
        """The full grant (password or client credentials)."""
        token_url, _ = yield from self._endpoints()
        external = yield from self._external_assertion()
        scrub = self._scrub.with_secrets((external,))
        prepare = functools.partial(self.prepare_grant, token_url, external, scrub)
        return (yield from self._call(prepare, scrub, token_url))

    def refresh(self, token: Token) -> Plan[Token]:
        """A refresh-token grant with ``token``'s refresh token."""
        _, refresh_url = yield from self._endpoints()
        external = yield from self._external_assertion()
        refresh = Secret(token.refresh_token or "")
        scrub = self._scrub.with_secrets((refresh, external))
        prepare = functools.partial(self.prepare_refresh, refresh, scrub, refresh_url, external)
        return (yield from self._call(prepare, scrub, refresh_url))

    def _call(self, prepare: Callable[[], TokenRequest], scrub: Scrubber, url: str) -> Plan[Token]:
        raw = yield from self._send(prepare, scrub, "token")
        if self._dpop is None:
            return self.interpret(raw, scrub)
        fresh_nonce = self._dpop.observe(url, raw.headers.get("dpop-nonce"), server=True)
        if fresh_nonce and self._error_details(raw).error == "use_dpop_nonce":
            # RFC 9449 §8: once more, with the nonce the server just gave.
            raw = yield from self._send(prepare, scrub, "token")
            self._dpop.observe(url, raw.headers.get("dpop-nonce"), server=True)
        self._nonce_unsettled(raw, scrub)
        return self._bound(self.interpret(raw, scrub), self._dpop)

    def _nonce_unsettled(self, raw: RawResponse, scrub: Scrubber) -> None:
        """A final answer that still asks for a DPoP nonce is a TokenEndpointError.

        The request carried the nonce the server gave (or it gave none to carry), so the
        server broke RFC 9449 §8: a protocol failure to retry later, not refused
        credentials (a 400 would otherwise read as those, logged at ERROR).
        """
        if 200 <= raw.status_code < 300:
            return
        details = self._error_details(raw)
        if details.error != "use_dpop_nonce":
            return
        if raw.headers.get("dpop-nonce"):
            what = "still asks for a DPoP nonce after being sent the one it gave"
        else:
            what = "asks for a DPoP nonce without giving one (no DPoP-Nonce header)"
        raise self._error(
            TokenEndpointError,
            raw.status_code,
            details.error,
            f"the token endpoint {what} (RFC 9449 §8): a server fault, not refused "
            f"credentials; it said: {details.description}",
            scrub,
        )

    def _bound(self, token: Token, dpop: DPoP) -> Token:
        """A token issued for our proof: bound to our key, or (the server chose) Bearer."""
        if (token.token_type or "").lower() == "dpop":
            return dataclasses.replace(token, dpop_jkt=dpop.jkt)
        if not self._warned_bearer:
            self._warned_bearer = True
            log.info(
                "%s: the token endpoint answered token_type %r to a DPoP proof: the token "
                "is sent as a Bearer token",
                self.spec.name,
                token.token_type,
            )
        return token

    def _send(
        self, prepare: Callable[[], TokenRequest], scrub: Scrubber, endpoint: str
    ) -> Plan[RawResponse]:
        """The final answer after the retries; no answer at all is a TokenEndpointError."""
        outcome = yield from attempts(
            self._retry,
            lambda: self._prepared(prepare, scrub),
            now=self._clock.time,
            name=self.spec.name,
        )
        if isinstance(outcome, TransportFailure):
            raise self._unreachable(outcome.description, scrub, endpoint)
        return outcome

    def _endpoints(self) -> Plan[tuple[str, str]]:
        """The token and refresh URLs: as given, or from the issuer's metadata."""
        if self.discovery is None:
            assert self.token_url is not None  # noqa: S101 - Options requires one of the two
            return self.token_url, self.refresh_url or self.token_url
        metadata = yield from self.discovery.metadata()
        return metadata.token_endpoint, self.refresh_url or metadata.token_endpoint

    def _external_assertion(self) -> Plan[Secret | None]:
        """The client assertion of ``client_assertion=``, obtained once per token call."""
        source = self._assertion_source
        if source is None:
            return None
        name = self.spec.name
        limit = self._transport.timeout

        def failed(exc: Exception) -> AuthError:
            return TokenEndpointError(
                f"the client assertion could not be obtained: {exc}", provider=name
            )

        def sync() -> Secret:
            try:
                return source.obtain_within(limit)
            except Exception as exc:
                raise failed(exc) from (None if isinstance(exc, ValueError) else exc)

        async def asynchronous() -> Secret:
            try:
                return await source.aobtain(limit)
            except Exception as exc:
                raise failed(exc) from (None if isinstance(exc, ValueError) else exc)

        secret: Secret = yield Call(sync, asynchronous)
        return secret

    def revoke(self, token: Token) -> Plan[str]:
        """Revoke ``token`` (RFC 7009): its refresh token, or its access token when it
        has none. Returns which one was revoked."""
        url = self._revocation_url
        if url is None and self.discovery is not None:
            url = (yield from self.discovery.metadata()).revocation_endpoint
        if url is None:
            raise ConfigurationError(
                f"{self.spec.name}: no revocation endpoint: give revocation_url=, or "
                "issuer= of a server whose metadata names one"
            )
        hint = "refresh_token" if token.refresh_token else "access_token"
        value = Secret(token.refresh_token or token.access_token)
        external = yield from self._external_assertion()
        scrub = self._scrub.with_secrets((value, external))
        outcome = yield from self._send(
            lambda: self.prepare_revocation(url, value, hint, external, scrub), scrub, "revocation"
        )
        if not 200 <= outcome.status_code < 300:
            raise self._refused_revocation(outcome, scrub)
        return hint

    def _refused_revocation(self, raw: RawResponse, scrub: Scrubber) -> AuthError:
        """The error of a refused revocation. Made here, raised by the caller: this frame
        holds the server's words unscrubbed (they may echo the token or the assertion),
        and a traceback's locals would show them."""
        details = self._error_details(raw)
        status = raw.status_code
        cls = CredentialsRejectedError if status in REJECTED_STATUSES else TokenEndpointError
        return self._error(
            cls, status, details.error, f"revocation refused: {details.description}", scrub
        )

    # -- preparing ---------------------------------------------------------------

    def _prepared(self, prepare: Callable[[], TokenRequest], scrub: Scrubber) -> TokenRequest:
        """``prepare()``; anything unexpected (a user's hook raising) becomes an AuthError."""
        try:
            return prepare()
        except AuthError:
            raise
        except Exception as exc:
            error = self._error(
                TokenEndpointError,
                None,
                None,
                f"the token request could not be prepared ({type(exc).__name__}: {exc})",
                scrub,
            )
            raise error from exc

    def _stand_ins(
        self,
        audience: str,
        refresh: Secret | None = None,
        external: Secret | None = None,
        token: Secret | None = None,
    ) -> dict[str, StandIn]:
        assertion = external
        if self._signing_key is not None and self._client_id is not None:
            # A fresh one for each attempt (a new jti): a server may have seen the last.
            assertion = self._signing_key.assertion(
                self._client_id, self._assertion_audience or audience
            )
        secrets = {
            "password": self._password,
            "client_secret": self._client_secret,
            "basic": self._basic,
            "refresh_token": refresh,
            "client_assertion": assertion,
            "token": token,
        }
        return {role: stand_in(secret) for role, secret in secrets.items() if secret is not None}

    def _authlib_client(self, fills: Mapping[str, StandIn], revoking: bool = False) -> Any:
        secret = fills.get("client_secret")
        client = _preparing_client_class()(
            session=None,
            client_id=self._client_id,
            client_secret=secret.text if secret else None,
            token_endpoint_auth_method=_AUTH_METHOD,
            revocation_endpoint_auth_method=_AUTH_METHOD,
            scope=self._scope,
        )
        encode = functools.partial(self._encode, fills, revoking)
        client.register_client_auth_method((_AUTH_METHOD, encode))
        return client

    def _headers(self, url: str) -> dict[str, str]:
        content_type = "application/json" if self.spec.body == "json" else _FORM
        # Always a fresh dict: Authlib's client-auth methods write into it.
        headers = {
            "Accept": "application/json",
            "Content-Type": content_type,
            "User-Agent": "authplug",
        }
        headers.update(self.spec.headers)
        if self._dpop is not None:  # a fresh proof for each attempt (RFC 9449 §5)
            headers["DPoP"] = self._dpop.proof("POST", url)
        return headers

    def _sealed(
        self,
        request: TokenRequest,
        fills: Mapping[str, StandIn],
        scrub: Scrubber,
        *,
        revocation: bool = False,
    ) -> TokenRequest:
        """The request with its stand-ins and the call's scrubber, which from now on
        knows the assertion signed for this attempt: an answer that echoes it (read by
        the call, with that scrubber) shows ``***``."""
        json_body = self.spec.body == "json" and not revocation
        if "client_assertion" in fills:
            scrub.learn((fills["client_assertion"].secret,))
        return dataclasses.replace(
            request,
            body_kind="json" if json_body else "form",
            stand_ins=tuple(fills.values()),
            scrub=scrub,
            purpose="revocation" if revocation else "token",
        )

    def prepare_grant(
        self,
        token_url: str | None = None,
        external: Secret | None = None,
        scrub: Scrubber | None = None,
    ) -> TokenRequest:
        """The full grant (password or client credentials), prepared by Authlib;
        ``scrub`` is the call's scrubber (one of its own without)."""
        url = token_url or self.token_url or ""
        fills = self._stand_ins(url, external=external)
        kwargs: dict[str, Any] = {}
        if self.spec.grant_type == "password":
            kwargs["username"] = self._username
            kwargs["password"] = fills["password"].text if "password" in fills else None
        request = self._authlib_client(fills).fetch_token(
            url, grant_type=self.spec.grant_type, headers=self._headers(url), **kwargs
        )
        call_scrub = scrub if scrub is not None else self._scrub.with_secrets((external,))
        return self._sealed(request, fills, call_scrub)

    def prepare_refresh(
        self,
        refresh: Secret,
        scrub: Scrubber | None = None,
        refresh_url: str | None = None,
        external: Secret | None = None,
    ) -> TokenRequest:
        """A refresh-token grant, prepared by Authlib."""
        url = refresh_url or self.refresh_url or ""
        fills = self._stand_ins(url, refresh, external)
        request = self._authlib_client(fills).refresh_token(
            url, refresh_token=fills["refresh_token"].text, headers=self._headers(url)
        )
        return self._sealed(request, fills, scrub or self._scrub.with_secrets((refresh,)))

    def prepare_revocation(
        self, url: str, token: Secret, hint: str, external: Secret | None, scrub: Scrubber
    ) -> TokenRequest:
        """A revocation request (RFC 7009, a form body), prepared by Authlib."""
        fills = self._stand_ins(url, external=external, token=token)
        headers = {"Accept": "application/json", "Content-Type": _FORM, "User-Agent": "authplug"}
        request = self._authlib_client(fills, revoking=True).revoke_token(
            url, token=fills["token"].text, token_type_hint=hint, headers=headers
        )
        return self._sealed(request, fills, scrub, revocation=True)

    def _encode(
        self,
        fills: Mapping[str, StandIn],
        revoking: bool,
        client_auth: Any,
        method: str,
        uri: str,
        headers: dict[str, str],
        body: str,
    ) -> tuple[str, dict[str, str], str]:
        """The client-auth method registered with Authlib; it also applies the spec.

        Authlib has no hook on the first token request, so the provider's encoding
        (renamed parameters, grant type in the query, JSON body) happens here, after
        the client authentication. A revocation request (RFC 7009) gets the client
        authentication only: providers document no revocation of their own.
        """
        from authlib.oauth2.auth import ClientAuth

        assertion: list[tuple[str, str]] = []
        if "basic" in fills:
            headers["Authorization"] = "Basic " + fills["basic"].text
        elif self._client_auth in _JWT_METHODS and "client_assertion" in fills:
            # RFC 7523 §2.2; the client id travels in the assertion (iss, sub).
            assertion = [
                ("client_assertion_type", self._assertion_type),
                ("client_assertion", fills["client_assertion"].text),
            ]
        elif self._client_id is not None:  # client_secret_post, tls_client_auth or none
            # RFC 8705 §2: with tls_client_auth, the client id travels alone, as with none.
            name = "none" if self._client_auth == "tls_client_auth" else self._client_auth
            encode = ClientAuth.DEFAULT_AUTH_METHODS[name]
            uri, headers, body = encode(client_auth, method, uri, headers, body)
        params = parse_qsl(body, keep_blank_values=True) + assertion
        if revoking:
            headers.pop("Content-Length", None)
            return uri, headers, urlencode(params)
        grant_type = dict(params).get("grant_type", "")
        params.extend(self._targets)
        if self.spec.extra_params is not None:
            present = {name for name, _ in params}
            extra = self.spec.extra_params(grant_type)
            params.extend((k, v) for k, v in extra.items() if k not in present)
        names = self.spec.param_names
        params = [(names.get(k, k), v) for k, v in params]
        query: list[tuple[str, str]] = []
        if self.spec.params_in == "query":
            query, params = params, []
        elif self.spec.grant_type_in == "query":
            key = names.get("grant_type", "grant_type")
            query = [(k, v) for k, v in params if k == key]
            params = [(k, v) for k, v in params if k != key]
        if query:
            parts = urlsplit(uri)
            joined = "&".join(filter(None, [parts.query, urlencode(query)]))
            uri = urlunsplit(parts._replace(query=joined))
        if self.spec.body == "json" and params:
            body = json.dumps(_json_object(params))
        else:
            body = urlencode(params)
        headers.pop("Content-Length", None)
        return uri, headers, body

    # -- reading -----------------------------------------------------------------

    def interpret(self, raw: RawResponse, scrub: Scrubber | None = None) -> Token:
        """Turn the endpoint's answer into a Token, or raise one of the package's errors."""
        outcome = self._read(raw, scrub or self._scrub)
        if isinstance(outcome, AuthError):
            raise outcome
        return outcome

    def _read(self, raw: RawResponse, scrub: Scrubber) -> Token | AuthError:
        # Returns the error instead of raising it: this frame holds the answer's data
        # (a token), and a raised error would carry it in its traceback's locals.
        status = raw.status_code
        if not 200 <= status < 300:
            details = self._error_details(raw)
            cls = CredentialsRejectedError if status in REJECTED_STATUSES else TokenEndpointError
            return self._error(cls, status, details.error, details.description, scrub)
        data = read_json(raw.content)
        if not isinstance(data, dict):
            what = describe_body(status, raw.content_type, raw.content, excerpt=False)
            return self._error(
                TokenResponseError, status, None, f"expected a JSON token object, got {what}", scrub
            )
        try:
            fields = self._parsed(status, data, scrub)
        except _Unusable as exc:
            return self._error(TokenResponseError, status, None, str(exc), scrub)
        except Exception as exc:
            # Not expected of any answer; reported by kind, never by content.
            return self._error(
                TokenResponseError, status, None, f"unusable token ({type(exc).__name__})", scrub
            )
        if isinstance(fields, AuthError):
            return fields
        try:
            return Token.from_dict(fields)
        except ValueError as exc:
            return self._error(TokenResponseError, status, None, f"unusable token: {exc}", scrub)

    def _parsed(
        self, status: int, data: dict[str, Any], scrub: Scrubber
    ) -> dict[str, Any] | AuthError:
        """Authlib's reading of a JSON object: the token's fields, or the error it holds."""
        from authlib.oauth2.base import OAuth2Error

        data = self._normalize(data)
        for field in ("error", "error_description"):
            # Authlib checks each character of these: a number or a list breaks it.
            if data.get(field) is not None and not isinstance(data[field], str):
                data[field] = str(data[field])
        try:
            parsed = dict(
                self._authlib_client({}).parse_response_token(_ResponseView(status, dict(data)))
            )
        except OAuth2Error as exc:
            description = _text(exc.description) or "error in a 2xx answer"
            return self._error(TokenResponseError, status, _text(exc.error), description, scrub)
        # Authlib's OAuth2Token rounds expires_at to whole seconds (in the dict it is
        # given, hence the copy above); keep ours.
        if data.get("expires_at") is not None:
            parsed["expires_at"] = data["expires_at"]
        return parsed

    def _normalize(self, data: dict[str, Any]) -> dict[str, Any]:
        """Map the provider's field names onto RFC 6749's; lifetimes to deadlines."""
        data = dict(data)
        now = self._clock.time()
        data["issued_at"] = now
        data.pop("expires_at", None)  # a provider's absolute time is not ours to trust
        expires_in = self._seconds(data, self.spec.expires_in_field, warn=True)
        data.pop("expires_in", None)
        if expires_in is not None:
            data["expires_in"] = expires_in
            data["expires_at"] = now + expires_in
        if self.spec.refresh_expires_in_field:
            refresh_in = self._seconds(data, self.spec.refresh_expires_in_field, warn=False)
            if refresh_in is not None:
                data["refresh_expires_at"] = now + refresh_in
        return data

    def _seconds(self, data: dict[str, Any], name: str, *, warn: bool) -> float | None:
        """A lifetime field in seconds; None when absent, null or not positive.

        A lifetime that is not positive is treated as none given: the token is used
        until the API refuses it (a 0 would otherwise mean a token call before every
        request). Keycloak, for one, sends ``refresh_expires_in: 0`` for "no expiry".
        """
        value = data.pop(name, None)
        if value is None:
            return None
        seconds = parse_number(value)
        if seconds is None:
            raise _Unusable(f"the token answer's {name!r} is not a usable number")
        if seconds > 0:
            return seconds
        if warn and not self._warned_lifetime:
            self._warned_lifetime = True
            log.warning(
                "%s: the token endpoint gave %s=%g, not a positive lifetime; the token "
                "is used until the API refuses it",
                self.spec.name,
                name,
                seconds,
            )
        return None

    def _error_details(self, raw: RawResponse) -> ErrorDetails:
        """The spec's reading of an error body; a parser that fails is not believed."""
        try:
            details = self.spec.parse_error(raw.status_code, raw.content_type, raw.content)
            error, description = details
            return ErrorDetails(_text(error), _text(description) or "")
        except Exception:
            log.debug("%s: the error parser failed; describing the body", self.spec.name)
            return ErrorDetails(None, describe_body(raw.status_code, raw.content_type, raw.content))

    def _error(
        self,
        cls: type[AuthError],
        status: int | None,
        error: str | None,
        description: str,
        scrub: Scrubber,
    ) -> AuthError:
        return cls(
            scrub(description),
            provider=self.spec.name,
            status_code=status,
            error=scrub(error) if error is not None else None,
        )

    def _unreachable(self, description: str, scrub: Scrubber, endpoint: str) -> AuthError:
        return self._error(
            TokenEndpointError,
            None,
            None,
            f"no answer from the {endpoint} endpoint after {self._retry.retries + 1} attempt(s): "
            f"{description}",
            scrub,
        )


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _json_object(params: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Form parameters as a JSON object; a repeated name (several resources) is a list."""
    data: dict[str, str | list[str]] = {}
    for name, value in params:
        if name not in data:
            data[name] = value
            continue
        previous = data[name]
        data[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
    return data
