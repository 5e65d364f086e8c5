"""Authlib's only door: token requests are prepared and parsed by Authlib's OAuth2 core.

Authlib's transport-independent ``OAuth2Client`` builds the grant and refresh
requests (``prepare_token_request``, scope handling) and authenticates them with a
client-auth method; its ``parse_response_token`` and compliance hooks read the answer.
What Authlib has no hook for (a JSON body, a grant type in the query string, renamed
parameters) is done by a client-auth method registered here, built from the
:class:`~authplug.spec.ProviderSpec`. The wire itself is our own thin transport
(:mod:`authplug._transport`), so sync and async encode identically and share one
error table. ``authlib.integrations.httpx_client`` is not used: since Authlib 1.8 it
targets the httpx2 fork.

Authlib is imported on the first token call, not when ``authplug`` is imported.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._retry import RetryPolicy, parse_retry_after
from ._transport import RawResponse, TokenRequest, TransportFailure
from .errors import (
    AuthError,
    CredentialsRejectedError,
    TokenEndpointError,
    TokenResponseError,
)
from .spec import describe_body
from .token import Token, _number

if TYPE_CHECKING:
    from ._clock import Clock
    from ._transport import HttpxTransport
    from .spec import ProviderSpec

__all__ = ["Secret", "TokenClient"]

log = logging.getLogger("authplug")

REJECTED_STATUSES = frozenset({400, 401, 403, 422})
_AUTH_METHOD = "authplug"
_FORM = "application/x-www-form-urlencoded"


class Secret:
    """A string that never shows itself in a repr, a str or a traceback's locals."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class _ResponseView:
    """What Authlib's ``parse_response_token`` expects of a response object."""

    def __init__(self, raw: RawResponse, data: Any = None, *, parsed: bool = False) -> None:
        self.raw = raw
        self.status_code = raw.status_code
        self._data = data
        self._parsed = parsed

    def json(self) -> Any:
        if not self._parsed:
            self._data = json.loads(self.raw.content)
            self._parsed = True
        return self._data

    def json_if_parsed(self) -> dict[str, Any]:
        """The normalized object, or an empty dict when it was not one."""
        return dict(self._data) if self._parsed and isinstance(self._data, dict) else {}

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

    return PreparingClient


class TokenClient:
    """Obtains tokens for one auth object: the full grant, or a refresh."""

    def __init__(
        self,
        *,
        spec: ProviderSpec,
        token_url: str,
        refresh_url: str | None,
        client_id: str | None,
        client_secret: Secret | None,
        username: str | None,
        password: Secret | None,
        scope: str | None,
        client_auth: str,
        transport: HttpxTransport,
        retry: RetryPolicy,
        clock: Clock,
    ) -> None:
        self.spec = spec
        self.token_url = token_url
        self.refresh_url = refresh_url or token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._username = username
        self._password = password
        self._scope = scope
        self._client_auth = client_auth
        self._transport = transport
        self._retry = retry
        self._clock = clock

    def __repr__(self) -> str:
        return f"TokenClient(provider={self.spec.name!r}, token_url={self.token_url!r})"

    # -- preparing ---------------------------------------------------------------

    def _authlib_client(self) -> Any:
        client = _preparing_client_class()(
            session=None,
            client_id=self._client_id,
            client_secret=self._client_secret.reveal() if self._client_secret else None,
            token_endpoint_auth_method=_AUTH_METHOD,
            scope=self._scope,
        )
        client.register_client_auth_method((_AUTH_METHOD, self._encode))
        client.register_compliance_hook("access_token_response", self._normalize)
        client.register_compliance_hook("refresh_token_response", self._normalize)
        return client

    def _headers(self) -> dict[str, str]:
        content_type = "application/json" if self.spec.body == "json" else _FORM
        # Always a fresh dict: Authlib's client-auth methods write into it.
        headers = {"Accept": "application/json", "Content-Type": content_type}
        headers.update(self.spec.headers)
        return headers

    def prepare_grant(self) -> TokenRequest:
        """The full grant (password or client credentials), prepared by Authlib."""
        client = self._authlib_client()
        kwargs: dict[str, Any] = {}
        if self.spec.grant_type == "password":
            kwargs["username"] = self._username
            kwargs["password"] = self._password.reveal() if self._password else None
        request: TokenRequest = client.fetch_token(
            self.token_url, grant_type=self.spec.grant_type, headers=self._headers(), **kwargs
        )
        return request

    def prepare_refresh(self, refresh_token: str) -> TokenRequest:
        """A refresh-token grant, prepared by Authlib."""
        client = self._authlib_client()
        request: TokenRequest = client.refresh_token(
            self.refresh_url, refresh_token=refresh_token, headers=self._headers()
        )
        return request

    def _encode(
        self, client_auth: Any, method: str, uri: str, headers: dict[str, str], body: str
    ) -> tuple[str, dict[str, str], str]:
        """The client-auth method registered with Authlib; it also applies the spec.

        Authlib has no hook on the first token request, so the provider's encoding
        (renamed parameters, grant type in the query, JSON body) happens here, after
        the standard client authentication.
        """
        from authlib.oauth2.auth import ClientAuth

        if self._client_id is not None:
            encode = ClientAuth.DEFAULT_AUTH_METHODS[self._client_auth]
            uri, headers, body = encode(client_auth, method, uri, headers, body)
        params = parse_qsl(body, keep_blank_values=True)
        grant_type = dict(params).get("grant_type", "")
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
            body = json.dumps(dict(params))
        else:
            body = urlencode(params)
        headers.pop("Content-Length", None)
        return uri, headers, body

    # -- reading -----------------------------------------------------------------

    def _normalize(self, view: _ResponseView) -> _ResponseView:
        """Compliance hook: map the provider's field names onto RFC 6749's."""
        try:
            data = view.json()
        except (ValueError, UnicodeDecodeError):
            return view  # Authlib's parser reports it
        if not isinstance(data, dict):
            return view
        data = dict(data)
        now = self._clock.time()
        data["issued_at"] = now
        expires_in = self._seconds(data, self.spec.expires_in_field, view.status_code)
        data.pop("expires_in", None)
        if expires_in is not None:
            data["expires_in"] = expires_in
            data["expires_at"] = now + expires_in
        if self.spec.refresh_expires_in_field:
            refresh_in = self._seconds(data, self.spec.refresh_expires_in_field, view.status_code)
            if refresh_in is not None:
                data["refresh_expires_at"] = now + refresh_in
        return _ResponseView(view.raw, data, parsed=True)

    def _seconds(self, data: dict[str, Any], name: str, status: int) -> float | None:
        """A lifetime field as non-negative seconds; None when absent or null."""
        value = data.pop(name, None)
        if value is None:
            return None
        seconds = _number(value)
        if seconds is None:
            raise self._error(
                TokenResponseError, status, None, f"the token answer's {name!r} is not a number"
            )
        return max(seconds, 0.0)

    def interpret(self, kind: str, raw: RawResponse) -> Token:
        """Turn the endpoint's answer into a Token or one of the package's errors."""
        status = raw.status_code
        if not 200 <= status < 300:
            details = self.spec.parse_error(status, raw.content_type, raw.content)
            rejected = status in REJECTED_STATUSES
            cls = CredentialsRejectedError if rejected else TokenEndpointError
            raise self._error(cls, status, details.error, details.description)
        from authlib.oauth2.base import OAuth2Error

        client = self._authlib_client()
        view = _ResponseView(raw)
        hook_type = "refresh_token_response" if kind == "refresh" else "access_token_response"
        for hook in client.compliance_hook[hook_type]:
            view = hook(view)
        # Authlib's OAuth2Token rounds expires_at to whole seconds; keep ours.
        exact = view.json_if_parsed().get("expires_at")
        try:
            data = dict(client.parse_response_token(view))
            if exact is not None:
                data["expires_at"] = exact
        except OAuth2Error as exc:
            raise self._error(
                TokenResponseError, status, exc.error, exc.description or "error in a 2xx answer"
            ) from None
        except (ValueError, TypeError, UnicodeDecodeError):
            what = describe_body(status, raw.content_type, raw.content, excerpt=False)
            raise self._error(
                TokenResponseError, status, None, f"expected a JSON token object, got {what}"
            ) from None
        try:
            return Token.from_dict(data)
        except ValueError as exc:
            raise self._error(TokenResponseError, status, None, f"unusable token: {exc}") from None

    def _scrub(self, text: str | None, extra: tuple[str, ...] = ()) -> str | None:
        if text is None:
            return None
        for secret in (self._password, self._client_secret):
            if secret is not None and len(secret.reveal()) >= 3:
                text = text.replace(secret.reveal(), "***")
        for value in extra:
            if len(value) >= 3:
                text = text.replace(value, "***")
        return text

    def _error(
        self,
        cls: type[AuthError],
        status: int | None,
        error: str | None,
        description: str,
        secrets: tuple[str, ...] = (),
    ) -> AuthError:
        return cls(
            self._scrub(description, secrets) or "",
            provider=self.spec.name,
            status_code=status,
            error=self._scrub(error, secrets),
        )

    # -- sending -----------------------------------------------------------------

    def _retry_after(self, raw: RawResponse) -> float | None:
        return parse_retry_after(raw.headers.get("retry-after"), now=self._clock.time())

    def _call(
        self, kind: str, prepare: Callable[[], TokenRequest], secrets: tuple[str, ...]
    ) -> Token:
        request = prepare()
        attempt = 0
        while True:
            try:
                raw = self._transport.send(request)
            except TransportFailure as exc:
                if attempt >= self._retry.retries:
                    raise self._unreachable(exc, secrets) from None
                delay = self._retry.delay(attempt)
            else:
                if attempt >= self._retry.retries or not self._retry.should_retry_status(
                    raw.status_code
                ):
                    return self._interpret_scrubbed(kind, raw, secrets)
                delay = self._retry.delay(attempt, self._retry_after(raw))
            self._log_retry(attempt, delay)
            attempt += 1
            self._clock.sleep(delay)

    async def _acall(
        self, kind: str, prepare: Callable[[], TokenRequest], secrets: tuple[str, ...]
    ) -> Token:
        request = prepare()
        attempt = 0
        while True:
            try:
                raw = await self._transport.asend(request)
            except TransportFailure as exc:
                if attempt >= self._retry.retries:
                    raise self._unreachable(exc, secrets) from None
                delay = self._retry.delay(attempt)
            else:
                if attempt >= self._retry.retries or not self._retry.should_retry_status(
                    raw.status_code
                ):
                    return self._interpret_scrubbed(kind, raw, secrets)
                delay = self._retry.delay(attempt, self._retry_after(raw))
            self._log_retry(attempt, delay)
            attempt += 1
            await self._clock.asleep(delay)

    def _interpret_scrubbed(self, kind: str, raw: RawResponse, secrets: tuple[str, ...]) -> Token:
        try:
            return self.interpret(kind, raw)
        except AuthError as exc:
            # The refresh token is a secret of this call only; scrub it too.
            if secrets:
                raise self._error(
                    type(exc), exc.status_code, exc.error, exc.description, secrets
                ) from None
            raise

    def _unreachable(self, exc: TransportFailure, secrets: tuple[str, ...]) -> AuthError:
        return self._error(
            TokenEndpointError,
            None,
            None,
            f"no answer from the token endpoint after {self._retry.retries + 1} attempt(s): "
            f"{exc.description}",
            secrets,
        )

    def _log_retry(self, attempt: int, delay: float) -> None:
        log.info(
            "%s: token call attempt %d failed; retrying in %.2fs",
            self.spec.name,
            attempt + 1,
            delay,
        )

    def grant(self) -> Token:
        return self._call("grant", self.prepare_grant, ())

    def refresh(self, refresh_token: str) -> Token:
        return self._call("refresh", lambda: self.prepare_refresh(refresh_token), (refresh_token,))

    async def agrant(self) -> Token:
        return await self._acall("grant", self.prepare_grant, ())

    async def arefresh(self, refresh_token: str) -> Token:
        return await self._acall(
            "refresh", lambda: self.prepare_refresh(refresh_token), (refresh_token,)
        )
