"""The token brain: when to renew, who renews, and what a renewal does.

It imports neither requests nor httpx: the adapters ask it for a token before a
request (:meth:`TokenManager.get`) and after a refusal (:meth:`TokenManager.renew_rejected`).
Timing lives in :mod:`._schedule`, waiting in :mod:`._flight`, the renewal's cache
effects in :mod:`._renewal`; this module decides.

What a caller gets (``get()``/``aget()``; ``renew_rejected()`` after a refusal):

=============================  ==========================================================
the current token is           the caller
=============================  ==========================================================
FRESH                          uses it
STALE (due, still valid)       uses it; a background renewal starts unless one runs, the
                               object is closed, or failed renewals are backing off
INVALID / none, flight runs    follows the flight (waits for its outcome)
INVALID / none, failed < 1 s   fails with a copy of that failure, no call
INVALID / none, otherwise      leads a new flight
refused by the API             a different current token: uses it; else as INVALID (a
                               renewal after a refusal; none while refusals are quiet)
=============================  ==========================================================

A flight ends with a token (it replaces the current one, the backoff is cleared) or an
error (remembered for :data:`FAILURE_MEMORY` seconds, the backoff grows; after a
refusal the refused token is dropped, otherwise a still-valid token stays in use).

Who leads. A sync caller leads in its own thread; an async caller, in a thread of its
own (:func:`._pool.spawn`) that it awaits; a background renewal, whoever started it,
in the shared pool of renewal threads (:mod:`._pool`), unless a caller whose token
expired meanwhile claims it from the queue. So no event loop ending, and no task
cancelled, cuts a token call halfway: its answer is stored. Only where the loop alone
can drive the renewal (``threads=False``: a redis.asyncio client, an async assertion
callable) does an async caller lead in a detached task on its loop. Waiters, threads
and tasks alike, give up after ``wait_limit``. A flight whose leader can no longer
finish it (its event loop was closed under it, or it outlived the wait limit) is
abandoned and led anew by the next caller. With a persistent cache, each renewal
under way is registered with :mod:`._exit`, which lets it finish at exit. A forked
child starts with a lock of its own, no flight and no backoff (``os.register_at_fork``).

A refusal after a refusal. When the API refuses a token that was just renewed because
it refused the previous one, renewing again will not help: the credentials work, the
permission does not. Refusals are then handed back without renewal for
:data:`REFUSAL_QUIET` seconds (logged once).

What a renewal does (:meth:`TokenManager._renewal`, one plan for sync and async): take
the cache's lock; adopt a fresh token another process stored, or renew from the newest
refresh token (a refused refresh falls back to the full grant); store the result. A
cache that fails is logged once and skipped: requests go on with this process's token.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .. import _aio
from .._call.messages import RawResponse
from .._call.plan import Send, watched
from .._fork import reset_after_fork
from .._redact import mask
from ..cache import CacheError
from ..errors import AuthError, CredentialsRejectedError, TokenEndpointError
from ..events import CacheLookup, Event, Fallback, Reason, Replay, TokenCall, error_code
from ..events import Renewal as RenewalStarted
from ..token import Token, TokenState
from . import at_exit as _exit
from . import pool as _pool
from .flight import Abandoned, Fail, Flight, Follow, Lead, Outcome, Use, error_of
from .renewal import CacheDelete, CacheGet, CacheLock, CacheSet, Renewal, adrive, drive
from .schedule import (
    Backoff,
    Entry,
    entry_for,
    reason_for,
    reason_kind,
    refresh_usable,
    state_of,
    time_left,
)

if TYPE_CHECKING:
    from .._call.plan import Effect, Plan
    from .._clock import Clock
    from .._dpop import DPoP
    from .._redact import Secret
    from ..cache import TokenCache

__all__ = ["FAILURE_MEMORY", "REFUSAL_QUIET", "TokenManager", "TokenSource"]

log = logging.getLogger("authplug")

#: Seconds a failed renewal is remembered (and re-raised without a call).
FAILURE_MEMORY = 1.0

#: Seconds refusals go unanswered after a freshly renewed token was refused too.
REFUSAL_QUIET = 60.0

_REFUSED = "the API refused the token"  # the reason of a renewal after a 401


class TokenSource(Protocol):
    """Where tokens come from (implemented by :class:`authplug._call.authlib.TokenClient`)."""

    @property
    def wait_limit(self) -> float: ...
    def grant(self) -> Plan[Token]: ...
    def refresh(self, token: Token) -> Plan[Token]: ...
    def revoke(self, token: Token) -> Plan[str]: ...
    def step(self, effect: Effect) -> RawResponse | Secret | None: ...
    async def astep(self, effect: Effect) -> RawResponse | Secret | None: ...


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


def _refresh_refused(exc: AuthError) -> bool:
    """Any 4xx except 429 on a refresh means: fall back to the full grant."""
    return exc.status_code is not None and 400 <= exc.status_code < 500 and exc.status_code != 429


class TokenManager:
    """Holds one token and decides when and how to renew it."""

    def __init__(
        self,
        *,
        source: TokenSource,
        provider: str,
        cache: TokenCache,
        key: str,
        leeway: float,
        clock: Clock,
        on_token: Callable[[Token], object] | None,
        initial: Token | None,
        wait_limit: float,
        grant_type: str,
        dpop: DPoP | None = None,
        observers: Sequence[Callable[[Event], object]] = (),
        threads: bool = True,
        persist: float | None = None,
    ) -> None:
        self._source = source
        #: Renewals run in threads (blocking cache and token calls), async callers'
        #: included; False when only the caller's event loop can drive the cache or the
        #: client assertion (a redis.asyncio client, an async callable).
        self._threads = threads
        #: The cache outlives the process: seconds a renewal under way is awaited at
        #: exit (see :mod:`._exit`); None for a memory cache.
        self._persist = persist
        #: Told of each event (``on_event=``, OpenTelemetry): see :mod:`authplug.events`.
        self._observers = tuple(observers)
        #: The DPoP key tokens are bound to (the adapters make proofs with it), or None.
        self.dpop = dpop
        self._provider = provider
        self._cache = cache
        self._key = key
        self._leeway = leeway
        self._clock = clock
        self._on_token = on_token
        self._wait_limit = wait_limit
        self._grant_type = grant_type
        self._lock = threading.Lock()
        self._flight: Flight | None = None
        self._failure: tuple[AuthError, float] | None = None
        self._quiet_until: float | None = None
        #: The current token when a renewal adopted it from the cache (another process
        #: fetched it) rather than fetching it: its refusal proves nothing about the
        #: permission, since that process may have rotated it away already.
        self._adopted: Token | None = None
        #: The refusal of the last refresh token tried, until a token call succeeds.
        self._lost_refresh: AuthError | None = None
        self._tasks: dict[_aio.Task, _aio.Loop] = {}  # detached leaders, by their loop
        self._cache_down = False
        self._backoff = Backoff()
        self._refusal_logged = False  # the ERROR about refused credentials, once
        self._closed = False
        self._leaders = 0  # leaders still at work (logging and on_token included)
        self._idle = threading.Condition(self._lock)
        self._entry = self._entry_for(initial) if initial else None
        reset_after_fork(self)
        if persist is not None:
            _exit.guard_sigterm()

    def __repr__(self) -> str:
        return f"TokenManager(provider={self._provider!r})"

    def _after_fork(self) -> None:
        """In a forked child: a lock of its own, no flight, no task of the parent's."""
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._leaders = 0
        self._flight = None
        self._tasks = {}
        self._backoff = Backoff()  # the parent's failures are not this process's

    # -- lifecycle ---------------------------------------------------------------

    def settle(self, timeout: float) -> bool:
        """Wait until every leader is done (its logging and ``on_token`` included);
        False if one is still at work after ``timeout``."""
        with self._idle:
            return self._idle.wait_for(lambda: self._leaders == 0, timeout)

    async def asettle(self, timeout: float) -> bool:
        """Async :meth:`settle`: the event loop keeps turning (and runs the renewal)."""
        end = time.monotonic() + timeout
        while self._leaders:
            if time.monotonic() >= end:
                return False
            await _aio.sleep(0.005)
        return True

    def _led(self, flight: Flight) -> None:
        """The leader of ``flight`` is done with everything (called last)."""
        with self._idle:
            self._release(flight)

    def _release(self, flight: Flight) -> None:
        """Count the leader of ``flight`` out, once (called with the lock held)."""
        if flight.leading:
            flight.leading = False
            self._leaders -= 1
            self._idle.notify_all()

    def close(self) -> None:
        """Start no more background renewals. One under way finishes in its thread and
        its token is stored: a token call that reached the endpoint is never dropped.

        Requests still work afterwards: a token that comes due is renewed on the
        request path when it expires, as on first use.
        """
        self._closed = True

    async def aclose(self, budget: float = 0.0) -> None:
        """:meth:`close`. A renewal under way on this event loop (one that only the loop
        can drive: see ``threads``) is awaited up to ``budget`` seconds, since the loop
        may end next; past that it is cancelled, so that none is left on the loop."""
        self._closed = True
        loop = _aio.current()
        mine = [task for task, where in list(self._tasks.items()) if loop.same(where)]
        end = time.monotonic() + budget
        while not all(task.done() for task in mine) and time.monotonic() < end:
            await _aio.sleep(0.005)
        for task in mine:
            if not task.done():
                task.cancel()
        while not all(task.done() for task in mine):
            await _aio.sleep(0.001)

    # -- state -------------------------------------------------------------------

    @property
    def token(self) -> Token | None:
        entry = self._entry
        return entry.token if entry else None

    def _entry_for(self, token: Token) -> Entry:
        return entry_for(
            token, mono=self._clock.monotonic(), wall=self._clock.time(), leeway=self._leeway
        )

    def state(self, entry: Entry | None = None) -> TokenState:
        return state_of(entry if entry is not None else self._entry, self._clock.monotonic())

    def _quiet(self) -> bool:
        """Refusals go unanswered: a freshly renewed token was refused too, lately."""
        until = self._quiet_until
        return until is not None and self._clock.monotonic() < until

    def _join(self, rejected: Token | None, loop: _aio.Loop | None) -> Outcome:
        """The caller's outcome, by the table of the module docstring."""
        kind: Reason
        with self._lock:
            entry = self._entry
            if rejected is not None:
                if entry is not None and entry.token.access_token != rejected.access_token:
                    return Use(entry.token)  # someone renewed it already
                reason, kind = _REFUSED, "refused"
            else:
                if self.state(entry) is TokenState.FRESH and entry is not None:
                    return Use(entry.token)
                now = self._clock.monotonic()
                reason, kind = reason_for(entry, now), reason_kind(entry, now)
            flight = self._flight
            if flight is not None and flight.stranded(self._wait_limit):
                self._abandon(flight)
                flight = None
            if flight is not None:
                return Follow(flight, entry)
            if self._failure is not None:
                error, when = self._failure
                if self._clock.monotonic() - when < FAILURE_MEMORY:
                    return Fail(error, entry)
            self._flight = Flight(reason, loop, kind)
            self._leaders += 1
            return Lead(self._flight, entry)

    def _behind(self, entry: Entry, loop: _aio.Loop | None) -> Flight | None:
        """A background flight to lead for ``entry``, unless one runs or may not start."""
        with self._lock:
            if self._closed or self._entry is not entry:
                return None
            flight = self._flight
            if flight is not None and flight.stranded(self._wait_limit):
                self._abandon(flight)
                flight = None
            if flight is not None or not self._backoff.ready(self._clock.monotonic()):
                return None
            now = self._clock.monotonic()
            flight = Flight(reason_for(entry, now), loop, reason_kind(entry, now))
            self._flight = flight
            flight.background = True
            self._leaders += 1
            return flight

    def _abandon(self, flight: Flight) -> None:
        """Drop a flight its leader cannot finish (called with the lock held)."""
        self._flight = None
        self._tasks = {t: at for t, at in list(self._tasks.items()) if not at.is_closed()}
        log.warning(
            "%s: the token call in progress was abandoned (%s); starting a new one",
            self._provider,
            "its event loop was closed" if flight.loop and flight.loop.is_closed() else "stuck",
        )
        flight.abandoned = True
        self._release(flight)  # whatever its leader does later, it is not waited for
        flight.complete(None, None)  # wakes its waiters, who join the next flight

    def _finish(
        self,
        flight: Flight,
        entry: Entry | None,
        error: AuthError | None,
        *,
        remember: bool,
        counted: bool = True,
        fetched: bool = True,
    ) -> None:
        """Settle ``flight``: keep its token (``fetched`` by a token call, or adopted from
        the cache), or count its error (unless it was only interrupted:
        ``counted=False``) for the backoff and the log."""
        now = self._clock.monotonic()
        with self._lock:
            if flight.abandoned:
                # A leader that outlived its flight: a newer flight owns the state now.
                log.debug("%s: a token call ended after it was abandoned", self._provider)
                return
            if self._flight is flight:
                self._flight = None
            failures = self._backoff.failures
            pause = 0.0
            if entry is not None:
                self._entry = entry
                self._adopted = None if fetched else entry.token
                self._failure = None
                self._backoff.succeeded()
                self._refusal_logged = False
            elif error is not None and counted:
                refused = isinstance(error, CredentialsRejectedError)
                pause = self._backoff.failed(now, refused=refused)
                if remember:
                    self._failure = (error, now)
                    if flight.reason == _REFUSED:
                        self._entry = None  # do not keep sending a refused token
            current = self._entry
        if error is not None and counted and entry is None:
            self._fell_back(current, error)
        # Logged before the waiters wake: what they (and tests) read next is complete.
        if entry is not None:
            if failures:
                log.info("%s: token renewed after %d failed attempts", self._provider, failures)
        elif error is not None and counted:
            self._log_failure(flight, error, current, pause)
        flight.complete(entry.token if entry else None, error)

    def _log_failure(
        self, flight: Flight, error: AuthError, current: Entry | None, pause: float
    ) -> None:
        """How a background renewal failed (its caller, if any, gets the exception).

        Refused credentials: ERROR, once until a renewal succeeds. Anything else:
        WARNING at the first failure, INFO at the next ones.
        """
        if not flight.background:
            return
        if isinstance(error, CredentialsRejectedError):
            if not self._refusal_logged:
                self._refusal_logged = True
                log.error(
                    "%s: the token endpoint refused the credentials (%s); the current token "
                    "is used until it expires, renewal is retried every %.0fs",
                    self._provider,
                    error,
                    pause,
                )
            return
        left = current.deadline - self._clock.monotonic() if current and current.deadline else 0
        log.log(
            logging.WARNING if self._backoff.failures == 1 else logging.INFO,
            "%s: background token renewal failed (%s); the current token is used for its "
            "last %.0fs, next attempt in %.0fs",
            self._provider,
            error,
            max(left, 0.0),
            pause,
        )

    def _fallback(self, outcome: Outcome, rejected: Token | None, exc: AuthError) -> Token:
        """A renewal failed while the token is still valid: it goes out anyway."""
        entry = outcome.entry if isinstance(outcome, (Follow, Lead, Fail)) else None
        if rejected is None and entry is not None and self.state(entry) is TokenState.STALE:
            log.warning(
                "%s: token renewal failed (%s); using the current token until it expires",
                self._provider,
                exc,
            )
            return entry.token
        raise exc

    # -- refusals ----------------------------------------------------------------

    def replay_refused(self, token: Token) -> None:
        """The API refused the token a renewal after its refusal just gave.

        Renewing again would only cost token calls: the refusal is about the
        permission, not the token. Refusals go unanswered for REFUSAL_QUIET seconds;
        unless the token was adopted from the cache, not fetched: another process may
        have rotated it away meanwhile, and the next refusal adopts the newest one.
        """
        with self._lock:
            if self._quiet():
                return
            if token is self._adopted:
                adopted = True
            else:
                adopted = False
                self._quiet_until = self._clock.monotonic() + REFUSAL_QUIET
        if adopted:
            # Another process fetched it and may have rotated it away since (servers
            # that revoke the access token at each refresh): the next refusal renews.
            log.info(
                "%s: the API refused the token adopted from the cache too; it may have "
                "been rotated since: the next refusal renews",
                self._provider,
            )
            return
        log.warning(
            "%s: the API refused a freshly renewed token too; the credentials work but "
            "the permission does not. Refusals are handed back without renewing for %.0fs",
            self._provider,
            REFUSAL_QUIET,
        )

    def replaying(self, where: str, status: int) -> None:
        """An adapter sends a refused request once more, with a renewed token."""
        log.info(
            "%s: the API answered %d; replaying the request with a renewed token", where, status
        )
        if self._observers:
            self._emit(Replay(self._provider, status))

    # -- sync --------------------------------------------------------------------

    def get(self) -> Token:
        """A token to send now: the current one, or a renewed one.

        A token due for renewal but still valid is returned at once, and one renewal
        starts in a daemon thread (stale while revalidate).
        """
        entry = self._entry
        if entry is not None:
            state = self.state(entry)
            if state is TokenState.FRESH:
                return entry.token
            if state is TokenState.STALE:
                flight = self._behind(entry, None)
                if flight is not None:
                    _pool.submit(functools.partial(self._lead_behind, flight, entry))
                return entry.token
        return self._renew(None)

    def renew_rejected(self, rejected: Token) -> Token | None:
        """The API refused ``rejected``: a new token (or the one another caller got).

        None while refusals go unanswered (see :meth:`replay_refused`): hand the
        refusal back as it is.
        """
        if self._quiet():
            return None
        return self._renew(rejected)

    def _renew(self, rejected: Token | None) -> Token:
        while True:
            outcome = self._join(rejected, None)
            try:
                match outcome:
                    case Use(token):
                        return token
                    case Fail(error, _):
                        raise error_of(error)
                    case Lead(flight, entry):
                        self._lead(flight, entry)
                        return flight.wait(self._wait_limit)
                    case Follow(flight, entry):
                        if self._queued(flight):  # waiting in the pool's queue: run it here
                            self._lead(flight, entry)
                        return flight.wait(self._wait_limit)
            except Abandoned:
                continue  # its leader's loop is gone: the next join leads anew
            except AuthError as exc:
                return self._fallback(outcome, rejected, exc)
            raise AssertionError(outcome)  # not reachable: the four outcomes are above

    def _queued(self, flight: Flight) -> bool:
        """Whether ``flight`` is a background renewal still waiting for a pool worker,
        now claimed by the caller, who must wait for it (its token expired meanwhile):
        it then runs at once, not behind other objects' renewals."""
        return self._threads and flight.background and flight.claim()

    def _lead_behind(self, flight: Flight, entry: Entry | None) -> None:
        """A pool worker's job: lead a background renewal, unless a caller that had to
        wait for it claimed it first."""
        if flight.claim():
            self._lead_logged(flight, entry)

    def _lead_logged(self, flight: Flight, entry: Entry | None) -> None:
        """A renewal thread's whole work: lead one renewal, keep its failure to the log."""
        try:
            self._lead(flight, entry)
        except Exception as exc:  # settled already; nobody would see it raised here
            self._log_unexpected(exc)

    def _lead(self, flight: Flight, entry: Entry | None) -> None:
        if self._persist is not None:
            _exit.track(flight, self._persist)
        self._started(flight, entry)
        try:
            new, fetched = drive(
                self._renewal(flight.reason, entry, flight.kind),
                self._cache,
                self._key,
                self._source,
            )
        except AuthError as exc:
            self._finish(flight, None, exc, remember=True)
            return
        except Exception as exc:
            self._finish(flight, None, self._aborted(exc), remember=False)
            raise
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: not a failed attempt
            self._finish(flight, None, self._aborted(exc), remember=False, counted=False)
            raise
        else:
            self._finish(flight, new, None, remember=False, fetched=fetched)
            if fetched:
                self._notify(new.token)
        finally:
            self._led(flight)
            if self._persist is not None:
                _exit.untrack(flight)

    # -- async -------------------------------------------------------------------

    async def aget(self) -> Token:
        """Async :meth:`get`; a due renewal runs in a detached task."""
        token = self.ready()
        return token if token is not None else await self._arenew(None)

    def ready(self) -> Token | None:
        """The token to send now without waiting, if there is one (called on a running
        event loop: a due renewal starts in a detached task on it); None when the
        caller must wait for a renewal (:meth:`aget`)."""
        entry = self._entry
        if entry is None:
            return None
        state = self.state(entry)
        if state is TokenState.FRESH:
            return entry.token
        if state is TokenState.STALE:
            if self._threads:
                flight = self._behind(entry, None)
                if flight is not None:
                    _pool.submit(functools.partial(self._lead_behind, flight, entry))
                return entry.token
            loop = _aio.current()
            flight = self._behind(entry, loop)
            if flight is not None:
                self._detach(loop, self._alead(flight, entry))
            return entry.token
        return None

    async def arenew_rejected(self, rejected: Token) -> Token | None:
        """Async :meth:`renew_rejected`."""
        if self._quiet():
            return None
        return await self._arenew(rejected)

    async def _arenew(self, rejected: Token | None) -> Token:
        loop = _aio.current()
        # A leader in a thread of its own: the token call outlives this loop if it ends.
        where = None if self._threads else loop
        while True:
            outcome = self._join(rejected, where)
            try:
                match outcome:
                    case Use(token):
                        return token
                    case Fail(error, _):
                        raise error_of(error)
                    case Lead(flight, entry) if where is None:
                        _pool.spawn(functools.partial(self._lead_logged, flight, entry))
                        return await flight.wait_async(self._wait_limit)
                    case Lead(flight, entry):
                        self._detach(loop, self._alead(flight, entry))
                        return await flight.wait_async(self._wait_limit)
                    case Follow(flight, entry):
                        if self._queued(flight):  # waiting in the pool's queue: run it now
                            _pool.spawn(functools.partial(self._lead_logged, flight, entry))
                        return await flight.wait_async(self._wait_limit)
            except Abandoned:
                continue
            except AuthError as exc:
                return self._fallback(outcome, rejected, exc)
            raise AssertionError(outcome)  # not reachable: the four outcomes are above

    def _detach(self, loop: _aio.Loop, work: Coroutine[None, None, None]) -> None:
        task = loop.spawn(work, self._forget)
        if not task.done():
            self._tasks[task] = loop  # a strong reference until it ends

    def _forget(self, task: _aio.Task) -> None:
        self._tasks.pop(task, None)

    async def _alead(self, flight: Flight, entry: Entry | None) -> None:
        self._started(flight, entry)
        try:
            new, fetched = await adrive(
                self._renewal(flight.reason, entry, flight.kind),
                self._cache,
                self._key,
                self._source,
            )
        except AuthError as exc:
            self._finish(flight, None, exc, remember=True)
            return
        except Exception as exc:
            # A detached task: nobody would see this exception. The waiters get an
            # AuthError; the log keeps the cause (the traceback at DEBUG only).
            self._finish(flight, None, self._aborted(exc), remember=False)
            self._log_unexpected(exc)
            return
        except BaseException as exc:  # cancelled (aclose), or closed with its event loop
            self._finish(flight, None, self._aborted(exc), remember=False, counted=False)
            raise
        else:
            self._finish(flight, new, None, remember=False, fetched=fetched)
            if fetched:
                self._notify(new.token)
        finally:
            self._led(flight)

    # -- revocation ----------------------------------------------------------------

    def revoke(self) -> bool:
        """Revoke the token at the server (RFC 7009), then forget it here and in the
        cache. False when there was no token; a failure raises and forgets nothing."""
        return drive(self._revocation(), self._cache, self._key, self._source)

    async def arevoke(self) -> bool:
        """Async :meth:`revoke`."""
        return await adrive(self._revocation(), self._cache, self._key, self._source)

    def _revocation(self) -> Renewal[bool]:
        """Under the cache's lock (no other process renews meanwhile): revoke our token,
        or the shared one when we have none; then drop it from both places."""
        cached = yield from self._shared()
        entry = self._entry
        token = entry.token if entry is not None else cached
        if token is None:
            log.info("%s: no token to revoke", self._provider)
            return False
        which = yield from self._source.revoke(token)
        with self._lock:
            if self._entry is not None and self._entry.token.access_token == token.access_token:
                self._entry = None
            self._failure = None
        if cached is not None and cached.access_token == token.access_token:
            try:
                yield CacheDelete()
            except CacheError as exc:
                self._cache_failed(exc)
        log.info("%s: revoked the %s; the token is forgotten", self._provider, which)
        return True

    # -- the renewal, once for sync and async --------------------------------------

    def _renewal(
        self, reason: str, entry: Entry | None, kind: Reason
    ) -> Renewal[tuple[Entry, bool]]:
        """Renew under the cache's lock: ``(the new entry, whether a call fetched it)``."""
        cached = yield from self._shared()
        adopted, entry = self._consider(cached, entry)
        if self._observers:  # the read just failed when the cache is down
            result: Literal["hit", "miss", "outage"] = (
                "outage" if self._cache_down else "hit" if adopted else "miss"
            )
            self._emit(CacheLookup(self._provider, result))
        if adopted and entry is not None:
            return entry, False
        token = yield from self._obtain(reason, entry, kind)
        try:
            yield CacheSet(token)
        except CacheError as exc:
            self._cache_failed(exc)
        return self._entry_for(token), True

    def _shared(self) -> Renewal[Token | None]:
        """Take the cache's lock (held until the plan ends) and read the shared token;
        None when there is none or the cache is down (logged once)."""
        try:
            yield CacheLock()
        except CacheError as exc:
            self._cache_failed(exc)
        try:
            cached: Token | None = yield CacheGet()
        except CacheError as exc:
            self._cache_failed(exc)
            return None
        self._cache_ok()
        return cached

    def _obtain(self, reason: str, entry: Entry | None, kind: Reason) -> Generator[Any, Any, Token]:
        """The token calls: the refresh token if usable, else (or when refused) the grant."""
        basis = self._refresh_basis(entry)
        # A refresh token refused earlier (and dropped) still explains a grant refusal.
        refused = self._lost_refresh if basis is None else None
        if basis is not None:
            self._log_call("refresh_token", reason)
            try:
                token = yield from self._observed(
                    self._source.refresh(basis), "refresh_token", kind
                )
            except AuthError as exc:
                if not _refresh_refused(exc):
                    raise
                self._log_refused(exc)
                refused = self._lost_refresh = exc
            else:
                self._lost_refresh = None
                return self._keep_refresh_token(token, basis)
        self._log_call(self._grant_type, reason)
        try:
            token = yield from self._observed(self._source.grant(), self._grant_type, kind)
        except CredentialsRejectedError as exc:
            if refused is None:
                raise
            raise _after_refused_refresh(exc, refused, self._grant_type) from refused
        self._lost_refresh = None
        return token

    def _observed(self, plan: Plan[Token], grant: str, kind: Reason) -> Plan[Token]:
        """``plan``, and a :class:`~authplug.events.TokenCall` when it ends (with no
        observer, ``plan`` itself: nothing is counted)."""
        if not self._observers:
            return (yield from plan)
        call = _Call()
        outcome: Literal["ok", "refused", "failed"] = "failed"
        status: int | None = None
        error: str | None = None
        try:
            token = yield from watched(plan, call.watch)
        except AuthError as exc:
            outcome = "refused" if isinstance(exc, CredentialsRejectedError) else "failed"
            status, error = exc.status_code, error_code(exc.error)
            raise
        else:
            outcome, status = "ok", call.status
            return token
        finally:
            self._emit(
                TokenCall(
                    self._provider,
                    grant,
                    kind,
                    outcome,
                    call.attempts,
                    status if status is not None else call.status,
                    error,
                    time.perf_counter() - call.started,
                )
            )

    def _fell_back(self, current: Entry | None, error: AuthError) -> None:
        """A renewal failed: the current token, if still valid, stays in use."""
        if self._observers and current is not None:
            left = time_left(current, self._clock.monotonic())
            if left is not None and left > 0:
                self._emit(Fallback(self._provider, left, error_code(error.error)))

    def _started(self, flight: Flight, entry: Entry | None) -> None:
        if self._observers:
            left = time_left(entry, self._clock.monotonic())
            self._emit(RenewalStarted(self._provider, flight.kind, left, flight.background))

    def _emit(self, event: Event) -> None:
        """Tell every observer; one that raises is logged and otherwise ignored."""
        for observe in self._observers:
            try:
                observe(event)
            except Exception as exc:  # observing must never break a request
                log.warning("%s: an event observer raised %s", self._provider, type(exc).__name__)

    # -- shared helpers ----------------------------------------------------------

    def _cache_failed(self, exc: CacheError) -> None:
        """One warning when the cache goes down; requests go on with our own token."""
        if not self._cache_down:
            self._cache_down = True
            log.warning(
                "%s: the token cache is unavailable (%s); going on with this process's "
                "own token until it is back",
                self._provider,
                exc,
            )
        else:
            log.debug("%s: the token cache is still unavailable (%s)", self._provider, exc)

    def _cache_ok(self) -> None:
        if self._cache_down:
            self._cache_down = False
            log.info("%s: the token cache is reachable again", self._provider)

    def _consider(self, cached: Token | None, entry: Entry | None) -> tuple[bool, Entry | None]:
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
        if cached.dpop_jkt is not None and (self.dpop is None or cached.dpop_jkt != self.dpop.jkt):
            # Bound to another key (RFC 9449): useless here, and never to be sent.
            log.warning(
                "%s: the cached token is bound to another DPoP key; not used", self._provider
            )
            return False, entry
        candidate = self._entry_for(cached)
        if self.state(candidate) is TokenState.FRESH:
            log.info(
                "%s: using a token renewed elsewhere (%s), no token call",
                self._provider,
                mask(cached.access_token),
            )
            return True, candidate
        return False, candidate

    def _refresh_basis(self, entry: Entry | None) -> Token | None:
        """The token whose refresh token may be used, if any (never the bare string:
        a plain local would show in a traceback's locals)."""
        if entry is None or not entry.token.refresh_token:
            return None
        if not refresh_usable(entry, self._clock.monotonic()):
            log.info("%s: the refresh token has expired; using the full grant", self._provider)
            return None
        return entry.token

    @staticmethod
    def _keep_refresh_token(token: Token, basis: Token) -> Token:
        """A refresh answer without a refresh token keeps the one that was used."""
        if token.refresh_token is None:
            return dataclasses.replace(
                token,
                refresh_token=basis.refresh_token,
                refresh_expires_at=basis.refresh_expires_at,
            )
        return token

    def _aborted(self, exc: BaseException) -> AuthError:
        if _aio.is_cancellation(exc):
            description = "the token call was cancelled"
        else:
            description = f"the token call failed unexpectedly ({type(exc).__name__})"
        return TokenEndpointError(description, provider=self._provider)

    def _log_unexpected(self, exc: Exception) -> None:
        """A leader nobody waits on failed outside the package's errors: log the cause
        (the traceback at DEBUG only: its frames may show request data)."""
        log.warning("%s: the token call failed unexpectedly: %r", self._provider, exc)
        log.debug("%s: traceback of the failed token call", self._provider, exc_info=exc)

    def _notify(self, token: Token) -> None:
        log.debug("%s: new token %s", self._provider, mask(token.access_token))
        if self._on_token is None:
            return
        try:
            self._on_token(token)
        except Exception as exc:  # a user's callback must not break requests
            log.warning("%s: the on_token callback raised %s", self._provider, type(exc).__name__)

    def _log_call(self, grant: str, reason: str) -> None:
        log.info("%s: token call, %s grant (reason: %s)", self._provider, grant, reason)

    def _log_refused(self, exc: AuthError) -> None:
        log.info(
            "%s: the refresh token was refused (HTTP %s); falling back to the full grant",
            self._provider,
            exc.status_code,
        )


class _Call:
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
