"""The token calls of one auth object, as plans: the grant, the refresh, the revocation.

A token call is a plan (:mod:`authplug._call.plan`): the endpoint (as given, or from
the issuer's metadata, :mod:`authplug._call.discovery`), the client assertion of
``client_assertion=`` when there is one, the retries of
:func:`authplug._call.retry.attempts` around requests prepared afresh for each attempt
(:mod:`authplug._call.authlib`), one more attempt when a DPoP server asks for a nonce
(RFC 9449 §8), then the reading of the final answer (:mod:`authplug._call.answer`).

:class:`TokenClient` is built from the checked :class:`~authplug._options.Options`
whole: a new option is read where it is used, not relayed by name.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._options import check_url
from .._redact import Scrubber, Secret
from ..errors import AuthError, ConfigurationError, TokenEndpointError
from ..token import Token
from .answer import AnswerReader
from .authlib import RequestPreparer
from .discovery import Discovery
from .messages import RawResponse, TokenRequest, TransportFailure
from .plan import Call, Plan
from .retry import RetryPolicy, attempts
from .transport import TokenTransport

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._dpop import DPoP
    from .._options import Options
    from .login import LoginSettings

__all__ = ["TokenClient"]

log = logging.getLogger("authplug")


class TokenClient:
    """Obtains tokens for one auth object: the full grant, or a refresh; and revokes them."""

    def __init__(self, options: Options) -> None:
        self.spec = spec = options.spec
        self.token_url = options.token_url
        self.refresh_url = options.refresh_url or options.token_url
        self._retry = RetryPolicy(retries=options.retries)
        self._clock = options.clock
        self.discovery = (
            Discovery(
                options.issuer,
                retry=self._retry,
                now=options.clock.time,
                name=spec.name,
                check_url=check_url,
            )
            if options.issuer is not None
            else None
        )
        self._revocation_url = options.revocation_url
        self._dpop = options.dpop
        self._warned_bearer = False
        self._assertion_source = options.client_assertion
        # A sibling (auth.for_resource(...)) shares its parent's connections.
        self._transport = options.shared_transport or TokenTransport(
            timeout=options.timeout, verify=options.verify, cert=options.cert, proxy=options.proxy
        )
        self._preparer = RequestPreparer(options)
        self._scrub = self._preparer.scrub
        self._answers = AnswerReader(spec, options.clock)
        #: How a person logs in, for the login classes (their "full grant"); else None.
        self.login: LoginSettings | None = options.login
        #: What a token exchange or a JWT bearer grant is made from; else None.
        self._derived = options.derived
        #: The expiry of each auth object's token it was made from last (by option).
        self._used: dict[str, float | None] = {}
        #: Those tokens, obtained for the renewal under way before its cache lock.
        self._ready: dict[str, tuple[Secret, float | None]] = {}

    def __repr__(self) -> str:
        where = f"token_url={self.token_url!r}"
        if self.discovery is not None:
            where = f"issuer={self.discovery.issuer!r}"
        return f"TokenClient(provider={self.spec.name!r}, {where})"

    @property
    def transport(self) -> TokenTransport:
        """What sends this client's requests (the drivers of its plans perform with it)."""
        return self._transport

    @property
    def wait_limit(self) -> float:
        """The longest a token call may take, retries and waits included (with
        discovery, the two places of the metadata may be tried first; with
        ``client_assertion=``, the assertion's ``timeout`` before)."""
        calls = 3 if self.discovery is not None else 1
        timeout = self._transport.timeout
        assertion = timeout if self._assertion_source is not None else 0.0
        if self.login is not None:  # the person's time, then the exchange
            calls += 2
            assertion += self.login.login_timeout
        return calls * self._retry.worst_case(timeout) + assertion

    @property
    def needs_person(self) -> bool:
        """Whether the full grant is a person's login (never run in the background)."""
        return self.login is not None

    # -- the calls ---------------------------------------------------------------

    def grant(self, ask: bool | None = None) -> Plan[Token]:
        """The full grant (password or client credentials), or a person's login: one that
        may ask (``ask``: True for an explicit login, False in the background, None as
        ``interactive=`` says; see :func:`authplug._call.login.may_ask`)."""
        if self.login is not None:
            return (yield from self._login(self.login, ask))
        token_url, _ = yield from self._endpoints()
        if self._derived is not None:
            from .derived import derived_grant

            limit, name, ready = self._transport.timeout, self.spec.name, self._ready
            plan = derived_grant(self._derived, self, token_url, limit, name, self._used, ready)
            return (yield from plan)
        external = yield from self._external_assertion()
        scrub = self._scrub.with_secrets((external,))
        prepare = functools.partial(self._preparer.grant, token_url, external, scrub)
        return (yield from self._call(prepare, scrub, token_url))

    def before_lock(self) -> Plan[None]:
        """What a renewal needs before it takes the cache's lock: the tokens of the auth
        objects a token exchange is made from (:func:`.derived.upstream_tokens`)."""
        self._ready = {}
        if self._derived is not None:
            from .derived import upstream_tokens

            limit, name = self._transport.timeout, self.spec.name
            self._ready = yield from upstream_tokens(self._derived, limit, name, self._used)

    def made_from(self, token: Token) -> bool:
        """Whether ``token`` (another auth object's) is the one the last token of a token
        exchange was made from (by its expiry, as :func:`.derived.derived_grant` notes it)."""
        return token.expires_at is not None and token.expires_at in self._used.values()

    def refresh(self, token: Token) -> Plan[Token]:
        """A refresh-token grant with ``token``'s refresh token."""
        _, refresh_url = yield from self._endpoints()
        external = yield from self._external_assertion()
        refresh = Secret(token.refresh_token or "")
        scrub = self._scrub.with_secrets((refresh, external))
        prepare = functools.partial(self._preparer.refresh, refresh_url, refresh, external, scrub)
        return (yield from self._call(prepare, scrub, refresh_url))

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
        prepare = functools.partial(self._preparer.revocation, url, value, hint, external, scrub)
        outcome = yield from self._send(prepare, scrub, "revocation")
        if not 200 <= outcome.status_code < 300:
            # Made by the reader, raised here: the reader's frame holds the server's
            # words unscrubbed (they may echo the token), this one only the error.
            raise self._answers.refused(outcome, scrub, "revocation refused: ")
        return hint

    # -- a person's login (:mod:`.login`) -------------------------------------------

    def _login(self, settings: LoginSettings, ask: bool | None) -> Plan[Token]:
        from . import login

        name = self.spec.name
        if not login.may_ask(settings, ask):
            raise login.login_required(settings, name, background=ask is False)
        token_url, _ = yield from self._endpoints()
        if settings.flow == "code":
            endpoint = yield from self._login_endpoint("authorization_endpoint")
            return (yield from login.code_login(settings, self, token_url, endpoint, name))
        endpoint = yield from self._login_endpoint("device_authorization_endpoint")
        scrub = self._scrub.with_secrets(())
        now = self._clock.monotonic
        return (
            yield from login.device_login(settings, self, token_url, endpoint, name, scrub, now)
        )

    def _login_endpoint(self, field: str) -> Plan[str]:
        """The authorization (or device authorization) endpoint: given, or discovered."""
        assert self.login is not None  # noqa: S101 - only logins ask
        given = (
            self.login.authorization_url
            if field == "authorization_endpoint"
            else self.login.device_authorization_url
        )
        if given is not None:
            return given
        found = None
        if self.discovery is not None:
            metadata = yield from self.discovery.metadata()
            found = getattr(metadata, field)
        if found is None:
            option = (
                "authorization_url" if field == "authorization_endpoint" else field[:-8] + "url"
            )
            raise ConfigurationError(
                f"{self.spec.name}: no {field.replace('_', ' ')}: give {option}=, or issuer= "
                f"of a server whose metadata names its {field}"
            )
        return str(found)

    def exchange(
        self,
        token_url: str,
        grant_type: str,
        secrets: Mapping[str, Secret],
        plain: Mapping[str, str],
    ) -> Plan[Token]:
        """A login's token call: the code (or device code) for a token."""
        external = yield from self._external_assertion()
        scrub = self._scrub.with_secrets((*secrets.values(), external))
        prepare = functools.partial(
            self._preparer.login_grant, token_url, grant_type, secrets, plain, external, scrub
        )
        return (yield from self._call(prepare, scrub, token_url))

    def device_authorization(self, url: str, scrub: Scrubber) -> Plan[RawResponse]:
        """The device authorization request (RFC 8628 §3.1): its 2xx answer."""
        external = yield from self._external_assertion()
        scrub.learn((external,))
        prepare = functools.partial(self._preparer.device_request, url, external, scrub)
        raw = yield from self._send(prepare, scrub, "device authorization")
        if not 200 <= raw.status_code < 300:
            raise self._answers.refused(raw, scrub, "device authorization refused: ")
        return raw

    def authorization_url(
        self, endpoint: str, redirect_uri: str, state: str, verifier: Secret
    ) -> str:
        """Where the person logs in (through Authlib: PKCE S256)."""
        return self._preparer.authorization_url(endpoint, redirect_uri, state, verifier)

    def prepare_grant(self) -> TokenRequest:
        """The full grant's request as the first attempt would send it (for tests and
        benchmarks: no discovery, no ``client_assertion=``)."""
        return self._preparer.grant(self.token_url or "", None, self._scrub.with_secrets(()))

    # -- the steps of a call -----------------------------------------------------

    def _call(self, prepare: Callable[[], TokenRequest], scrub: Scrubber, url: str) -> Plan[Token]:
        raw = yield from self._send(prepare, scrub, "token")
        if self._dpop is None:
            return self._answers.token(raw, scrub)
        fresh_nonce = self._dpop.observe(url, raw.headers.get("dpop-nonce"), server=True)
        if fresh_nonce and self._answers.details(raw).error == "use_dpop_nonce":
            # RFC 9449 §8: once more, with the nonce the server just gave.
            raw = yield from self._send(prepare, scrub, "token")
            self._dpop.observe(url, raw.headers.get("dpop-nonce"), server=True)
        self._nonce_unsettled(raw, scrub)
        return self._bind_to_key(self._answers.token(raw, scrub), self._dpop)

    def _nonce_unsettled(self, raw: RawResponse, scrub: Scrubber) -> None:
        """A final answer that still asks for a DPoP nonce is a TokenEndpointError.

        The request carried the nonce the server gave (or it gave none to carry), so the
        server broke RFC 9449 §8: a protocol failure to retry later, not refused
        credentials (a 400 would otherwise read as those, logged at ERROR).
        """
        if 200 <= raw.status_code < 300:
            return
        details = self._answers.details(raw)
        if details.error != "use_dpop_nonce":
            return
        if raw.headers.get("dpop-nonce"):
            what = "still asks for a DPoP nonce after being sent the one it gave"
        else:
            what = "asks for a DPoP nonce without giving one (no DPoP-Nonce header)"
        raise self._answers.error(
            TokenEndpointError,
            raw.status_code,
            details.error,
            f"the token endpoint {what} (RFC 9449 §8): a server fault, not refused "
            f"credentials; it said: {details.description}",
            scrub,
        )

    def _bind_to_key(self, token: Token, dpop: DPoP) -> Token:
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
            attempts_made = self._retry.retries + 1
            raise self._answers.unreachable(outcome.description, scrub, endpoint, attempts_made)
        return outcome

    def _prepared(self, prepare: Callable[[], TokenRequest], scrub: Scrubber) -> TokenRequest:
        """``prepare()``; anything unexpected (a user's hook raising) becomes an AuthError."""
        try:
            return prepare()
        except AuthError:
            raise
        except Exception as exc:
            error = self._answers.error(
                TokenEndpointError,
                None,
                None,
                f"the token request could not be prepared ({type(exc).__name__}: {exc})",
                scrub,
            )
            raise error from exc

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
