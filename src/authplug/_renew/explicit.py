"""What a caller asks of the token brain in so many words: log in, log out, revoke.

:class:`ExplicitActions` is a part of :class:`~authplug._renew.manager.TokenManager`
(its base class), kept apart because none of it is on the path of a request: the
manager decides when to renew, these run when the caller says.

An explicit login is a flight like any renewal (so a request meanwhile waits for it,
and a second ``login()`` follows a first one under way) whose plan asks the person
whatever is cached (:meth:`~authplug._renew.renewal.Renewer.renewal` with ``login``).
A logout revokes where the server can and forgets the login here and in the cache
whatever the server said; a revocation (:meth:`revoke`) forgets nothing when it fails.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import _aio
from ..errors import AuthError
from ..token import TokenState
from . import pool, report
from .flight import Abandoned, Flight
from .renewal import arun_renewal, run_renewal

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any

    from .._clock import Clock
    from ..cache import TokenCache
    from ..token import Token
    from .leaders import DetachedLeaders, Leaders
    from .renewal import Performer, Renewer
    from .schedule import Entry

__all__ = ["ExplicitActions"]

_LOGIN = "an explicit login"
_DUE = "a token made from this one is due"


class ExplicitActions:
    """Login, logout and revocation, for :class:`TokenManager` (which has the state)."""

    # The manager's state and steps these use (set by TokenManager.__init__).
    _renewer: Renewer
    _performer: Performer
    _cache: TokenCache
    _key: str
    _lock: threading.Lock
    _entry: Entry | None
    _failure: tuple[AuthError, float] | None
    _flight: Flight | None
    _leaders: Leaders
    _detached: DetachedLeaders
    _wait_limit: float
    _threads: bool
    _report: report.Reporter
    _clock: Clock
    _running_flight: Callable[[], Flight | None]
    _lead: Callable[[Flight, Entry | None], None]
    _lead_in_thread: Callable[[Flight, Entry | None], None]
    _alead: Callable[[Flight, Entry | None], Coroutine[Any, Any, None]]
    state: Callable[[Entry | None], TokenState]
    _renew: Callable[[Token | None], Token]
    _arenew: Callable[[Token | None], Coroutine[Any, Any, Token]]

    # -- a token made from this one ---------------------------------------------------

    def follow(self, changed: Callable[[Token], None]) -> None:
        """Call ``changed(token)`` (a bound method, held weakly) each time this object's
        token is replaced: a token made from it (an exchange) is then renewed too."""
        import weakref

        followers: list[weakref.WeakMethod[Callable[[Token], None]]]
        followers = self.__dict__.setdefault("_followers", [])
        with self._lock:
            followers.append(weakref.WeakMethod(changed))

    def tell_followers(self, token: Token) -> None:
        """This object's token was replaced by ``token``: tell the tokens made from it."""
        followers = self.__dict__.get("_followers")
        if not followers:
            return
        with self._lock:
            alive = [ref() for ref in followers]
            followers[:] = [
                ref for ref, call in zip(followers, alive, strict=True) if call is not None
            ]
        for call in alive:
            if call is not None:
                call(token)

    def subject_changed(self, subject: Token) -> None:
        """The token this one was made from was replaced by ``subject``: this one is due
        now (still sent while valid; renewed in the background at the next request),
        unless it was made from ``subject`` already (a renewal of this object that
        obtained it while the other was still telling its followers)."""
        import dataclasses

        if self._renewer.made_from(subject):
            return
        with self._lock:
            entry = self._entry
            if entry is not None and entry.renew_at is not None:
                now = self._clock.monotonic()
                self._entry = dataclasses.replace(entry, renew_at=min(entry.renew_at, now))

    def newer_than(self, until: float | None) -> Token:
        """A valid token that expires after ``until`` (the expiry of the token last used to
        make another from: None the first time), renewed now if this one does not.

        A token exchange calls it for its subject token each time it renews: so each of its
        renewals gets a subject it has not used, and the subject is renewed once for it
        at most (never twice: an exchanged token's expiry is capped at its subject's).
        """
        while True:
            entry = self._entry
            token = self._newer(entry, until)
            if token is not None:
                return token
            if entry is None or self.state(entry) is TokenState.INVALID:
                return self._renew(None)  # the usual renewal, with its usual reasons
            flight, leads = self._explicit_flight(None, _DUE, login=False)
            if leads:
                self._lead(flight, entry)
                return flight.wait(self._wait_limit)
            with contextlib.suppress(AuthError, Abandoned):
                flight.wait(self._wait_limit)

    async def anewer_than(self, until: float | None) -> Token:
        """:meth:`newer_than` without blocking the event loop."""
        loop = _aio.current()
        where = None if self._threads else loop
        while True:
            entry = self._entry
            token = self._newer(entry, until)
            if token is not None:
                return token
            if entry is None or self.state(entry) is TokenState.INVALID:
                return await self._arenew(None)
            flight, leads = self._explicit_flight(where, _DUE, login=False)
            if leads:
                return await self._alead_explicit(flight, entry, where, loop)
            with contextlib.suppress(AuthError, Abandoned):
                await flight.await_outcome(self._wait_limit)

    # -- login ---------------------------------------------------------------------

    def login(self) -> Token:
        """Log the person in now (after any renewal under way), whatever is cached."""
        while True:
            flight, leads = self._explicit_flight(None, _LOGIN, login=True)
            if leads:
                self._lead(flight, None)
                return flight.wait(self._wait_limit)
            with contextlib.suppress(AuthError, Abandoned):
                flight.wait(self._wait_limit)

    async def alogin(self) -> Token:
        """:meth:`login` without blocking the event loop."""
        loop = _aio.current()
        where = None if self._threads else loop
        while True:
            flight, leads = self._explicit_flight(where, _LOGIN, login=True)
            if leads:
                return await self._alead_explicit(flight, None, where, loop)
            with contextlib.suppress(AuthError, Abandoned):
                await flight.await_outcome(self._wait_limit)

    def _newer(self, entry: Entry | None, until: float | None) -> Token | None:
        """``entry``'s token if it is valid and expires after ``until``; else None."""
        if entry is None or self.state(entry) is TokenState.INVALID:
            return None
        token = entry.token
        if until is None or token.expires_at is None or token.expires_at > until:
            return token
        return None

    async def _alead_explicit(
        self, flight: Flight, entry: Entry | None, where: _aio.Loop | None, loop: _aio.Loop
    ) -> Token:
        """Lead ``flight`` as an async caller does: in a thread, or (``where``) on the loop."""
        if where is None:
            pool.spawn(functools.partial(self._lead_in_thread, flight, entry))
        else:
            self._detached.spawn(loop, self._alead(flight, entry))
        return await flight.await_outcome(self._wait_limit)

    def _explicit_flight(
        self, loop: _aio.Loop | None, reason: str, *, login: bool
    ) -> tuple[Flight, bool]:
        """``(the flight under way, False)``, or ``(a new flight to lead, True)``: a login
        (``login``), or a renewal asked for by a token made from this one."""
        with self._lock:
            running = self._running_flight()
            if running is not None:
                return running, False
            flight = Flight(reason, loop, "first_use" if login else "stale")
            flight.login = login
            self._flight = flight
            self._failure = None
            self._leaders.add()
            return flight, True

    # -- logout --------------------------------------------------------------------

    def logout(self) -> bool:
        """Revoke the login where the server can, forget it here and in the cache.
        False when there was no login to forget."""
        plan = self._renewer.logout(lambda: self._entry)
        return self._forget(run_renewal(plan, self._cache, self._key, self._performer))

    async def alogout(self) -> bool:
        """Async :meth:`logout`."""
        plan = self._renewer.logout(lambda: self._entry)
        return self._forget(await arun_renewal(plan, self._cache, self._key, self._performer))

    def _forget(self, token: Token | None) -> bool:
        with self._lock:
            self._entry = None
            self._failure = None
        return token is not None

    # -- revocation ----------------------------------------------------------------

    def revoke(self) -> bool:
        """Revoke the token at the server (RFC 7009), then forget it here and in the
        cache. False when there was no token; a failure raises and forgets nothing."""
        plan = self._renewer.revocation(lambda: self._entry)
        return self._drop_revoked(run_renewal(plan, self._cache, self._key, self._performer))

    async def arevoke(self) -> bool:
        """Async :meth:`revoke`."""
        plan = self._renewer.revocation(lambda: self._entry)
        return self._drop_revoked(await arun_renewal(plan, self._cache, self._key, self._performer))

    def _drop_revoked(self, revoked: tuple[Token, str] | None) -> bool:
        """Forget the token a revocation revoked (if it is still ours)."""
        if revoked is None:
            return False
        token, which = revoked
        with self._lock:
            if self._entry is not None and self._entry.token.access_token == token.access_token:
                self._entry = None
            self._failure = None
        self._report(report.Revoked(which))
        return True
