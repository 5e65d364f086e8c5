"""At exit, a renewal of a token kept in a persistent cache is finished, not dropped.

With refresh-token rotation, a refresh that reached the token endpoint has spent the
old refresh token: the server answers with a new one, and the cache (a file, Redis)
still holds the old one until the answer is stored. A process that dies in between
leaves every process that shares the cache with a retired refresh token: the next
refresh is an ``invalid_grant`` and, on servers with reuse detection, the whole token
family is revoked.

So, for a manager whose cache outlives the process, each renewal it leads is
registered here while it runs (:func:`track`), with how long it may still be waited
for (the token call's ``timeout``). At interpreter exit (``atexit``) those renewals
are waited for, each up to that time, before the process goes on exiting; nothing
else is waited for (a memory cache's renewal, with nobody to share its answer, never
holds an exit).

SIGTERM kills a Python process at once, without ``atexit``. :func:`guard_sigterm`
(called from the main thread when such a manager is built) installs a handler, only
where SIGTERM's handler is still the default: when SIGTERM comes and a registered
renewal is under way, the handler waits for it as above, then restores the default
and sends SIGTERM to the process again, which then dies of it as it would have. With
nothing under way, it does that at once. Its limits are in ``docs/lifecycle.rst``.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .flight import Flight

__all__ = ["drain", "guard_sigterm", "track", "untrack"]

log = logging.getLogger("authplug")

_lock = threading.Lock()
#: Renewals under way: their flight -> (the thread leading it, seconds it may be awaited).
_running: dict[Flight, tuple[int, float]] = {}
_guarded = False


def track(flight: Flight, wait: float) -> None:
    """``flight``'s renewal, led by this thread, is under way for a persistent cache."""
    with _lock:
        _running[flight] = (threading.get_ident(), wait)


def untrack(flight: Flight) -> None:
    """``flight``'s renewal is over (stored, failed or given up)."""
    with _lock:
        _running.pop(flight, None)


def drain(why: str) -> int:
    """Wait for the registered renewals, each up to its own time, all at once; the
    number still unfinished afterwards. One led by the calling thread is not waited for
    (it cannot go on while its thread waits here)."""
    me = threading.get_ident()
    with _lock:
        waiting = [(f, wait) for f, (leader, wait) in _running.items() if leader != me]
    if not waiting:
        return 0
    log.info(
        "authplug: %s; waiting for %d token renewal(s) under way, so that the token "
        "they fetch reaches the cache",
        why,
        len(waiting),
    )
    start = time.monotonic()
    left = 0
    for flight, wait in waiting:
        if not flight.settled(max(0.0, start + wait - time.monotonic())):
            left += 1
    if left:
        log.warning("authplug: %d token renewal(s) did not finish in time; exiting anyway", left)
    return left


def _at_exit() -> None:
    drain("the interpreter is exiting")


atexit.register(_at_exit)


def guard_sigterm() -> None:
    """Defer SIGTERM while a registered renewal is under way (see the module docstring).

    Called from any thread; acts once, on the main thread, and only where SIGTERM's
    handler is the default.
    """
    global _guarded
    if _guarded or threading.current_thread() is not threading.main_thread():
        return
    _guarded = True
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):  # no signals here (an embedded Python)
        return


def _on_sigterm(signum: int, frame: Any) -> None:
    """Let the renewals under way store their answer, then die of SIGTERM as before."""
    drain("SIGTERM received")
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _reset_after_fork() -> None:
    global _lock, _running
    _lock = threading.Lock()
    _running = {}  # the parent's renewals are not this process's


os.register_at_fork(after_in_child=_reset_after_fork)
