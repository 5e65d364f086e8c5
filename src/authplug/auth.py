"""The auth base class (every client in one object) and the generic classes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ._clock import CLOSE_TIMEOUT, Clock
from ._option_types import (
    JWT_BEARER,
    AssertionOption,
    CertOption,
    ClientAuthMethod,
    PrivateKeyOption,
    VerifyOption,
)
from ._plugged import Plugged, Siblings
from ._redact import Secret, hidden
from .cache import MemoryTokenCache, TokenCache
from .errors import ConfigurationError
from .spec import GENERIC, ProviderSpec

if TYPE_CHECKING:  # the docs resolve these without the clients and the machinery below
    from .events import Event
    from .token import Token

__all__ = [
    "BaseAuth",
    "CertOption",
    "OAuth2ClientCredentialsAuth",
    "OAuth2PasswordAuth",
    "VerifyOption",
]

log = logging.getLogger("authplug")

_A = TypeVar("_A", bound="BaseAuth")


class BaseAuth(Plugged, Siblings):
    """OAuth2 bearer authentication in one object for requests, httpx (sync, asyncio and
    trio), httpx2, aiohttp (a client middleware) and niquests (sync and async).

    Subclasses (the generic grants and the providers) choose the spec and the
    credentials; every option below is shared. All arguments are keyword-only.

    Args:
        spec: how the provider's token endpoint speaks (the subclass gives it).
        token_url: the token endpoint; or give ``issuer=`` instead.
        issuer: the authorization server's issuer identifier: the token endpoint (and
            the revocation endpoint) are read from its metadata (OpenID Connect
            Discovery or RFC 8414) on the first token call, after checking that the
            document names this issuer; kept for a day.
        refresh_url: where refresh grants go, when not to the token endpoint.
        revocation_url: the revocation endpoint (RFC 7009) for :meth:`revoke`, when
            discovery does not give one.
        client_id: the client's identifier at the authorization server.
        client_secret: the client's secret, when it authenticates with one.
        username: the resource owner's user name (password grant).
        password: the resource owner's password (password grant).
        scope: the scope to ask for: a space-separated string or a list of strings.
        resource: resource indicators (RFC 8707): one URI or several, sent on every
            grant and refresh, for a token bound to those APIs.
        audience: an ``audience`` parameter sent on every grant and refresh (Auth0,
            Okta and token exchange servers ask for one).
        leeway: a token is renewed by this many seconds before it expires: in the
            background, from a moment drawn in a window before that (10% of its
            lifetime, at most 5 minutes, never before half of it).
        timeout: seconds allowed to each token call: to connect, to each read, and
            to the whole answer.
        verify: TLS verification of token calls: True, False, a CA file or directory,
            or an ``ssl.SSLContext``.
        cert: a client certificate presented on token calls: a PEM file holding the
            certificate and key, or a ``(certfile, keyfile)`` pair.
        proxy: the proxy for token calls, ``http://[user:password@]host:port``
            (default: the environment's ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``).
        client_auth: how the client authenticates at the token endpoint:
            ``"client_secret_post"``, ``"client_secret_basic"``, ``"client_secret_jwt"``
            (an HS256 assertion made with the secret), ``"private_key_jwt"`` (an
            assertion signed with ``private_key=``, or given by ``client_assertion=``),
            ``"tls_client_auth"`` (the ``cert=`` certificate; no secret) or ``"none"``.
            Default: ``private_key_jwt`` with a key or an assertion, else
            ``client_secret_post`` with a secret, else ``none``.
        private_key: the client's private key for ``private_key_jwt``: PEM text, the
            path of a PEM or JWK file, or a JWK dict (RSA, EC or Ed25519).
        key_id: the ``kid`` header of the assertions (default: the JWK's ``kid``).
        signing_alg: the assertions' algorithm: RS256 (default for RSA keys), PS256,
            ES256/ES384/ES512 (by the EC key's curve), EdDSA or Ed25519; HS256 (default),
            HS384 or HS512 for ``client_secret_jwt``.
        client_assertion: an assertion made elsewhere (workload identity federation):
            a callable returning one (sync, or async for async clients), or the path of
            a file read again at each token call.
        client_assertion_type: default ``urn:ietf:params:oauth:client-assertion-type:jwt-bearer``.
        assertion_audience: the ``aud`` of the signed assertions (default: the endpoint
            each is sent to, the token endpoint or the revocation endpoint; some servers
            want their issuer).
        revoke_on_close: ``close()``/``aclose()`` revoke the token first (see :meth:`revoke`).
        close_timeout: seconds closing may take at most, revocation included, whatever
            the retries (default 5); a revocation not done by then is abandoned, with
            a WARNING.
        dpop: sender-constrained tokens (DPoP, RFC 9449) with a fresh ES256 key held by
            this object: token calls carry a proof, and a token the server binds to the
            key is sent as ``Authorization: DPoP …`` with a new proof on every request.
        dpop_key: the DPoP key to use instead (PEM text, a PEM or JWK file's path, or a
            JWK dict: EC P-256, RSA or Ed25519); implies ``dpop=True``. Give the same key
            to every process that shares a cache, so that they share the tokens too.
        retries: how often a token call that met a network error, a 429 or a 5xx is
            tried again.
        refresh_status_codes: API statuses that make the package renew the token and
            send the request once more.
        token: a token to start from (an ``authplug.Token`` or a provider's dict).
        on_token: called with each new token, e.g. to persist it.
        on_event: called with each event (:mod:`authplug.events`: renewals, token calls,
            replays, fallbacks, cache lookups), in the thread or task where it happens;
            one that raises is logged and ignored. With ``opentelemetry-api`` installed,
            the same events also become spans and metrics, with or without this.
        cache: where the token is kept (default: this process's memory).
        clock: the time source (for tests).

    ``auth.options`` is the checked value of all of these (an ``Options``, frozen; its
    repr shows no secret).

    Raises:
        ConfigurationError: an argument is wrong or missing, or a combination cannot
            work; the message says what to give.

    Attributes:
        options: the checked value of every argument (frozen; its repr shows no secret).
        spec: the provider's description.
        provider: the provider's lower-case name, as errors and log lines carry it.
        token_url: the token endpoint given (None with ``issuer=``).
        issuer: the issuer identifier given, or None.
        client_id: the client's identifier, or None.
        username: the resource owner's user name, or None.
        scope: the scope asked for, as one space-separated string, or None.
        refresh_status_codes: the API statuses that renew the token and replay the
            request.
    """

    # httpx must not buffer users' streams on our account.
    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        *,
        spec: ProviderSpec,
        token_url: str | None = None,
        issuer: str | None = None,
        refresh_url: str | None = None,
        revocation_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        username: str | None = None,
        password: str | None = None,
        scope: str | Iterable[str] | None = None,
        resource: str | Iterable[str] | None = None,
        audience: str | None = None,
        leeway: float = 60,
        timeout: float = 10.0,
        verify: VerifyOption = True,
        cert: CertOption = None,
        proxy: str | None = None,
        client_auth: ClientAuthMethod | None = None,
        private_key: PrivateKeyOption | None = None,
        key_id: str | None = None,
        signing_alg: str | None = None,
        client_assertion: AssertionOption | None = None,
        client_assertion_type: str = JWT_BEARER,
        assertion_audience: str | None = None,
        revoke_on_close: bool = False,
        close_timeout: float = CLOSE_TIMEOUT,
        dpop: bool = False,
        dpop_key: PrivateKeyOption | None = None,
        retries: int = 3,
        refresh_status_codes: Iterable[int] = (401,),
        token: Token | Mapping[str, Any] | None = None,
        on_token: Callable[[Token], object] | None = None,
        on_event: Callable[[Event], object] | None = None,
        cache: TokenCache | None = None,
        clock: Clock | None = None,
    ) -> None:
        # Wrapped at once, the plain strings dropped: a traceback's locals show Secret('***').
        secret = Secret(client_secret) if isinstance(client_secret, str) else client_secret
        wrapped = Secret(password) if isinstance(password, str) else password
        # Key text or an assertion as Hidden('***') too, until authplug._inputs reads it.
        key, proof_key, assertion = hidden(private_key), hidden(dpop_key), hidden(client_assertion)
        del client_secret, password, private_key, dpop_key, client_assertion
        from ._options import Options

        options = Options.from_kwargs(
            spec=spec,
            token_url=token_url,
            issuer=issuer,
            refresh_url=refresh_url,
            revocation_url=revocation_url,
            client_id=client_id,
            client_secret=secret,
            username=username,
            password=wrapped,
            scope=scope,
            resource=resource,
            audience=audience,
            leeway=leeway,
            timeout=timeout,
            verify=verify,
            cert=cert,
            proxy=proxy,
            client_auth=client_auth,
            private_key=key,
            key_id=key_id,
            signing_alg=signing_alg,
            client_assertion=assertion,
            client_assertion_type=client_assertion_type,
            assertion_audience=assertion_audience,
            revoke_on_close=revoke_on_close,
            close_timeout=close_timeout,
            dpop=dpop,
            dpop_key=proof_key,
            retries=retries,
            refresh_status_codes=refresh_status_codes,
            token=token,
            on_token=on_token,
            on_event=on_event,
            cache=cache,
            clock=clock,
        )
        own = self._own_options()
        if own:  # a person's login, a grant made from other credentials: not BaseAuth's
            import dataclasses

            options = dataclasses.replace(options, **own)
        self.options = options
        self.spec = spec
        self.provider = spec.name
        self.token_url = options.token_url
        self.issuer = options.issuer
        self.client_id = options.client_id
        self.username = options.username
        self.scope = options.scope
        self.refresh_status_codes = options.refresh_status_codes
        self._clock: Clock = options.clock
        if not isinstance(options.cache, MemoryTokenCache):
            self._assemble()  # a lasting cache: its manager guards SIGTERM from this thread

    def _own_options(self) -> dict[str, Any]:
        """Options of a subclass's own kind (``login``, ``derived``: see ``Options``) that
        are not BaseAuth's: none here."""
        return {}

    def __repr__(self) -> str:
        # getattr: a traceback's locals may show an object whose __init__ raised before
        # these were set (Python 3.10 does not catch a failing repr there).
        issuer = getattr(self, "issuer", None)
        fields = [
            f"issuer={issuer!r}" if issuer else f"token_url={getattr(self, 'token_url', None)!r}"
        ]
        for name in ("client_id", "username"):
            value = getattr(self, name, None)
            if value:
                fields.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(fields)})"

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__} objects cannot be pickled or copied: they hold "
            "credentials and live state (a token, locks). Build one in each process from "
            "your settings, and share tokens with cache=FileTokenCache(...) or "
            "RedisTokenCache(...)"
        )

    # -- outside HTTP --------------------------------------------------------------

    @property
    def token(self) -> Token | None:
        """The current token, or None before the first one."""
        return self._manager.token

    def get_token(self) -> Token:
        """A valid token, fetched or renewed if needed.

        For requests that do not go through an HTTP client this object serves (a
        websocket handshake, gRPC metadata).

        Returns:
            The token the HTTP clients send.

        Raises:
            AuthError: no token could be had; the subclass says why
                (:class:`CredentialsRejectedError`, :class:`TokenEndpointError`,
                :class:`TokenResponseError`).
        """
        return self._manager.get()

    async def aget_token(self) -> Token:
        """A valid token, fetched or renewed if needed, without blocking the loop.

        Returns:
            The token the HTTP clients send.

        Raises:
            AuthError: no token could be had; the subclass says why
                (:class:`CredentialsRejectedError`, :class:`TokenEndpointError`,
                :class:`TokenResponseError`).
        """
        return await self._manager.aget()

    def _token_newer_than(self, until: float | None) -> Token:
        """This object's token for another to be made from (a token exchange): one that
        expires after ``until``, the expiry of the one used last (renewed if need be)."""
        return self._manager.newer_than(until)

    async def _atoken_newer_than(self, until: float | None) -> Token:
        return await self._manager.anewer_than(until)

    def revoke(self) -> bool:
        """Revoke the token at the server (RFC 7009), forget it, and drop it from the cache.

        The refresh token is revoked, or the access token when there is none (servers
        revoke the access tokens of a revoked refresh token too, RFC 7009 §2.1). The
        endpoint is ``revocation_url=``, else the issuer's ``revocation_endpoint``; the
        client authenticates as at the token endpoint. The object stays usable: the
        next request gets a new token.

        Returns:
            True once the token is revoked and forgotten; False when there was no token.

        Raises:
            AuthError: the endpoint refused or could not be reached; nothing is
                forgotten, so that it can be tried again.
            ConfigurationError: there is no revocation endpoint (no ``revocation_url=``,
                and no ``issuer=`` whose metadata names one).
        """
        return self._manager.revoke()

    async def arevoke(self) -> bool:
        """:meth:`revoke` without blocking the event loop.

        Returns:
            True once the token is revoked and forgotten; False when there was no token.

        Raises:
            AuthError: as :meth:`revoke`.
            ConfigurationError: as :meth:`revoke`.
        """
        return await self._manager.arevoke()

    # -- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        """Stop background renewals (and, with ``revoke_on_close=True``, then revoke the
        token; a failure to revoke is logged, not raised). Takes ``close_timeout``
        seconds at most: a revocation not done by then is abandoned, with a WARNING.
        The object still works: renewals then happen on the request path. A renewal
        under way finishes in its thread and its token is stored."""
        from ._renew import closing as _closing

        for sibling in self._siblings_now():
            sibling.close()  # type: ignore[attr-defined]
        _closing.close(
            self._manager,
            revoke=self.options.revoke_on_close,
            budget=self.options.close_timeout,
            provider=self.provider,
        )

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop, within the same budget."""
        from ._renew import closing as _closing

        for sibling in self._siblings_now():
            await sibling.aclose()  # type: ignore[attr-defined]
        await _closing.aclose(
            self._manager,
            revoke=self.options.revoke_on_close,
            budget=self.options.close_timeout,
            provider=self.provider,
        )

    def __enter__(self: _A) -> _A:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self: _A) -> _A:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class OAuth2PasswordAuth(BaseAuth):
    """The resource owner password grant against any RFC 6749 token endpoint.

    Args:
        username: the resource owner's user name.
        password: the resource owner's password.
        token_url: the token endpoint; or give ``issuer=`` instead.
        client_id: the client's identifier, when the server wants one.
        client_secret: the client's secret, when it has one.
        scope: the scope to ask for: a space-separated string or a list of strings.
        spec: the provider's description (default: RFC 6749's form body and errors);
            its ``grant_type`` must be ``"password"``.
        **options: any option of :class:`BaseAuth`.

    Raises:
        ConfigurationError: an argument is wrong, or ``spec`` is not a password grant.
    """

    def __init__(
        self,
        *,
        username: str,
        password: str,
        token_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str | Iterable[str] | None = None,
        spec: ProviderSpec = GENERIC,
        **options: Any,
    ) -> None:
        if spec.grant_type != "password":
            raise ConfigurationError("OAuth2PasswordAuth needs a spec with grant_type='password'")
        super().__init__(
            spec=spec,
            token_url=token_url,
            username=username,
            password=password,
            client_id=client_id,
            client_secret=client_secret,
            scope=scope,
            **options,
        )


class OAuth2ClientCredentialsAuth(BaseAuth):
    """The client credentials grant against any RFC 6749 token endpoint.

    Args:
        client_id: the client's identifier.
        client_secret: the client's secret; required unless ``client_auth=``,
            ``private_key=`` or ``client_assertion=`` says how else it authenticates.
        token_url: the token endpoint; or give ``issuer=`` instead.
        scope: the scope to ask for: a space-separated string or a list of strings.
        spec: the provider's description (default: RFC 6749's form body and errors);
            its ``grant_type`` must be ``"client_credentials"``.
        **options: any option of :class:`BaseAuth`.

    Raises:
        ConfigurationError: an argument is wrong or missing, or ``spec`` is not a client
            credentials grant.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str | None = None,
        token_url: str | None = None,
        scope: str | Iterable[str] | None = None,
        spec: ProviderSpec | None = None,
        **options: Any,
    ) -> None:
        from ._options import text

        text("client_id", client_id, required=True)
        text("client_secret", client_secret, required=False)
        if client_secret is None:
            from .providers._util import authenticates_otherwise  # the providers' rule

            if not authenticates_otherwise(options):
                raise ConfigurationError(
                    "client_secret= is required, unless the client authenticates with "
                    'private_key=, client_assertion= or client_auth="tls_client_auth"'
                )
        spec = spec or ProviderSpec(name="oauth2", grant_type="client_credentials")
        if spec.grant_type != "client_credentials":
            raise ConfigurationError(
                "OAuth2ClientCredentialsAuth needs a spec with grant_type='client_credentials'"
            )
        super().__init__(
            spec=spec,
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            scope=scope,
            **options,
        )
