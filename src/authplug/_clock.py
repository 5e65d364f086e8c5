"""Time, injectable so that tests never sleep."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["CLOSE_TIMEOUT", "Clock", "SystemClock"]

#: Seconds closing an auth object may take at most, by default (``close_timeout=``;
#: see :mod:`._closing`). Here, in a module ``import authplug`` loads anyway, because
#: the auth classes' signatures show it.
CLOSE_TIMEOUT = 5.0


class Clock(Protocol):
    """Where authplug reads the time and waits between retries."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (renewal decisions)."""

    def time(self) -> float:
        """Epoch seconds (``expires_at``, persistence)."""

    def sleep(self, seconds: float) -> None:
        """Block the calling thread."""

    async def asleep(self, seconds: float) -> None:
        """Wait without blocking the event loop."""


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        from . import _aio

        await _aio.sleep(seconds)
