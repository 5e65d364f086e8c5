"""The token brain: when to renew, who renews, and what a renewal does.

It imports neither requests nor httpx: the adapters ask it for a token before a
request (:meth:`TokenManager.get`) and after a refusal (:meth:`TokenManager.renew_rejected`).
Timing lives in :mod:`.schedule`, waiting in :mod:`.flight`, the renewal and
revocation procedures (one plan each for sync and async) in :mod:`.renewal`, log lines
and events in :mod:`.report`; this module holds the state and decides who renews.

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

Who leads, and where (a thread, the pool, a task on the caller's loop): see
:mod:`.leaders`. A forked child starts with a lock of its own, no flight and no backoff.

A refusal after a refusal: the credentials work, the permission does not. Refusals are
then handed back without renewal for :data:`REFUSAL_QUIET` seconds (:mod:`.schedule`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import _aio
from .._fork import reset_after_fork
from .._redact import mask
from ..errors import AuthError, CredentialsRejectedError, LoginRequiredError
from ..events import Reason
from ..token import Token, TokenState
from . import at_exit, pool, report
from .explicit import ExplicitActions
from .flight import Abandoned, Fail, Flight, Follow, Lead, Outcome, Use, error_of
from .leaders import DetachedLeaders, Leaders, aborted
from .renewal import RenewalPlan, arun_renewal, run_renewal
from .schedule import (
    REFUSAL_QUIET,
    Backoff,
    Entry,
    QuietRefusals,
    reason_for,
    reason_kind,
    state_of,
    time_left,
)

if TYPE_CHECKING:
    from .._clock import Clock
    from .._dpop import DPoP
    from ..cache import TokenCache
    from .renewal import Performer, Renewer

__all__ = ["FAILURE_MEMORY", "REFUSAL_QUIET", "TokenManager"]

#: Seconds a failed renewal is remembered (and re-raised without a call).
FAILURE_MEMORY = 1.0

_REFUSED = "the API refused the token"  # the reason of a renewal after a 401


def _asks_person(flight: Flight, error: BaseException) -> bool:
    """A background renewal that needed a person: not a failure to remember (the next
    request on the request path may ask)."""
    return flight.background and isinstance(error, LoginRequiredError)


class TokenManager(ExplicitActions):
    """Holds one token and decides when to renew it, and who renews."""

    def __init__(
        self,
        *,
        renewer: Renewer,
        performer: Performer,
        reporter: report.Reporter,
        cache: TokenCache,
        key: str,
        clock: Clock,
        on_token: Callable[[Token], object] | None,
        initial: Token | None,
        wait_limit: float,
        dpop: DPoP | None = None,
        threads: bool = True,
        persist: float | None = None,
    ) -> None:
        self._renewer, self._performer = renewer, performer  # the plans; their token calls
        self._report = reporter  # the log, on_event=, OpenTelemetry (:mod:`.report`)
        #: Renewals run in threads (async callers' included); False when only the
        #: caller's loop can drive the cache or the client assertion (redis.asyncio).
        self._threads = threads
        #: Seconds a renewal under way is awaited at exit (see :mod:`.at_exit`) for a
        #: cache that outlives the process; None for a memory cache.
        self._persist = persist
        #: The DPoP key tokens are bound to (the adapters make proofs with it), or None.
        self.dpop = dpop
        self._provider = reporter.provider
        self._cache = cache
        self._key = key
        self._clock = clock
        self._on_token = on_token
        self._wait_limit = wait_limit
        self._lock = threading.Lock()
        self._flight: Flight | None = None
        self._failure: tuple[AuthError, float] | None = None
        self._refusals = QuietRefusals()
        self._detached = DetachedLeaders()
        self._backoff = Backoff()
        self._closed = False
        self._leaders = Leaders(self._lock)  # for settle(): logging and on_token included
        self._entry = renewer.entry_for(initial) if initial else None
        reset_after_fork(self)
        if persist is not None:
            at_exit.guard_sigterm()

    def __repr__(self) -> str:
        return f"TokenManager(provider={self._provider!r})"

    def _after_fork(self) -> None:
        """In a forked child: a lock of its own, no flight, no task of the parent's."""
        self._lock = threading.Lock()
        self._leaders = Leaders(self._lock)
        self._flight = None
        self._detached = DetachedLeaders()
        self._backoff = Backoff()  # the parent's failures are not this process's

    # -- lifecycle ---------------------------------------------------------------

    def settle(self, timeout: float) -> bool:
        """Wait until every leader is done (its logging and ``on_token`` included);
        False if one is still at work after ``timeout``."""
        return self._leaders.settle(timeout)

    async def asettle(self, timeout: float) -> bool:
        """Async :meth:`settle`: the event loop keeps turning (and runs the renewal)."""
        return await self._leaders.asettle(timeout)

    def close(self) -> None:
        """Start no more background renewals (one under way finishes and its token is
        stored). Requests still work: an expired token is renewed on the request path."""
        self._closed = True

    async def aclose(self, budget: float = 0.0) -> None:
        """:meth:`close`. A renewal under way on this event loop (one that only the loop
        can drive: see ``threads``) is awaited up to ``budget`` seconds, since the loop
        may end next; past that it is cancelled, so that none is left on the loop."""
        self._closed = True
        await self._detached.end(budget)

    # -- state -------------------------------------------------------------------

    @property
    def token(self) -> Token | None:
        entry = self._entry
        return entry.token if entry else None

    def state(self, entry: Entry | None = None) -> TokenState:
        return state_of(entry if entry is not None else self._entry, self._clock.monotonic())

    def _quiet(self) -> bool:
        return self._refusals.quiet(self._clock.monotonic())

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
            flight = self._running_flight()
            if flight is not None:
                return Follow(flight, entry)
            if self._failure is not None:
                error, when = self._failure
                if self._clock.monotonic() - when < FAILURE_MEMORY:
                    return Fail(error, entry)
            self._flight = Flight(reason, loop, kind)
            self._leaders.add()
            return Lead(self._flight, entry)

    def _background_flight(self, entry: Entry, loop: _aio.Loop | None) -> Flight | None:
        """A background flight to lead for ``entry``, unless one runs or may not start."""
        with self._lock:
            if self._closed or self._entry is not entry:
                return None
            if self._running_flight() is not None:
                return None
            now = self._clock.monotonic()
            if not self._backoff.ready(now):
                return None
            flight = Flight(reason_for(entry, now), loop, reason_kind(entry, now))
            self._flight = flight
            flight.background = True
            self._leaders.add()
            return flight

    def _running_flight(self) -> Flight | None:
        """The flight under way, once a stranded one is abandoned (lock held)."""
        flight = self._flight
        if flight is not None and flight.stranded(self._wait_limit):
            self._abandon(flight)
            return None
        return flight

    def _abandon(self, flight: Flight) -> None:
        """Drop a flight its leader cannot finish (called with the lock held)."""
        self._flight = None
        self._detached.drop_closed()
        self._report(report.FlightAbandoned(flight.loop is not None and flight.loop.is_closed()))
        flight.abandoned = True
        self._leaders.done(flight)  # whatever its leader does later, it is not waited for
        flight.complete(None, None)  # wakes its waiters, who join the next flight

    def _use_stale(self, outcome: Outcome, rejected: Token | None, exc: AuthError) -> Token:
        """A renewal failed while the token is still valid: it goes out anyway."""
        entry = outcome.entry if isinstance(outcome, (Follow, Lead, Fail)) else None
        if rejected is None and entry is not None and self.state(entry) is TokenState.STALE:
            self._report(report.FallingBack(exc))
            return entry.token
        raise exc

    # -- refusals ----------------------------------------------------------------

    def replay_refused(self, token: Token) -> None:
        """The API refused the token a renewal after its refusal just gave: refusals
        go unanswered a while (see :class:`.schedule.QuietRefusals`)."""
        with self._lock:
            if self._quiet():
                return
            quiet = self._refusals.refused_again(token, self._clock.monotonic())
        self._report(report.RefusalsQuiet(REFUSAL_QUIET) if quiet else report.AdoptedRefused())

    def replaying(self, where: str, status: int) -> None:
        """An adapter sends a refused request once more, with a renewed token."""
        self._report(report.Replaying(where, status))

    # -- sync --------------------------------------------------------------------

    def get(self) -> Token:
        """A token to send now: the current one, or a renewed one.

        A token due for renewal but still valid is returned at once, and one renewal
        starts in a daemon thread (stale while revalidate).
        """
        token = self._sendable(in_pool=True)
        return token if token is not None else self._renew(None)

    def _sendable(self, *, in_pool: bool) -> Token | None:
        """The current token unless it expired; a due one starts its background
        renewal, queued in the pool or (``in_pool=False``) detached on this loop."""
        entry = self._entry
        if entry is None:
            return None
        state = self.state(entry)
        if state is TokenState.STALE:
            loop = None if in_pool else _aio.current()
            flight = self._background_flight(entry, loop)
            if flight is not None and loop is None:
                pool.submit(functools.partial(self._lead_queued, flight, entry))
            elif flight is not None and loop is not None:
                self._detached.spawn(loop, self._alead(flight, entry))
        return None if state is TokenState.INVALID else entry.token

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
                if isinstance(outcome, Follow) and _asks_person(outcome.flight, exc):
                    continue  # a background renewal could not ask: this caller may
                return self._use_stale(outcome, rejected, exc)
            raise AssertionError(outcome)  # not reachable: the four outcomes are above

    def _queued(self, flight: Flight) -> bool:
        """Whether ``flight`` is a background renewal still queued for a pool worker, now
        claimed by a caller whose token expired: it runs at once, not behind others'."""
        return self._threads and flight.background and flight.claim()

    def _lead_queued(self, flight: Flight, entry: Entry | None) -> None:
        """A pool worker's job: lead a background renewal, unless a caller claimed it."""
        if flight.claim():
            self._lead_in_thread(flight, entry)

    def _lead_in_thread(self, flight: Flight, entry: Entry | None) -> None:
        """A renewal thread's whole work: lead one renewal, keep its failure to the log."""
        try:
            self._lead(flight, entry)
        except Exception as exc:  # settled already; nobody would see it raised here
            self._report(report.Unexpected(exc))

    def _lead(self, flight: Flight, entry: Entry | None) -> None:
        if self._persist is not None:
            at_exit.track(flight, self._persist)
        try:
            renewed = run_renewal(
                self._plan_for(flight, entry), self._cache, self._key, self._performer
            )
        except BaseException as exc:
            if not self._settle_failed(flight, exc):
                raise
        else:
            self._settle_renewed(flight, *renewed)
        finally:
            self._leaders.end(flight)
            if self._persist is not None:
                at_exit.untrack(flight)

    # -- async -------------------------------------------------------------------

    async def aget(self) -> Token:
        """Async :meth:`get`; a due renewal runs in a detached task."""
        token = self.ready()
        return token if token is not None else await self._arenew(None)

    def ready(self) -> Token | None:
        """The token to send now without waiting, if there is one (called on a running
        event loop: a due renewal starts in a detached task on it); None when the
        caller must wait for a renewal (:meth:`aget`)."""
        return self._sendable(in_pool=self._threads)

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
                        pool.spawn(functools.partial(self._lead_in_thread, flight, entry))
                        return await flight.await_outcome(self._wait_limit)
                    case Lead(flight, entry):
                        self._detached.spawn(loop, self._alead(flight, entry))
                        return await flight.await_outcome(self._wait_limit)
                    case Follow(flight, entry):
                        if self._queued(flight):  # waiting in the pool's queue: run it now
                            pool.spawn(functools.partial(self._lead_in_thread, flight, entry))
                        return await flight.await_outcome(self._wait_limit)
            except Abandoned:
                continue
            except AuthError as exc:
                if isinstance(outcome, Follow) and _asks_person(outcome.flight, exc):
                    continue  # a background renewal could not ask: this caller may
                return self._use_stale(outcome, rejected, exc)
            raise AssertionError(outcome)  # not reachable: the four outcomes are above

    async def _alead(self, flight: Flight, entry: Entry | None) -> None:
        try:
            renewed = await arun_renewal(
                self._plan_for(flight, entry), self._cache, self._key, self._performer
            )
        except BaseException as exc:
            if self._settle_failed(flight, exc):
                return
            if not isinstance(exc, Exception):  # cancelled (aclose), or its loop closed
                raise
            # A detached task: nobody would see this exception. The waiters got an
            # AuthError; the log keeps the cause (the traceback at DEBUG only).
            self._report(report.Unexpected(exc))
        else:
            self._settle_renewed(flight, *renewed)
        finally:
            self._leaders.end(flight)

    # -- a leader's outcome, once for sync and async --------------------------------

    def _plan_for(self, flight: Flight, entry: Entry | None) -> RenewalPlan[tuple[Entry, bool]]:
        return self._renewer.renewal(
            flight.reason, entry, flight.kind, flight.background, flight.login
        )

    def _settle_renewed(self, flight: Flight, entry: Entry, fetched: bool) -> None:
        """The renewal gave ``entry`` (``fetched`` by a token call, or adopted from the
        cache): it replaces the current token; a fetched one goes to ``on_token``."""
        with self._lock:
            if kept := self._release_flight(flight):
                failures = self._backoff.failures
                self._entry = entry
                self._refusals.adopted = None if fetched else entry.token
                self._failure = None
                self._backoff.succeeded()
        if kept:  # reported before the waiters wake: what they read next is complete
            self._report(report.Renewed(failures))
            flight.complete(entry.token, None)
            self.tell_followers(entry.token)
        if fetched:
            self._notify(entry.token)

    def _settle_failed(self, flight: Flight, exc: BaseException) -> bool:
        """The renewal raised ``exc``: settle ``flight`` with it. True for an error of
        the package's own (remembered for FAILURE_MEMORY); otherwise its waiters get an
        AuthError and the leader deals with ``exc``. Only an interruption (a
        cancellation, KeyboardInterrupt) is not counted as a failure."""
        ours, counted = isinstance(exc, AuthError), isinstance(exc, Exception)
        error = exc if isinstance(exc, AuthError) else aborted(exc, self._provider)
        now = self._clock.monotonic()
        with self._lock:
            if not self._release_flight(flight):
                return ours
            refused = isinstance(error, CredentialsRejectedError)
            pause = self._backoff.failed(now, refused=refused) if counted else 0.0
            if ours and not _asks_person(flight, error):
                self._failure = (error, now)
                if flight.reason == _REFUSED:
                    self._entry = None  # do not keep sending a refused token
            current, failures = self._entry, self._backoff.failures
        if counted:
            left = time_left(current, self._clock.monotonic())
            self._report(report.RenewalFailed(error, flight.background, failures, pause, left))
        flight.complete(None, error)
        return ours

    def _release_flight(self, flight: Flight) -> bool:
        """``flight`` is over: no longer the one under way. False when it was abandoned
        (its leader outlived it: a newer flight owns the state). Lock held."""
        if flight.abandoned:
            self._report(report.LateLeader())
            return False
        if self._flight is flight:
            self._flight = None
        return True

    def _notify(self, token: Token) -> None:
        self._report(report.NewToken(mask(token.access_token)))
        if self._on_token is None:
            return
        try:
            self._on_token(token)
        except Exception as exc:  # a user's callback must not break requests
            self._report(report.CallbackRaised(type(exc).__name__))
