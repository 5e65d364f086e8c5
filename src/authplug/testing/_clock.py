"""A clock that tests move by hand: nothing sleeps."""

from __future__ import annotations

import threading

__all__ = ["FakeClock"]


class FakeClock:
    """Implements :class:`~authplug._clock.Clock`; ``advance()`` moves both clocks.

    ``sleep``/``asleep`` return at once, advance the clock by the amount and record
    it in ``sleeps``, so a test can assert the backoff that was chosen. Give it to an
    auth object as ``clock=``.

    Args:
        start: the wall clock's first reading, in epoch seconds.

    Attributes:
        sleeps: every pause asked for, in seconds, in order.
    """

    def __init__(self, *, start: float = 1_800_000_000.0) -> None:
        self._lock = threading.Lock()
        self._mono = 1000.0
        self._wall = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """Seconds on the monotonic clock (it starts at 1000)."""
        return self._mono

    def time(self) -> float:
        """Epoch seconds (it starts at ``start``)."""
        return self._wall

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        with self._lock:
            self._mono += seconds
            self._wall += seconds

    def sleep(self, seconds: float) -> None:
        """Record ``seconds`` in :attr:`sleeps` and advance by it; returns at once."""
        with self._lock:
            self.sleeps.append(seconds)
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        """Async :meth:`sleep`; returns at once too."""
        self.sleep(seconds)
