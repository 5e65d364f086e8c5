"""Authlib's only door: token requests are prepared and answers parsed by Authlib's OAuth2 core.

Authlib's transport-independent ``OAuth2Client`` builds the grant, refresh and
revocation requests (``prepare_token_request``, scope handling) and authenticates them
with a client-auth method; its ``parse_response_token`` and compliance hooks read a
token answer (:func:`parse_token`). What Authlib has no hook for (a JSON body, a grant
type in the query string, renamed parameters) is done by a client-auth method
registered here, built from the :class:`~authplug.spec.ProviderSpec`.

Two things Authlib does not do are done here too:

- ``client_secret_basic`` form-encodes the client id and the secret before Base64
  (RFC 6749 §2.3.1; Authlib 1.9 sends them raw, which servers refuse for a secret
  holding ``+``, ``/``, ``=`` or ``%``).
- Authlib, the spec's encoding and the user's ``extra_params`` see only stand-ins for
  the password, the client secret and the refresh token (:mod:`authplug._redact`); the
  transport puts the real values in at the last moment. An exception from any of them
  therefore carries no secret in its frames' locals.

Authlib is imported on the first token call, not when ``authplug`` is imported.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._redact import Scrubber, Secret, StandIn, basic_credentials, stand_in
from ..spec import ErrorDetails
from .messages import TokenRequest

if TYPE_CHECKING:
    from .._options import Options

__all__ = ["RequestPreparer", "parse_token"]

_AUTH_METHOD = "authplug"
_FORM = "application/x-www-form-urlencoded"
_JWT_METHODS = ("private_key_jwt", "client_secret_jwt")


class _ResponseView:
    """What Authlib's ``parse_response_token`` expects of a response object."""

    def __init__(self, status_code: int, data: dict[str, Any]) -> None:
        self.status_code = status_code
        self._data = data

    def json(self) -> dict[str, Any]:
        return self._data

    def raise_for_status(self) -> None:
        """Non-2xx answers never reach Authlib: they are read by the spec's error parser."""


def _unsent(
    method: str, url: str, headers: Mapping[str, str], body: str | bytes, auth: Any
) -> TokenRequest:
    """The request as Authlib's client-auth method ``auth`` leaves it, unsent."""
    url, headers, body = auth.prepare(method, url, dict(headers), body)
    data = body if isinstance(body, bytes) else body.encode("utf-8")
    return TokenRequest(method, url, dict(headers), data)


@functools.cache
def _preparing_client_class() -> type[Any]:
    """An Authlib ``OAuth2Client`` that returns the prepared request instead of sending it."""
    from authlib.oauth2.client import OAuth2Client

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
            return _unsent(method, url, headers or {}, body, auth)

        def _refresh_token(
            self,
            url: str,
            refresh_token: str | None = None,
            body: str = "",
            headers: Mapping[str, str] | None = None,
            auth: Any = None,
            **kwargs: Any,
        ) -> TokenRequest:
            return _unsent("POST", url, headers or {}, body, auth)

        def _http_post(  # the revocation request (RFC 7009)
            self,
            url: str,
            body: str | None = None,
            auth: Any = None,
            headers: Mapping[str, str] | None = None,
            **kwargs: Any,
        ) -> TokenRequest:
            return _unsent("POST", url, headers or {}, body or "", auth)

    return PreparingClient


def parse_token(status: int, data: dict[str, Any]) -> dict[str, Any] | ErrorDetails:
    """Authlib's reading of a 2xx JSON object: the token's fields, or the error it names.

    ``data`` has the spec's field names already mapped onto RFC 6749's.
    """
    from authlib.oauth2.base import OAuth2Error

    client = _preparing_client_class()(session=None)
    try:
        return dict(client.parse_response_token(_ResponseView(status, data)))
    except OAuth2Error as exc:
        error, description = exc.error, exc.description
        return ErrorDetails(
            None if error is None else str(error), "" if description is None else str(description)
        )


class RequestPreparer:
    """Prepares one auth object's grant, refresh and revocation requests through Authlib,
    every secret replaced by a stand-in."""

    def __init__(self, options: Options) -> None:
        self.spec = options.spec
        self._dpop = options.dpop
        self._signing_key = options.signing_key
        self._assertion_type = options.client_assertion_type
        self._assertion_audience = options.assertion_audience
        self._client_id = client_id = options.client_id
        self._client_secret = secret = options.client_secret
        self._username = options.username
        self._password = options.password
        self._scope = options.scope
        # Sent on every grant and refresh (RFC 8707 resource indicators, an audience).
        self._targets = [("resource", r) for r in options.resource]
        if options.audience is not None:
            self._targets.append(("audience", options.audience))
        self._client_auth = options.client_auth if client_id is not None else "none"
        self._basic = (
            basic_credentials(client_id, secret)
            if self._client_auth == "client_secret_basic" and client_id and secret
            else None
        )
        #: Knows the object's own secrets; each call adds its own (refresh token, assertion).
        self.scrub = Scrubber((options.password, secret, self._basic))

    def grant(self, url: str, external: Secret | None, scrub: Scrubber) -> TokenRequest:
        """The full grant (password or client credentials); ``scrub`` is the call's."""
        fills = self._stand_ins(url, external=external)
        kwargs: dict[str, Any] = {}
        if self.spec.grant_type == "password":
            kwargs["username"] = self._username
            kwargs["password"] = fills["password"].text if "password" in fills else None
        request = self._authlib_client(fills).fetch_token(
            url, grant_type=self.spec.grant_type, headers=self._headers(url), **kwargs
        )
        return self._sealed(request, fills, scrub)

    def login_grant(
        self,
        url: str,
        grant_type: str,
        secrets: Mapping[str, Secret],
        plain: Mapping[str, str],
        external: Secret | None,
        scrub: Scrubber,
    ) -> TokenRequest:
        """A login's token request: the code with its verifier (RFC 7636 §4.5), or the
        device code (RFC 8628 §3.4); ``secrets`` travel as stand-ins."""
        fills = self._stand_ins(url, external=external, more=secrets)
        kwargs = {name: fills[name].text for name in secrets}
        request = self._authlib_client(fills).fetch_token(
            url, grant_type=grant_type, headers=self._headers(url), **kwargs, **plain
        )
        return self._sealed(request, fills, scrub)

    def device_request(self, url: str, external: Secret | None, scrub: Scrubber) -> TokenRequest:
        """The device authorization request (RFC 8628 §3.1): the client (authenticated as
        at the token endpoint), the scope, the resource indicators and audience."""
        fills = self._stand_ins(url, external=external)
        client = self._authlib_client(fills)
        body = urlencode([("scope", self._scope)] if self._scope else [])
        headers = self._headers(url)
        headers.pop("DPoP", None)  # not a token request: RFC 9449 asks for no proof here
        request = _unsent("POST", url, headers, body, client.client_auth(_AUTH_METHOD))
        return dataclasses.replace(
            request,
            body_kind="form",
            stand_ins=tuple(fills.values()),
            scrub=scrub,
            purpose="device",
        )

    def authorization_url(
        self, endpoint: str, redirect_uri: str, state: str, verifier: Secret
    ) -> str:
        """The authorization request (RFC 6749 §4.1.1) with PKCE S256 (RFC 7636 §4.3),
        made by Authlib; the resource indicators and audience added (RFC 8707 §2.1)."""
        from authlib.oauth2.client import OAuth2Client

        client = OAuth2Client(
            session=None,
            client_id=self._client_id,
            scope=self._scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
        )
        extra = {}
        if "offline_access" in (self._scope or "").split():
            # OpenID Connect Core §11: offline_access is granted only with prompt=consent
            # (oidc-provider drops it otherwise, and no refresh token comes).
            extra["prompt"] = "consent"
        url, _ = client.create_authorization_url(
            endpoint, state=state, code_verifier=verifier.reveal(), **extra
        )
        if self._targets:
            url += "&" + urlencode(self._targets)
        return str(url)

    def refresh(
        self, url: str, refresh: Secret, external: Secret | None, scrub: Scrubber
    ) -> TokenRequest:
        """A refresh-token grant with ``refresh``."""
        fills = self._stand_ins(url, refresh, external)
        request = self._authlib_client(fills).refresh_token(
            url, refresh_token=fills["refresh_token"].text, headers=self._headers(url)
        )
        return self._sealed(request, fills, scrub)

    def revocation(
        self, url: str, token: Secret, hint: str, external: Secret | None, scrub: Scrubber
    ) -> TokenRequest:
        """A revocation request (RFC 7009, a form body)."""
        fills = self._stand_ins(url, external=external, token=token)
        headers = {"Accept": "application/json", "Content-Type": _FORM, "User-Agent": "authplug"}
        request = self._authlib_client(fills, revoking=True).revoke_token(
            url, token=fills["token"].text, token_type_hint=hint, headers=headers
        )
        return self._sealed(request, fills, scrub, revocation=True)

    def _stand_ins(
        self,
        audience: str,
        refresh: Secret | None = None,
        external: Secret | None = None,
        token: Secret | None = None,
        more: Mapping[str, Secret] | None = None,
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
            **(more or {}),
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
        encode = functools.partial(self._authenticate, fills, revoking)
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

    def _authenticate(
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
        headers.pop("Content-Length", None)
        if revoking:
            return uri, headers, urlencode(params)
        return self._spec_encoded(uri, headers, params)

    def _spec_encoded(
        self, uri: str, headers: dict[str, str], params: list[tuple[str, str]]
    ) -> tuple[str, dict[str, str], str]:
        """The grant's parameters as the spec says: targets and extra parameters added,
        names mapped, some moved to the query, the body a form or a JSON object."""
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
            body = json.dumps(_json_body(params))
        else:
            body = urlencode(params)
        return uri, headers, body


def _json_body(params: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Form parameters as a JSON object; a repeated name (several resources) is a list."""
    data: dict[str, str | list[str]] = {}
    for name, value in params:
        if name not in data:
            data[name] = value
            continue
        previous = data[name]
        data[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
    return data
