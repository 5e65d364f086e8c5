"""Tokens made from other credentials, as plans: token exchange (RFC 8693) and the JWT
bearer grant (RFC 7523 §2.1).

Each is the "full grant" of its class: :class:`~authplug._call.client.TokenClient` runs
it where the other classes send a password or client credentials, so an exchanged token
is renewed like any other (ahead of expiry, off the request path, on 401, single flight
across threads, tasks and processes). What it adds is the credential it is made from,
obtained afresh at each token call (:class:`TokenInput`): another auth object's current
token (renewed by that object), a file (read again each time: projected tokens rotate),
a sync or async callable, or a literal string; or, for the JWT bearer grant, an
assertion signed here with a fresh ``jti`` each time.

An exchanged token never outlives the auth object's token it was made from: its expiry
is capped at that token's, so both are renewed in turn.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .._redact import Secret
from ..errors import AuthError, ConfigurationError, TokenEndpointError
from .plan import Call, Plan

if TYPE_CHECKING:
    from .._assertion import AssertionSource, SigningKey
    from ..token import Token

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "JWT_BEARER_GRANT",
    "JWT_TYPE",
    "TOKEN_EXCHANGE",
    "Bearer",
    "DerivedGrant",
    "Exchange",
    "Exchanger",
    "TokenInput",
    "derived_grant",
    "upstream_tokens",
]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


class Upstream(Protocol):
    """An auth object whose token another is made from (:class:`authplug.BaseAuth`)."""

    def _token_newer_than(self, until: float | None) -> Token: ...
    async def _atoken_newer_than(self, until: float | None) -> Token: ...


class TokenInput:
    """A credential obtained afresh at each token call: another auth object's token, a
    file or a callable (an :class:`~authplug._assertion.AssertionSource`), or a string.

    ``obtain``/``aobtain`` return the secret and, for an auth object's token, the wall
    time it expires at (else None). ``used`` is the expiry of the auth object's token this
    caller used last (None the first time): the one returned is newer.
    """

    __slots__ = ("_literal", "_source", "option", "upstream")

    def __init__(self, value: object, option: str) -> None:
        self.option = option
        self.upstream: Upstream | None = None
        self._source: AssertionSource | None = None
        self._literal: Secret | None = None
        if hasattr(value, "_token_newer_than"):  # an auth object of this package
            self.upstream = value  # type: ignore[assignment]
        elif isinstance(value, Secret):
            self._literal = value
        elif isinstance(value, os.PathLike) or callable(value) or _names_a_file(value):
            from .._assertion import AssertionSource

            self._source = AssertionSource(value, option=option)
        elif isinstance(value, str) and value.strip():
            self._literal = Secret(value.strip())
        else:
            raise ConfigurationError(
                f"{option}= takes an authplug auth object, a file's path, a callable "
                "returning the token, or the token itself"
            )

    def __repr__(self) -> str:
        if self.upstream is not None:
            return f"TokenInput({self.option}: {self.upstream!r})"
        if self._source is not None:
            return f"TokenInput({self.option}: {self._source!r})"
        return f"TokenInput({self.option}: a string)"

    @property
    def kind(self) -> str:
        """``"auth"``, ``"file"``, ``"sync"``/``"async"`` (a callable) or ``"string"``."""
        if self.upstream is not None:
            return "auth"
        return self._source.kind if self._source is not None else "string"

    def obtain(self, limit: float, used: float | None) -> tuple[Secret, float | None]:
        if self.upstream is not None:
            token = self.upstream._token_newer_than(used)
            return Secret(token.access_token), token.expires_at
        if self._source is not None:
            return self._source.obtain_within(limit), None
        assert self._literal is not None  # noqa: S101 - one of the three is set
        return self._literal, None

    async def aobtain(self, limit: float, used: float | None) -> tuple[Secret, float | None]:
        if self.upstream is not None:
            token = await self.upstream._atoken_newer_than(used)
            return Secret(token.access_token), token.expires_at
        if self._source is not None:
            return await self._source.aobtain(limit), None
        assert self._literal is not None  # noqa: S101
        return self._literal, None


def _names_a_file(value: object) -> bool:
    """A string that is a path (an existing file, or one written like a path): a token
    has no slash at its start and names no file."""
    if not isinstance(value, str) or not value or "\n" in value or len(value) > 4096:
        return False
    if value.startswith(("/", "./", "../", "~")):
        return True
    try:
        return Path(value).is_file()
    except OSError:
        return False


@dataclass(frozen=True, slots=True, eq=False)
class Exchange:
    """RFC 8693 §2.1: the subject token (and an actor token) with their types, and the
    type of token asked for (``audience``, ``resource`` and ``scope`` are the options')."""

    subject: TokenInput
    subject_type: str
    actor: TokenInput | None = None
    actor_type: str | None = None
    requested_token_type: str | None = None

    def inputs(self) -> tuple[TokenInput, ...]:
        """What the token is made from, obtained at each token call."""
        return (self.subject,) if self.actor is None else (self.subject, self.actor)


@dataclass(frozen=True, slots=True, eq=False)
class Bearer:
    """RFC 7523 §2.1: the assertion given, or one signed here (``signer``) with these
    claims (``audience`` None: the token endpoint)."""

    assertion: TokenInput | None
    signer: SigningKey | None = None
    issuer: str | None = None
    subject: str | None = None
    audience: str | None = None

    def inputs(self) -> tuple[TokenInput, ...]:
        """What the token is made from, obtained at each token call (none when signed here)."""
        return () if self.assertion is None else (self.assertion,)


DerivedGrant = Exchange | Bearer


class Exchanger(Protocol):
    """The token call a derived grant (or a login) makes: a grant of ``grant_type`` with
    these secrets and plain parameters (:meth:`TokenClient.exchange`)."""

    def exchange(
        self,
        token_url: str,
        grant_type: str,
        secrets: Mapping[str, Secret],
        plain: Mapping[str, str],
    ) -> Plan[Token]: ...


Ready = dict[str, tuple[Secret, "float | None"]]


def upstream_tokens(
    grant: DerivedGrant, limit: float, provider: str, used: dict[str, float | None]
) -> Plan[Ready]:
    """The tokens of the auth objects ``grant`` is made from, obtained before the renewal
    takes its cache's lock: their own renewals take locks of their own (the same file's,
    when they share a cache), which must never wait for the lock this one holds."""
    ready: Ready = {}
    for source in grant.inputs():
        if source.upstream is not None:
            expiries: list[float] = []
            secret = yield _obtained(source, limit, used, expiries, provider)
            ready[source.option] = (secret, expiries[0] if expiries else None)
    return ready


def derived_grant(
    grant: DerivedGrant,
    calls: Exchanger,
    token_url: str,
    limit: float,
    provider: str,
    used: dict[str, float | None],
    ready: Ready,
) -> Plan[Token]:
    """One token call of a derived grant: its credentials obtained now (or ``ready``,
    taken before the cache's lock by :func:`upstream_tokens`), then the call.

    ``used``: the caller's memory of the expiry of each auth object's token it used last
    (by option name), updated here: the next renewal asks for newer ones.
    """
    secrets: dict[str, Secret] = {}
    plain: dict[str, str] = {}
    expiries: list[float] = []

    def credential(source: TokenInput) -> Plan[Secret]:
        if source.option in ready:
            secret, until = ready.pop(source.option)
            if until is not None:
                expiries.append(until)
            return secret
        obtained: Secret = yield _obtained(source, limit, used, expiries, provider)
        return obtained

    if isinstance(grant, Exchange):
        secrets["subject_token"] = yield from credential(grant.subject)
        plain["subject_token_type"] = grant.subject_type
        if grant.actor is not None and grant.actor_type is not None:
            secrets["actor_token"] = yield from credential(grant.actor)
            plain["actor_token_type"] = grant.actor_type
        if grant.requested_token_type is not None:
            plain["requested_token_type"] = grant.requested_token_type
        grant_type = TOKEN_EXCHANGE
    else:
        if grant.signer is not None:
            assert grant.issuer is not None  # noqa: S101 - the class requires it
            secrets["assertion"] = grant.signer.grant_assertion(
                grant.issuer, grant.subject or grant.issuer, grant.audience or token_url
            )
        else:
            assert grant.assertion is not None  # noqa: S101 - one of the two is given
            secrets["assertion"] = yield from credential(grant.assertion)
        grant_type = JWT_BEARER_GRANT
    token = yield from calls.exchange(token_url, grant_type, secrets, plain)
    if expiries and (token.expires_at is None or token.expires_at > min(expiries)):
        # Never past the token it was made from: renewed when that one is.
        return dataclasses.replace(token, expires_at=min(expiries))
    return token


def _obtained(
    source: TokenInput,
    limit: float,
    used: dict[str, float | None],
    expiries: list[float],
    provider: str,
) -> Call:
    """The effect that obtains ``source``'s credential (its expiry noted in ``expiries``
    and, as the one used last, in ``used``)."""

    def noted(secret: Secret, until: float | None) -> Secret:
        if until is not None:
            expiries.append(until)
        used[source.option] = until
        return secret

    def failed(exc: Exception) -> TokenEndpointError:
        return TokenEndpointError(
            f"the {source.option} could not be obtained: {exc}", provider=provider
        )

    def sync() -> Secret:
        try:
            return noted(*source.obtain(limit, used.get(source.option)))
        except AuthError:  # the other auth object's own error, as it is
            raise
        except Exception as exc:
            raise failed(exc) from (None if isinstance(exc, ValueError) else exc)

    async def asynchronous() -> Secret:
        try:
            return noted(*await source.aobtain(limit, used.get(source.option)))
        except AuthError:  # the other auth object's own error, as it is
            raise
        except Exception as exc:
            raise failed(exc) from (None if isinstance(exc, ValueError) else exc)

    return Call(sync, asynchronous)
