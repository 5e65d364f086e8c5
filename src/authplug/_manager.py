"""The token brain: when to renew, single flight, refresh-then-full-grant.

It imports neither requests nor httpx: the adapters ask it for a token before a
request (:meth:`TokenManager.get`) and after a refusal (:meth:`TokenManager.renew_rejected`).

Single flight. One renewal at a time per manager, whoever asks: threads and asyncio
tasks join the same :class:`_Flight`. A thread leads a flight in its own thread; a
task leads it in a detached task, so that cancelling the task that started it strands
no one. Threads wait on an event, tasks on a future resolved through
``call_soon_threadsafe``: waiting never blocks an event loop. A failed flight is
remembered for :data:`FAILURE_MEMORY` seconds so a failing endpoint is not hammered.

Nobody waits forever. Every waiter, thread or task, gives up after ``wait_limit`` (the
longest a token call may take, retries and cache waits included). A flight whose
leader can no longer finish it is abandoned and led anew by the next caller: its
event loop was closed under it, or it outlived the wait limit. A forked child starts
with a lock of its own and no flight (``os.register_at_fork``).

A refusal after a refusal. When the API refuses a token that was just renewed because
it refused the previous one, renewing again will not help: the credentials work, the
permission does not. Refusals are then handed back without renewal for
:data:`REFUSAL_QUIET` seconds (logged once).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from ._fork import reset_after_fork
from ._redact import mask
from ._schedule import Backoff, due_at
from .cache import CacheError
from .errors import AuthError, CredentialsRejectedError, TokenEndpointError
from .token import Token, TokenState, parse_number

if TYPE_CHECKING:
    from ._clock import Clock
    from ._plan import Plan
    from .cache import TokenCache

__all__ = ["FAILURE_MEMORY", "REFUSAL_QUIET", "TokenManager", "TokenSource"]

log = logging.getLogger("authplug")

T = TypeVar("T")

#: Seconds a failed renewal is remembered (and re-raised without a call).
FAILURE_MEMORY = 1.0

#: Seconds refusals go unanswered after a freshly renewed token was refused too.
REFUSAL_QUIET = 60.0

#: A waiter looks this often (seconds) whether its flight was abandoned.
_POLL = 0.5

_REFUSED = "the API refused the token"  # the reason of a renewal after a 401


class TokenSource(Protocol):
    """Where tokens come from (implemented by :class:`authplug._authlib.TokenClient`)."""

    @property
    def wait_limit(self) -> float: ...
    def grant(self) -> Plan[Token]: ...
    def refresh(self, token: Token) -> Plan[Token]: ...
    def run(self, plan: Plan[T]) -> T: ...
    async def arun(self, plan: Plan[T]) -> T: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    """A token with its deadlines on this process's monotonic clock."""

    token: Token
    deadline: float | None  # the access token expires
    renew_at: float | None  # proactive renewal is due
    refresh_deadline: float | None  # the refresh token expires


class _Abandoned(Exception):
    """The flight's leader can no longer finish it: join a new one."""


class _Flight:
    """One renewal in progress and everyone waiting for it."""

    __slots__ = (
        "_callbacks",
        "_event",
        "_lock",
        "abandoned",
        "background",
        "error",
        "loop",
        "reason",
        "started",
        "token",
    )

    def __init__(self, reason: str, loop: asyncio.AbstractEventLoop | None) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.reason = reason
        self.loop = loop  # the loop of an async leader
        self.started = time.monotonic()  # real time: waiting is real, whatever the clock
        self.token: Token | None = None
        self.error: AuthError | None = None
        self.abandoned = False  # its waiters join a new flight
        self.background = False  # led off the request path, for a token still valid

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def settled(self, timeout: float) -> bool:
        """Wait (blocking) until the flight ends; False on timeout."""
        return self._event.wait(timeout)  # the manager let go of it before it ended

    def stranded(self, limit: float) -> bool:
        """The leader cannot finish: its loop is closed, or it outlived the wait limit."""
        if self.done:
            return False
        if self.loop is not None and self.loop.is_closed():
            return True
        return time.monotonic() - self.started > limit

    def complete(self, token: Token | None, error: AuthError | None) -> bool:
        """Settle the flight once; False when it was settled already."""
        with self._lock:
            if self._event.is_set():
                return False
            self.token, self.error = token, error
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()
        return True

    def _outcome(self) -> Token:
        if self.abandoned:
            raise _Abandoned
        if self.token is None:
            raise _error_of(self.error)
        return self.token

    def _gave_up(self, limit: float) -> TokenEndpointError:
        return TokenEndpointError(
            f"gave up after {limit:.0f}s waiting for the token call in progress"
        )

    def wait(self, limit: float) -> Token:
        if not self._event.is_set():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not None and running is self.loop:
                raise TokenEndpointError(
                    "a blocking HTTP call on the event loop's thread is waiting for a token "
                    "call that this same loop runs; use an async client inside async code"
                )
            # A leader on another event loop may have its loop closed under it: look
            # now and then. A thread leader always settles its flight.
            step = limit if self.loop is None else _POLL
            end = time.monotonic() + limit
            while not self._event.wait(max(0.0, min(step, end - time.monotonic()))):
                if self.loop is not None and self.loop.is_closed():
                    raise _Abandoned
                if time.monotonic() >= end:
                    raise self._gave_up(limit)
        return self._outcome()

    async def wait_async(self, limit: float) -> Token:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not future.done():
                future.set_result(None)

        def notify() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(resolve)

        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(notify)
                pending = True
            else:
                pending = False
        if not pending:
            return self._outcome()
        step = limit if self.loop is None or self.loop is loop else _POLL
        end = time.monotonic() + limit
        while not future.done():
            left = end - time.monotonic()
            if left <= 0:
                raise self._gave_up(limit)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(future), min(step, left))
            if not future.done() and self.loop is not None and self.loop.is_closed():
                raise _Abandoned
        return self._outcome()


@dataclass(frozen=True, slots=True)
class _Join:
    """What a caller does after looking at the current state."""

    token: Token | None = None  # use this, nothing to renew
    flight: _Flight | None = None  # wait for (or lead) this
    leader: bool = False
    entry: _Entry | None = None  # the entry seen when joining
    error: AuthError | None = None  # a remembered failure


def _error_of(error: AuthError | None) -> AuthError:
    """The error to raise for an outcome without a token (a fresh copy of ``error``)."""
    if error is None:  # not reachable: a flight ends with a token or an error
        return TokenEndpointError("the token call ended without a token or an error")
    return error.clone()


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
    ) -> None:
        self._source = source
        self._provider = provider
        self._cache = cache
        self._key = key
        self._leeway = leeway
        self._clock = clock
        self._on_token = on_token
        self._wait_limit = wait_limit
        self._grant_type = grant_type
        self._lock = threading.Lock()
        self._flight: _Flight | None = None
        self._failure: tuple[AuthError, float] | None = None
        self._quiet_until: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._cache_down = False
        self._backoff = Backoff()
        self._refusal_logged = False  # the ERROR about refused credentials, once
        self._closed = False
        self._entry = self._entry_for(initial) if initial else None
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"TokenManager(provider={self._provider!r})"

    def _after_fork(self) -> None:
        """In a forked child: a lock of its own, no flight, no task of the parent's."""
        self._lock = threading.Lock()
        self._flight = None
        self._tasks = set()
        self._backoff = Backoff()  # the parent's failures are not this process's

    # -- lifecycle ---------------------------------------------------------------

    def settle(self, timeout: float) -> bool:
        """Wait until no token call is under way; False if one still is after ``timeout``."""
        end = time.monotonic() + timeout
        while (flight := self._flight) is not None:
            if not flight.settled(max(0.0, end - time.monotonic())):
                return False
        return True

    async def asettle(self, timeout: float) -> bool:
        """Async :meth:`settle`: the event loop keeps turning (and runs the renewal)."""
        end = time.monotonic() + timeout
        while (flight := self._flight) is not None:
            left = end - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(AuthError, _Abandoned):
                await flight.wait_async(left)
        return True

    def close(self) -> None:
        """Start no more background renewals (one under way ends on its own).

        Requests still work afterwards: a token that comes due is renewed on the
        request path, as on first use.
        """
        self._closed = True

    async def aclose(self) -> None:
        """:meth:`close`, and cancel this event loop's token calls under way."""
        self._closed = True
        loop = asyncio.get_running_loop()
        mine = [task for task in list(self._tasks) if task.get_loop() is loop]
        for task in mine:
            task.cancel()
        await asyncio.gather(*mine, return_exceptions=True)

    # -- state -------------------------------------------------------------------

    @property
    def token(self) -> Token | None:
        entry = self._entry
        return entry.token if entry else None

    def _entry_for(self, token: Token) -> _Entry:
        """Put a token on the monotonic clock.

        A token fetched here has a known lifetime: renew when less than ``leeway``
        remains, but not before half of it has passed. A token from elsewhere has its
        ``issued_at`` (cache) or nothing (handed in): only ``leeway`` applies then.
        """
        mono, wall = self._clock.monotonic(), self._clock.time()
        refresh_deadline = (
            mono + (token.refresh_expires_at - wall) if token.refresh_expires_at else None
        )
        if token.expires_at is None:
            return _Entry(token, None, None, refresh_deadline)
        deadline = mono + (token.expires_at - wall)
        issued = mono + (token.issued_at - wall) if token.issued_at is not None else None
        renew_at = due_at(
            deadline=deadline,
            leeway=self._leeway,
            issued=issued,
            lifetime=token.lifetime,
            refresh_in=parse_number(token.extra.get("refresh_in")),
        )
        return _Entry(token, deadline, renew_at, refresh_deadline)

    def state(self, entry: _Entry | None = None) -> TokenState:
        entry = entry if entry is not None else self._entry
        if entry is None:
            return TokenState.INVALID
        if entry.deadline is None or entry.renew_at is None:
            return TokenState.FRESH
        now = self._clock.monotonic()
        if now >= entry.deadline:
            return TokenState.INVALID
        if now >= entry.renew_at:
            return TokenState.STALE
        return TokenState.FRESH

    def _reason(self, entry: _Entry | None) -> str:
        if entry is None:
            return "first use"
        if entry.deadline is None:
            return "no token"
        left = entry.deadline - self._clock.monotonic()
        return f"token expires in {left:.0f}s" if left > 0 else "token expired"

    def _quiet(self) -> bool:
        """Refusals go unanswered: a freshly renewed token was refused too, lately."""
        until = self._quiet_until
        return until is not None and self._clock.monotonic() < until

    def _join(self, rejected: Token | None, loop: asyncio.AbstractEventLoop | None) -> _Join:
        with self._lock:
            entry = self._entry
            if rejected is not None:
                if entry is not None and entry.token.access_token != rejected.access_token:
                    return _Join(token=entry.token)  # someone renewed it already
                reason = _REFUSED
            else:
                if entry is not None and self.state(entry) is TokenState.FRESH:
                    return _Join(token=entry.token)
                reason = self._reason(entry)
            flight = self._flight
            if flight is not None and flight.stranded(self._wait_limit):
                self._abandon(flight)
                flight = None
            if flight is not None:
                return _Join(flight=flight, entry=entry)
            if self._failure is not None:
                error, when = self._failure
                if self._clock.monotonic() - when < FAILURE_MEMORY:
                    return _Join(entry=entry, error=error)
            self._flight = _Flight(reason, loop)
            return _Join(flight=self._flight, leader=True, entry=entry)

    def _abandon(self, flight: _Flight) -> None:
        """Drop a flight its leader cannot finish (called with the lock held)."""
        self._flight = None
        self._tasks = {t for t in self._tasks if not t.get_loop().is_closed()}
        log.warning(
            "%s: the token call in progress was abandoned (%s); starting a new one",
            self._provider,
            "its event loop was closed" if flight.loop and flight.loop.is_closed() else "stuck",
        )
        flight.abandoned = True
        flight.complete(None, None)  # wakes its waiters, who join the next flight

    def _finish(
        self, flight: _Flight, entry: _Entry | None, error: AuthError | None, *, remember: bool
    ) -> None:
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
                self._failure = None
                self._backoff.succeeded()
                self._refusal_logged = False
            elif error is not None:
                refused = isinstance(error, CredentialsRejectedError)
                pause = self._backoff.failed(now, refused=refused)
                if remember:
                    self._failure = (error, now)
                    if flight.reason == _REFUSED:
                        self._entry = None  # do not keep sending a refused token
            current = self._entry
        # Logged before the waiters wake: what they (and tests) read next is complete.
        if entry is not None:
            if failures:
                log.info("%s: token renewed after %d failed attempts", self._provider, failures)
        elif error is not None:
            self._log_failure(flight, error, current, pause)
        flight.complete(entry.token if entry else None, error)

    def _log_failure(
        self, flight: _Flight, error: AuthError, current: _Entry | None, pause: float
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

    def _fallback(self, join: _Join, rejected: Token | None, exc: AuthError) -> Token:
        """A proactive renewal failed: a still-valid token goes out anyway."""
        entry = join.entry
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
        permission, not the token. Refusals go unanswered for REFUSAL_QUIET seconds.
        """
        with self._lock:
            if self._quiet():
                return
            self._quiet_until = self._clock.monotonic() + REFUSAL_QUIET
        log.warning(
            "%s: the API refused a freshly renewed token too; the credentials work but "
            "the permission does not. Refusals are handed back without renewing for %.0fs",
            self._provider,
            REFUSAL_QUIET,
        )

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
                    threading.Thread(
                        target=self._lead_behind,
                        args=(flight, entry),
                        name="authplug-renewal",
                        daemon=True,
                    ).start()
                return entry.token
        return self._renew(None)

    def _behind(self, entry: _Entry, loop: asyncio.AbstractEventLoop | None) -> _Flight | None:
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
            flight = self._flight = _Flight(self._reason(entry), loop)
            flight.background = True
            return flight

    def _lead_behind(self, flight: _Flight, entry: _Entry) -> None:
        """A daemon thread's whole work: lead one renewal, keep its failure to the log."""
        try:
            self._lead(flight, entry)
        except Exception as exc:  # settled already; nobody would see it raised here
            log.warning("%s: the token call failed unexpectedly: %r", self._provider, exc)
            log.debug("%s: traceback of the failed token call", self._provider, exc_info=True)

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
            join = self._join(rejected, None)
            if join.token is not None:
                return join.token
            try:
                if join.flight is None:
                    raise _error_of(join.error)
                if join.leader:
                    self._lead(join.flight, join.entry)
                return join.flight.wait(self._wait_limit)
            except _Abandoned:
                continue  # its leader's loop is gone: the next join leads anew
            except AuthError as exc:
                return self._fallback(join, rejected, exc)

    def _lead(self, flight: _Flight, entry: _Entry | None) -> None:
        try:
            new, fetched = self._work(flight.reason, entry)
        except AuthError as exc:
            self._finish(flight, None, exc, remember=True)
            return
        except BaseException as exc:
            self._finish(flight, None, self._aborted(exc), remember=False)
            raise
        self._finish(flight, new, None, remember=False)
        if fetched:
            self._notify(new.token)

    def _work(self, reason: str, entry: _Entry | None) -> tuple[_Entry, bool]:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self._cache.lock(self._key))
            except CacheError as exc:
                self._cache_failed(exc)
            try:
                cached = self._cache.get(self._key)
            except CacheError as exc:
                self._cache_failed(exc)
            else:
                self._cache_ok()
                adopted, entry = self._consider(cached, entry)
                if adopted and entry is not None:
                    return entry, False
            token = self._obtain(reason, entry)
            try:
                self._cache.set(self._key, token)
            except CacheError as exc:
                self._cache_failed(exc)
        return self._entry_for(token), True

    def _obtain(self, reason: str, entry: _Entry | None) -> Token:
        basis = self._refresh_basis(entry)
        if basis is not None:
            self._log_call("refresh_token", reason)
            try:
                token = self._source.run(self._source.refresh(basis))
                return self._keep_refresh_token(token, basis)
            except AuthError as exc:
                if not _refresh_refused(exc):
                    raise
                self._log_refused(exc)
        self._log_call(self._grant_type, reason)
        return self._source.run(self._source.grant())

    # -- async -------------------------------------------------------------------

    async def aget(self) -> Token:
        """Async :meth:`get`; a due renewal runs in a detached task."""
        entry = self._entry
        if entry is not None:
            state = self.state(entry)
            if state is TokenState.FRESH:
                return entry.token
            if state is TokenState.STALE:
                loop = asyncio.get_running_loop()
                flight = self._behind(entry, loop)
                if flight is not None:
                    self._detach(loop, self._alead(flight, entry))
                return entry.token
        return await self._arenew(None)

    def _detach(self, loop: asyncio.AbstractEventLoop, work: Coroutine[None, None, None]) -> None:
        task = loop.create_task(work)
        self._tasks.add(task)  # a strong reference until it ends
        task.add_done_callback(self._tasks.discard)

    async def arenew_rejected(self, rejected: Token) -> Token | None:
        """Async :meth:`renew_rejected`."""
        if self._quiet():
            return None
        return await self._arenew(rejected)

    async def _arenew(self, rejected: Token | None) -> Token:
        loop = asyncio.get_running_loop()
        while True:
            join = self._join(rejected, loop)
            if join.token is not None:
                return join.token
            try:
                if join.flight is None:
                    raise _error_of(join.error)
                if join.leader:
                    self._detach(loop, self._alead(join.flight, join.entry))
                return await join.flight.wait_async(self._wait_limit)
            except _Abandoned:
                continue
            except AuthError as exc:
                return self._fallback(join, rejected, exc)

    async def _alead(self, flight: _Flight, entry: _Entry | None) -> None:
        try:
            new, fetched = await self._awork(flight.reason, entry)
        except AuthError as exc:
            self._finish(flight, None, exc, remember=True)
            return
        except Exception as exc:
            # A detached task: nobody would see this exception. The waiters get an
            # AuthError; the log keeps the cause (the traceback at DEBUG only).
            self._finish(flight, None, self._aborted(exc), remember=False)
            log.warning("%s: the token call failed unexpectedly: %r", self._provider, exc)
            log.debug("%s: traceback of the failed token call", self._provider, exc_info=True)
            return
        except BaseException as exc:  # cancelled, or closed with its event loop
            self._finish(flight, None, self._aborted(exc), remember=False)
            raise
        self._finish(flight, new, None, remember=False)
        if fetched:
            self._notify(new.token)

    async def _awork(self, reason: str, entry: _Entry | None) -> tuple[_Entry, bool]:
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self._cache.alock(self._key))
            except CacheError as exc:
                self._cache_failed(exc)
            try:
                cached = await self._cache.aget(self._key)
            except CacheError as exc:
                self._cache_failed(exc)
            else:
                self._cache_ok()
                adopted, entry = self._consider(cached, entry)
                if adopted and entry is not None:
                    return entry, False
            token = await self._aobtain(reason, entry)
            try:
                await self._cache.aset(self._key, token)
            except CacheError as exc:
                self._cache_failed(exc)
        return self._entry_for(token), True

    async def _aobtain(self, reason: str, entry: _Entry | None) -> Token:
        basis = self._refresh_basis(entry)
        if basis is not None:
            self._log_call("refresh_token", reason)
            try:
                token = await self._source.arun(self._source.refresh(basis))
                return self._keep_refresh_token(token, basis)
            except AuthError as exc:
                if not _refresh_refused(exc):
                    raise
                self._log_refused(exc)
        self._log_call(self._grant_type, reason)
        return await self._source.arun(self._source.grant())

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

    def _consider(self, cached: Token | None, entry: _Entry | None) -> tuple[bool, _Entry | None]:
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
        candidate = self._entry_for(cached)
        if self.state(candidate) is TokenState.FRESH:
            log.info(
                "%s: using a token renewed elsewhere (%s), no token call",
                self._provider,
                mask(cached.access_token),
            )
            return True, candidate
        return False, candidate

    def _refresh_basis(self, entry: _Entry | None) -> Token | None:
        """The token whose refresh token may be used, if any (never the bare string:
        a plain local would show in a traceback's locals)."""
        if entry is None or not entry.token.refresh_token:
            return None
        if entry.refresh_deadline is not None and self._clock.monotonic() >= entry.refresh_deadline:
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
        if isinstance(exc, asyncio.CancelledError):
            description = "the token call was cancelled"
        else:
            description = f"the token call failed unexpectedly ({type(exc).__name__})"
        return TokenEndpointError(description, provider=self._provider)

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
