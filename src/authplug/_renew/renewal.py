"""Renewals and revocations as plans: cache effects around token calls, two drivers.

:class:`Renewer` writes each procedure once, as a generator. :meth:`Renewer.renewal`
takes the cache's lock, adopts a fresh token another process stored or renews from the
newest refresh token (a refused refresh falls back to the full grant), and stores the
result; :meth:`Renewer.revocation` revokes under the same lock. They yield
:class:`CacheLock`, :class:`CacheGet`, :class:`CacheSet` and :class:`CacheDelete` around
the token call plans of :mod:`authplug._call.plan` (``Send``/``Sleep``/``Call``,
``yield from``-ed), and get each effect's result back. A cache that fails comes back into
the plan as the :class:`~authplug.cache.CacheError` raised at that ``yield`` (``throw``),
and so does a send that got no answer (``TransportFailure``), so the plan decides what
either means: a cache that fails is reported and skipped.

The plans read the manager's state (the entry they are handed) but do not own it: a
renewal returns the new entry, a revocation the token it revoked, and the manager
applies the change under its lock.

:func:`run_renewal` performs the effects with blocking calls, :func:`arun_renewal` with
awaits (a token call's own effects through a :class:`Performer`); both hold the cache
lock (once taken) until the plan ends, and close the plan in a ``finally``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from .._call import plan as plans
from .._call.messages import RawResponse, TransportFailure
from .._call.plan import Effect, Plan, Send, watched
from .._redact import mask
from ..cache import CacheError
from ..errors import AuthError, ConfigurationError, CredentialsRejectedError, LoginRequiredError
from ..events import CacheLookup, Reason, Renewal, TokenCall, error_code
from ..token import Token, TokenState
from .report import (
    CacheFailed,
    CacheReached,
    CallStarting,
    ForeignKey,
    LoggedOut,
    NothingToRevoke,
    NotRevoked,
    RefreshExpired,
    RefreshRefused,
    Reporter,
    UsingShared,
)
from .schedule import Entry, entry_for, refresh_usable, state_of, time_left

if TYPE_CHECKING:
    from .._clock import Clock
    from .._dpop import DPoP
    from .._redact import Secret
    from ..cache import TokenCache

__all__ = [
    "CacheDelete",
    "CacheGet",
    "CacheLock",
    "CacheSet",
    "Performer",
    "RenewalPlan",
    "Renewer",
    "TokenSource",
    "arun_renewal",
    "run_renewal",
]

T = TypeVar("T")

log = logging.getLogger("authplug")


@dataclass(frozen=True, slots=True)
class CacheLock:
    """Take the cache's renewal lock, held until the plan ends; None comes back.

    ``hold``: the seconds the holder may need it (a person logging in), for a cache
    that takes it (``takes_hold``): the others wait as long, and a lease lasts as long.
    """

    hold: float | None = None


@dataclass(frozen=True, slots=True)
class CacheGet:
    """Read the shared token; the Token (or None) comes back."""


@dataclass(frozen=True, slots=True)
class CacheSet:
    """Store a token for the others; None comes back."""

    token: Token


@dataclass(frozen=True, slots=True)
class CacheDelete:
    """Remove the shared token (after a revocation); None comes back.

    A cache without ``delete``/``adelete`` (one written before they existed) keeps the
    entry, with a warning: the next renewal anywhere overwrites it.
    """


RenewalEffect = CacheLock | CacheGet | CacheSet | CacheDelete | Effect
RenewalPlan = Generator[RenewalEffect, Any, T]


class TokenSource(Protocol):
    """Where tokens come from (implemented by :class:`authplug._call.client.TokenClient`)."""

    @property
    def wait_limit(self) -> float: ...
    @property
    def needs_person(self) -> bool: ...
    def before_lock(self) -> Plan[None]: ...
    def made_from(self, token: Token) -> bool: ...
    def grant(self, ask: bool | None = None) -> Plan[Token]: ...
    def refresh(self, token: Token) -> Plan[Token]: ...
    def revoke(self, token: Token) -> Plan[str]: ...


@dataclass(frozen=True, slots=True)
class Performer:
    """Performs the token-call effects (``Send``/``Sleep``/``Call``) of a plan: the
    assembly binds :func:`authplug._call.plan.perform` and ``aperform`` to the token
    transport and the clock."""

    perform: Callable[[Effect], RawResponse | Secret | None]
    aperform: Callable[[Effect], Awaitable[RawResponse | Secret | None]]


def _no_delete(cache: TokenCache) -> None:
    log.warning(
        "%r has no delete(): the revoked token stays in it until the next renewal "
        "overwrites it (refused by the server meanwhile, then renewed)",
        cache,
    )


_FAILURES = (CacheError, TransportFailure)


def run_renewal(plan: RenewalPlan[T], cache: TokenCache, key: str, performer: Performer) -> T:
    """Run a renewal (or revocation) plan with blocking calls."""
    with contextlib.ExitStack() as held:

        def act(effect: RenewalEffect) -> Any:
            if isinstance(effect, CacheLock):
                if effect.hold is not None and getattr(cache, "takes_hold", False):
                    return held.enter_context(cache.lock(key, hold=effect.hold))  # type: ignore[call-arg]
                return held.enter_context(cache.lock(key))
            if isinstance(effect, CacheGet):
                return cache.get(key)
            if isinstance(effect, CacheSet):
                return cache.set(key, effect.token)
            if isinstance(effect, CacheDelete):
                delete = getattr(cache, "delete", None)
                return delete(key) if delete is not None else _no_delete(cache)
            return performer.perform(effect)

        return plans.drive(plan, act, _FAILURES)


async def arun_renewal(
    plan: RenewalPlan[T], cache: TokenCache, key: str, performer: Performer
) -> T:
    """Run a renewal (or revocation) plan without blocking the event loop."""
    async with contextlib.AsyncExitStack() as held:

        async def act(effect: RenewalEffect) -> Any:
            if isinstance(effect, CacheLock):
                if effect.hold is not None and getattr(cache, "takes_hold", False):
                    locked = cache.alock(key, hold=effect.hold)  # type: ignore[call-arg]
                    return await held.enter_async_context(locked)
                return await held.enter_async_context(cache.alock(key))
            if isinstance(effect, CacheGet):
                return await cache.aget(key)
            if isinstance(effect, CacheSet):
                return await cache.aset(key, effect.token)
            if isinstance(effect, CacheDelete):
                adelete = getattr(cache, "adelete", None)
                return await adelete(key) if adelete is not None else _no_delete(cache)
            return await performer.aperform(effect)

        return await plans.adrive(plan, act, _FAILURES)


class Renewer:
    """The renewal and revocation procedures of one auth object, as plans.

    It keeps one memory of its own: the refusal of the last refresh token tried, until a
    token call succeeds (it explains a later refusal of the full grant).
    """

    __slots__ = ("_clock", "_dpop", "_grant_type", "_leeway", "_lost_refresh", "_report", "_source")

    def __init__(
        self,
        *,
        source: TokenSource,
        clock: Clock,
        leeway: float,
        dpop: DPoP | None,
        reporter: Reporter,
        grant_type: str,
    ) -> None:
        self._source = source
        self._clock = clock
        self._leeway = leeway
        self._dpop = dpop
        self._report = reporter
        self._grant_type = grant_type
        self._lost_refresh: AuthError | None = None

    def made_from(self, token: Token) -> bool:
        """Whether ``token`` (another auth object's) is the one this object's tokens were
        made from last (a token exchange's subject)."""
        return self._source.made_from(token)

    def entry_for(self, token: Token) -> Entry:
        """``token`` with its due times, from now."""
        return entry_for(
            token, mono=self._clock.monotonic(), wall=self._clock.time(), leeway=self._leeway
        )

    def renewal(
        self,
        reason: str,
        entry: Entry | None,
        kind: Reason,
        background: bool = False,
        login: bool = False,
    ) -> RenewalPlan[tuple[Entry, bool]]:
        """Renew under the cache's lock: ``(the new entry, whether a call fetched it)``.

        ``reason`` is for the log, ``kind`` for the events; ``background``: a renewal
        started ahead of expiry, off the request path (it never asks a person);
        ``login``: an explicit login, which asks the person whatever is cached.
        """
        report, provider = self._report, self._report.provider
        if report.listening:
            report(Renewal(provider, kind, time_left(entry, self._clock.monotonic()), background))
        yield from self._source.before_lock()
        cached, read = yield from self._lock_and_read_cache()
        if login:
            token = yield from self._reported(self._source.grant(ask=True), self._grant_type, kind)
            self._lost_refresh = None
            yield from self._stored(token)
            return self.entry_for(token), True
        adopted, entry = self._weigh_cached(cached, entry)
        if report.listening:
            report(CacheLookup(provider, "outage" if not read else "hit" if adopted else "miss"))
        if adopted and entry is not None:
            return entry, False
        token = yield from self._obtain(reason, entry, kind, background)
        yield from self._stored(token)
        return self.entry_for(token), True

    def _stored(self, token: Token) -> RenewalPlan[None]:
        """Store ``token`` for the others; a cache that fails is reported."""
        try:
            yield CacheSet(token)
        except CacheError as exc:
            self._report(CacheFailed(exc))

    def revocation(
        self, current: Callable[[], Entry | None]
    ) -> RenewalPlan[tuple[Token, str] | None]:
        """Under the cache's lock (no other process renews meanwhile): revoke our token
        (``current()``, read once the lock is held), or the shared one when we have none;
        drop it from the cache. Returns the token revoked and what the server revoked
        (for the manager to forget it), or None when there was no token."""
        cached, _ = yield from self._lock_and_read_cache()
        entry = current()
        token = entry.token if entry is not None else cached
        if token is None:
            self._report(NothingToRevoke())
            return None
        which = yield from self._source.revoke(token)
        if cached is not None and cached.access_token == token.access_token:
            yield from self._deleted()
        return token, which

    def logout(self, current: Callable[[], Entry | None]) -> RenewalPlan[Token | None]:
        """Under the cache's lock: revoke the login where the server can (a server
        without a revocation endpoint, or one that fails, is reported, not raised: the
        person asked to be logged out) and drop it from the cache whatever happened.
        Returns the token forgotten, or None when there was none."""
        cached, _ = yield from self._lock_and_read_cache()
        entry = current()
        # The shared login first: with rotation, its refresh token is the newest.
        token = cached if cached is not None else entry.token if entry is not None else None
        revoked = False
        if token is not None:
            try:
                yield from self._source.revoke(token)
                revoked = True
            except ConfigurationError:
                self._report(NotRevoked("the server has no revocation endpoint"))
            except AuthError as exc:
                self._report(NotRevoked(str(exc)))
        yield from self._deleted()
        self._report(LoggedOut(revoked))
        return token

    def _deleted(self) -> RenewalPlan[None]:
        """Drop the shared entry; a cache that fails is reported."""
        try:
            yield CacheDelete()
        except CacheError as exc:
            self._report(CacheFailed(exc))

    def _lock_and_read_cache(self) -> RenewalPlan[tuple[Token | None, bool]]:
        """Take the cache's lock (held until the plan ends) and read the shared token:
        ``(the token or None, whether the read worked)``; a failure is reported.

        A person's login may hold the lock for as long as the person takes: a cache
        that can is asked to let the others wait that long (``hold``)."""
        source = self._source
        try:
            yield CacheLock(source.wait_limit if source.needs_person else None)
        except CacheError as exc:
            self._report(CacheFailed(exc))
        try:
            cached: Token | None = yield CacheGet()
        except CacheError as exc:
            self._report(CacheFailed(exc))
            return None, False
        self._report(CacheReached())
        return cached, True

    def _weigh_cached(self, cached: Token | None, entry: Entry | None) -> tuple[bool, Entry | None]:
        """Weigh the shared token against ours.

        Returns ``(True, its entry)`` when another process (or an earlier call) stored
        a fresh token: use it, no token call. Otherwise ``(False, basis)``: the entry
        to renew from, the shared one when it differs from ours (its refresh token is
        the newest, rotation included).
        """
        if cached is None or (
            entry is not None and cached.access_token == entry.token.access_token
        ):
            return False, entry
        dpop = self._dpop
        if cached.dpop_jkt is not None and (dpop is None or cached.dpop_jkt != dpop.jkt):
            # Bound to another key (RFC 9449): useless here, and never to be sent.
            self._report(ForeignKey())
            return False, entry
        candidate = self.entry_for(cached)
        if state_of(candidate, self._clock.monotonic()) is TokenState.FRESH:
            self._report(UsingShared(mask(cached.access_token)))
            return True, candidate
        return False, candidate

    def _obtain(
        self, reason: str, entry: Entry | None, kind: Reason, background: bool
    ) -> Plan[Token]:
        """The token calls: the refresh token if usable, else (or when refused) the grant
        (a person's login never in the background: :class:`LoginRequiredError`)."""
        basis = self._refresh_basis(entry)
        # A refresh token refused earlier (and dropped) still explains a grant refusal.
        refused = self._lost_refresh if basis is None else None
        if basis is not None:
            self._report(CallStarting("refresh_token", reason))
            try:
                token = yield from self._reported(
                    self._source.refresh(basis), "refresh_token", kind
                )
            except AuthError as exc:
                if not _refresh_refused(exc):
                    raise
                self._report(RefreshRefused(exc.status_code))
                refused = self._lost_refresh = exc
            else:
                self._lost_refresh = None
                return _keep_refresh_token(token, basis)
        grant_type = self._grant_type
        if background and self._source.needs_person:
            raise LoginRequiredError(
                "the login must be renewed by a person (no usable refresh token), and a "
                "background renewal asks nobody: the next request asks, where it may",
                provider=self._report.provider,
            )
        self._report(CallStarting(grant_type, reason))
        try:
            token = yield from self._reported(self._source.grant(), grant_type, kind)
        except CredentialsRejectedError as exc:
            if refused is None:
                raise
            raise _after_refused_refresh(exc, refused, grant_type) from refused
        self._lost_refresh = None
        return token

    def _reported(self, plan: Plan[Token], grant: str, kind: Reason) -> Plan[Token]:
        """``plan``, and a :class:`~authplug.events.TokenCall` reported when it ends (with
        nobody listening, ``plan`` itself: nothing is counted)."""
        if not self._report.listening:
            return (yield from plan)
        count = _AttemptCount()
        outcome: Literal["ok", "refused", "failed"] = "failed"
        status: int | None = None
        error: str | None = None
        try:
            token = yield from watched(plan, count.watch)
        except AuthError as exc:
            outcome = "refused" if isinstance(exc, CredentialsRejectedError) else "failed"
            status, error = exc.status_code, error_code(exc.error)
            raise
        else:
            outcome, status = "ok", count.status
            return token
        finally:
            self._report(
                TokenCall(
                    self._report.provider,
                    grant,
                    kind,
                    outcome,
                    count.attempts,
                    status if status is not None else count.status,
                    error,
                    time.perf_counter() - count.started,
                )
            )

    def _refresh_basis(self, entry: Entry | None) -> Token | None:
        """The token whose refresh token may be used, if any (never the bare string:
        a plain local would show in a traceback's locals)."""
        if entry is None or not entry.token.refresh_token:
            return None
        if not refresh_usable(entry, self._clock.monotonic()):
            self._report(RefreshExpired())
            return None
        return entry.token


class _AttemptCount:
    """What a token call's plan did: requests sent to the token endpoint, the last status."""

    __slots__ = ("attempts", "started", "status")

    def __init__(self) -> None:
        self.attempts = 0
        self.status: int | None = None
        self.started = time.perf_counter()

    def watch(self, effect: Effect, outcome: object) -> None:
        if isinstance(effect, Send) and effect.request.purpose == "token":
            self.attempts += 1
            self.status = outcome.status_code if isinstance(outcome, RawResponse) else None


def _keep_refresh_token(token: Token, basis: Token) -> Token:
    """A refresh answer without a refresh token keeps the one that was used."""
    if token.refresh_token is None:
        return dataclasses.replace(
            token,
            refresh_token=basis.refresh_token,
            refresh_expires_at=basis.refresh_expires_at,
        )
    return token


def _refresh_refused(exc: AuthError) -> bool:
    """Any 4xx except 429 on a refresh means: fall back to the full grant."""
    return exc.status_code is not None and 400 <= exc.status_code < 500 and exc.status_code != 429


def _after_refused_refresh(
    grant: CredentialsRejectedError, refresh: AuthError, grant_type: str
) -> CredentialsRejectedError:
    """The full grant's refusal, saying that the refresh token was refused first: with
    both gone (a rotated refresh token lost, credentials that allow no other grant),
    nothing is left to renew by, and the message names both."""
    said = refresh.error or f"HTTP {refresh.status_code}"
    return CredentialsRejectedError(
        f"the refresh token was refused ({said}), and the {grant_type} grant too: "
        f"{grant.description}",
        provider=grant.provider,
        status_code=grant.status_code,
        error=grant.error,
    )
