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
from . import pool, report
from .flight import Abandoned, Flight
from .renewal import arun_renewal, run_renewal

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any

    from ..cache import TokenCache
    from ..token import Token
    from .leaders import DetachedLeaders, Leaders
    from .renewal import Performer, Renewer
    from .schedule import Entry

__all__ = ["ExplicitActions"]

_LOGIN = "an explicit login"


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
    _running_flight: Callable[[], Flight | None]
    _lead: Callable[[Flight, Entry | None], None]
    _lead_in_thread: Callable[[Flight, Entry | None], None]
    _alead: Callable[[Flight, Entry | None], Coroutine[Any, Any, None]]

    # -- login ---------------------------------------------------------------------

    def login(self) -> Token:
        """Log the person in now (after any renewal under way), whatever is cached."""
        while True:
            flight, leads = self._login_flight(None)
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
            flight, leads = self._login_flight(where)
            if leads and where is None:
                pool.spawn(functools.partial(self._lead_in_thread, flight, None))
            elif leads:
                self._detached.spawn(loop, self._alead(flight, None))
            if leads:
                return await flight.await_outcome(self._wait_limit)
            with contextlib.suppress(AuthError, Abandoned):
                await flight.await_outcome(self._wait_limit)

    def _login_flight(self, loop: _aio.Loop | None) -> tuple[Flight, bool]:
        """``(the flight under way, False)``, or ``(a new login flight to lead, True)``."""
        with self._lock:
            running = self._running_flight()
            if running is not None:
                return running, False
            flight = Flight(_LOGIN, loop, "first_use")
            flight.login = True
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
