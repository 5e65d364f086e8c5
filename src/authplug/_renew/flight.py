"""Single flight: one token call at a time, and everyone who waits for it.

A :class:`Flight` knows a token and an error, nothing else. Threads wait on an event;
tasks on their own loop's waker (:mod:`.._aio`: asyncio or trio), woken from whichever
thread settles the flight, so that waiting never blocks an event loop. Nobody waits
forever: a waiter gives up after the limit it is given. A flight whose leader can no
longer finish it (its event loop was closed, or it outlived the limit) is abandoned:
its waiters wake with :class:`Abandoned` and join the next flight.

What a caller does after looking at the manager's state is one of four outcomes:
:class:`Use` a token, :class:`Follow` a flight, :class:`Lead` one, or :class:`Fail`
with a remembered error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import _aio
from ..errors import AuthError, TokenEndpointError
from ..token import Token
from .schedule import Entry

if TYPE_CHECKING:
    from ..events import Reason

__all__ = ["Abandoned", "Fail", "Flight", "Follow", "Lead", "Outcome", "Use", "error_of"]

#: A waiter looks this often (seconds) whether its flight was abandoned.
POLL = 0.5


class Abandoned(Exception):
    """The flight's leader can no longer finish it: join a new one."""


class Flight:
    """One renewal in progress and everyone waiting for it."""

    __slots__ = (
        "_callbacks",
        "_event",
        "_lock",
        "abandoned",
        "background",
        "claimed",
        "error",
        "kind",
        "leading",
        "login",
        "loop",
        "reason",
        "started",
        "token",
    )

    def __init__(self, reason: str, loop: _aio.Loop | None, kind: Reason) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.reason = reason  # for the log
        self.kind: Reason = kind  # for events and metrics
        self.loop = loop  # the loop of an async leader
        self.started = time.monotonic()  # real time: waiting is real, whatever the clock
        self.token: Token | None = None
        self.error: AuthError | None = None
        self.abandoned = False  # its waiters join a new flight
        self.background = False  # led off the request path, for a token still valid
        self.login = False  # an explicit login: the person is asked, whatever is cached
        self.claimed = False  # someone runs it (a background flight may wait in a queue)
        self.leading = True  # its leader is still at work (for the manager's settle)

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def claim(self) -> bool:
        """Take the running of the flight; False when someone already has.

        A background flight waits in the renewal pool's queue until a worker claims
        it; a caller that must wait for it meanwhile (its token expired) claims it and
        runs it itself, instead of waiting behind other objects' renewals.
        """
        with self._lock:
            if self.claimed:
                return False
            self.claimed = True
            return True

    def settled(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the flight to end; whether it has."""
        return self._event.wait(timeout)

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
            raise Abandoned
        if self.token is None:
            raise error_of(self.error)
        return self.token

    def _gave_up(self, limit: float) -> TokenEndpointError:
        return TokenEndpointError(
            f"gave up after {limit:.0f}s waiting for the token call in progress"
        )

    def wait(self, limit: float) -> Token:
        if not self._event.is_set():
            running = _aio.running()
            if running is not None and running.same(self.loop):
                raise TokenEndpointError(
                    "a blocking HTTP call on the event loop's thread is waiting for a token "
                    "call that this same loop runs; use an async client inside async code"
                )
            # A leader on another event loop may have its loop closed under it: look
            # now and then. A thread leader always settles its flight.
            step = limit if self.loop is None else POLL
            end = time.monotonic() + limit
            while not self._event.wait(max(0.0, min(step, end - time.monotonic()))):
                if self.loop is not None and self.loop.is_closed():
                    raise Abandoned
                if time.monotonic() >= end:
                    raise self._gave_up(limit)
        return self._outcome()

    async def await_outcome(self, limit: float) -> Token:
        loop = _aio.current()
        wake, woken = loop.waker()
        with self._lock:
            pending = not self._event.is_set()
            if pending:
                self._callbacks.append(wake)
        if not pending:
            return self._outcome()
        step = limit if self.loop is None or loop.same(self.loop) else POLL
        end = time.monotonic() + limit
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise self._gave_up(limit)
            if await woken(min(step, left)):
                return self._outcome()
            if self.loop is not None and self.loop.is_closed():
                raise Abandoned


def error_of(error: AuthError | None) -> AuthError:
    """The error to raise for an outcome without a token (a fresh copy of ``error``)."""
    if error is None:  # not reachable: a flight ends with a token or an error
        return TokenEndpointError("the token call ended without a token or an error")
    return error.clone()


@dataclass(frozen=True, slots=True)
class Use:
    """Send this token; nothing to renew (or someone renewed it already)."""

    token: Token


@dataclass(frozen=True, slots=True)
class Follow:
    """Wait for the flight under way."""

    flight: Flight
    entry: Entry | None


@dataclass(frozen=True, slots=True)
class Lead:
    """Lead this new flight (the caller renews for everyone)."""

    flight: Flight
    entry: Entry | None


@dataclass(frozen=True, slots=True)
class Fail:
    """A renewal failed a moment ago: raise (a copy of) its error without a call."""

    error: AuthError
    entry: Entry | None


Outcome = Use | Follow | Lead | Fail
