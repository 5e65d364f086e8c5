"""Leaders: where they run, who is still at work, what their waiters get.

A sync caller leads in its own thread; an async caller, in a thread of its
own (:func:`.pool.spawn`) that it awaits; a background renewal, whoever started it,
in the shared pool of renewal threads (:mod:`.pool`), unless a caller whose token
expired meanwhile claims it from the queue. So no event loop ending, and no task
cancelled, cuts a token call halfway: its answer is stored. Only where the loop alone
can drive the renewal (``threads=False``: a redis.asyncio client, an async assertion
callable) does an async caller lead in a detached task on its loop. Waiters, threads
and tasks alike, give up after ``wait_limit``. A flight whose leader can no longer
finish it (its event loop was closed under it, or it outlived the wait limit) is
abandoned and led anew by the next caller. With a persistent cache, each renewal
under way is registered with :mod:`.at_exit`, which lets it finish at exit. A forked
child starts with a lock of its own, no flight and no backoff (``os.register_at_fork``).

:class:`Leaders` counts the leaders until each is done with everything (its logging and
``on_token`` included): ``settle()`` waits for none to be left. It counts under the
manager's lock, so that a flight and its leader are counted in together.
:class:`DetachedLeaders` holds the leaders that run as tasks on an event loop (where
only the loop can drive a renewal): a strong reference until each ends, cancelled by
``aclose``. :func:`aborted` is the error waiters get from a leader that stopped
outside the package's errors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING

from .. import _aio
from ..errors import TokenEndpointError

if TYPE_CHECKING:
    from .flight import Flight

__all__ = ["DetachedLeaders", "Leaders", "aborted"]


class Leaders:
    """The leaders still at work: counted in when their flight starts, out once."""

    __slots__ = ("_idle", "count")

    def __init__(self, lock: threading.Lock) -> None:
        self._idle = threading.Condition(lock)  # the manager's lock
        self.count = 0

    def add(self) -> None:
        """One more leader (called with the lock held)."""
        self.count += 1

    def done(self, flight: Flight) -> None:
        """Count the leader of ``flight`` out, once (called with the lock held)."""
        if flight.leading:
            flight.leading = False
            self.count -= 1
            self._idle.notify_all()

    def end(self, flight: Flight) -> None:
        """:meth:`done`, taking the lock."""
        with self._idle:
            self.done(flight)

    def settle(self, timeout: float) -> bool:
        """Wait until no leader is at work; False if one still is after ``timeout``."""
        with self._idle:
            return self._idle.wait_for(lambda: self.count == 0, timeout)

    async def asettle(self, timeout: float) -> bool:
        """Async :meth:`settle`: the event loop keeps turning (and runs the renewal)."""
        end = time.monotonic() + timeout
        while self.count:
            if time.monotonic() >= end:
                return False
            await _aio.sleep(0.005)
        return True


def aborted(exc: BaseException, provider: str) -> TokenEndpointError:
    """What the waiters of a flight get when its leader stopped outside the package's
    errors: cancelled, or a bug (only the exception's type: its text may hold data)."""
    if _aio.is_cancellation(exc):
        description = "the token call was cancelled"
    else:
        description = f"the token call failed unexpectedly ({type(exc).__name__})"
    return TokenEndpointError(description, provider=provider)


class DetachedLeaders:
    """Leaders running as detached tasks on their event loop (where only the loop can
    drive a renewal), by loop: held until each ends, cancelled by ``aclose``."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: dict[_aio.Task, _aio.Loop] = {}

    def spawn(self, loop: _aio.Loop, work: Coroutine[None, None, None]) -> None:
        """Run ``work`` on ``loop``, detached from the caller."""
        task = loop.spawn(work, self._task_ended)
        if not task.done():
            self._tasks[task] = loop  # a strong reference until it ends

    def _task_ended(self, task: _aio.Task) -> None:
        self._tasks.pop(task, None)

    def drop_closed(self) -> None:
        """Forget the tasks whose event loop was closed under them."""
        self._tasks = {t: at for t, at in list(self._tasks.items()) if not at.is_closed()}

    async def end(self, budget: float) -> None:
        """Await the tasks on the running loop up to ``budget`` seconds, since the loop
        may end next; past that cancel them, so that none is left on the loop."""
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
