"""Where renewals run off the caller: a small bounded pool of daemon worker threads.

A background renewal (a token still valid, due for renewal) is queued here, whoever
asked for it: a thread of a sync client or a task of an async one. At most
:data:`MAX_WORKERS` threads serve the queue, started when work arrives and ended after
:data:`IDLE` seconds without any: a thousand auth objects that come due together start
a handful of threads, not a thousand.

A renewal an async caller leads and waits for (there is no valid token to send
meanwhile) gets a thread of its own at once (:func:`spawn`): it must not queue behind
background work. Either way the renewal runs in a thread, not on the caller's event
loop, so that the loop ending (``asyncio.run()`` returning, a worker closing its loop)
cannot cut a token call halfway: the answer of a request that reached the token endpoint
is read and stored (with refresh-token rotation the old refresh token is spent by then).

Every thread is a daemon named ``authplug-renewal`` (a renewal never keeps a process
from exiting: see :mod:`.at_exit` for the one exception) and runs its work in a copy of
the submitter's context (a trace's current span is the caller's). A forked child
starts with an empty pool: the parent's workers do not exist there.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections import deque
from collections.abc import Callable

__all__ = ["IDLE", "MAX_WORKERS", "NAME", "quiet", "spawn", "submit"]

log = logging.getLogger("authplug")

#: The most worker threads that serve background renewals at once (in a process).
MAX_WORKERS = 8

#: Seconds an idle worker waits for more work before it ends.
IDLE = 2.0

#: The name of every thread that runs a renewal.
NAME = "authplug-renewal"

Job = Callable[[], None]


class _Pool:
    __slots__ = ("_jobs", "_ready", "idle", "workers")

    def __init__(self) -> None:
        self._ready = threading.Condition(threading.Lock())
        self._jobs: deque[tuple[contextvars.Context, Job]] = deque()
        self.idle = 0  # workers waiting for a job
        self.workers = 0  # workers alive

    def submit(self, job: Job) -> None:
        context = contextvars.copy_context()
        with self._ready:
            self._jobs.append((context, job))
            if self.idle >= len(self._jobs):
                self._ready.notify()
                return
            if self.workers >= MAX_WORKERS:
                return  # a busy worker takes it next
            self.workers += 1
        try:
            threading.Thread(target=self._work, name=NAME, daemon=True).start()
        except BaseException:  # no thread (interpreter shutting down): nobody serves it
            with self._ready:
                self.workers -= 1
            raise

    def _work(self) -> None:
        while True:
            with self._ready:
                self.idle += 1
                self._ready.wait_for(lambda: bool(self._jobs), IDLE)
                self.idle -= 1
                if not self._jobs:
                    self.workers -= 1
                    return
                context, job = self._jobs.popleft()
            _run(context, job)


class _Count:
    """Jobs queued or running, for :func:`quiet`."""

    __slots__ = ("_zero", "value")

    def __init__(self) -> None:
        self._zero = threading.Condition(threading.Lock())
        self.value = 0

    def add(self, delta: int) -> None:
        with self._zero:
            self.value += delta
            if not self.value:
                self._zero.notify_all()

    def wait(self, timeout: float) -> bool:
        with self._zero:
            return self._zero.wait_for(lambda: not self.value, timeout)


_PENDING = _Count()


def _run(context: contextvars.Context, job: Job) -> None:
    try:
        context.run(job)
    except Exception as exc:  # a job settles its own flight; this is a last resort
        log.warning("authplug: a renewal thread failed unexpectedly: %r", exc)
    finally:
        _PENDING.add(-1)


_POOL = _Pool()


def submit(job: Job) -> None:
    """Queue background work for the pool (in a copy of the current context)."""
    _PENDING.add(1)
    try:
        _POOL.submit(job)
    except BaseException:
        _PENDING.add(-1)
        raise


def spawn(job: Job) -> None:
    """Run ``job`` at once in a thread of its own (a renewal someone waits for)."""
    context = contextvars.copy_context()
    _PENDING.add(1)
    try:
        threading.Thread(target=_run, args=(context, job), name=NAME, daemon=True).start()
    except BaseException:
        _PENDING.add(-1)
        raise


def quiet(timeout: float) -> bool:
    """Wait until no renewal is queued or running here; False if one still is after
    ``timeout`` seconds (for tests and benchmarks: workers may linger, idle)."""
    return _PENDING.wait(timeout)


def _reset_after_fork() -> None:
    global _POOL, _PENDING
    _POOL = _Pool()
    _PENDING = _Count()


os.register_at_fork(after_in_child=_reset_after_fork)
