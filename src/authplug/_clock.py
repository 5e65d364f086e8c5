"""Time, injectable so that tests never sleep."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


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
        from . import _aio  # asyncio or trio: asked only when awaited

        await _aio.sleep(seconds)
