"""When to renew: a token's due time, and the pause after failed renewals.

Pure arithmetic on monotonic seconds: no clock is read and nothing is sent here, so
every rule is a unit test away (``tests/unit/test_schedule.py``).

Due time. A token fetched here is due for renewal at a moment drawn at random from a
window that ends ``leeway`` seconds before it expires and spans 10% of its lifetime
(at most :data:`SPREAD_MAX`), never before half of its lifetime: a fleet of processes
that share no cache then spreads its renewals instead of renewing in the same second.
A provider that says when to renew (``refresh_in``, as Microsoft's identity platform
sends) is followed instead. A token from elsewhere (handed in, or of unknown age) is
due ``leeway`` seconds before it expires.

Backoff. While renewals fail and the token is still valid, attempts are spaced 1, 2,
4, 8 seconds apart, then :data:`BACKOFF_CAP` seconds; each pause is stretched by up to
25% at random and never shortened, so after the first failures a process tries at
most once per :data:`BACKOFF_CAP` seconds. Refused credentials wait the cap at once.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BACKOFF_CAP", "SPREAD_FRACTION", "SPREAD_MAX", "Backoff", "due_at"]

#: The renewal window spans this share of the token's lifetime...
SPREAD_FRACTION = 0.10
#: ...and at most this many seconds.
SPREAD_MAX = 300.0
#: The first pause after a failed renewal, doubled after each further failure...
BACKOFF_FIRST = 1.0
#: ...up to this many seconds.
BACKOFF_CAP = 10.0
#: Each pause is stretched by up to this share, at random.
JITTER = 0.25

Draw = Callable[[], float]  # a number in [0, 1)


def due_at(
    *,
    deadline: float,
    leeway: float,
    issued: float | None = None,
    lifetime: float | None = None,
    refresh_in: float | None = None,
    draw: Draw = random.random,
) -> float:
    """The moment a token that expires at ``deadline`` is due for renewal.

    ``issued`` is when it arrived, ``lifetime`` what the provider announced; both are
    None for a token of unknown age. All times are on one monotonic clock.
    """
    if issued is not None and refresh_in is not None and refresh_in > 0:
        return min(issued + refresh_in, deadline)
    end = deadline - leeway
    if issued is None or lifetime is None or lifetime <= 0:
        return end
    width = min(SPREAD_FRACTION * lifetime, SPREAD_MAX)
    return max(end - draw() * width, issued + lifetime / 2)


@dataclass(slots=True)
class Backoff:
    """Failed renewals so far, and when the next one may start."""

    failures: int = 0
    not_before: float = -math.inf

    def ready(self, now: float) -> bool:
        return now >= self.not_before

    def failed(self, now: float, *, refused: bool = False, draw: Draw = random.random) -> float:
        """Record a failure at ``now``; returns the pause before the next attempt."""
        self.failures += 1
        if refused:
            pause = BACKOFF_CAP
        else:
            pause = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** min(self.failures - 1, 16))
        pause *= 1 + JITTER * draw()
        self.not_before = now + pause
        return pause

    def succeeded(self) -> None:
        self.failures = 0
        self.not_before = -math.inf
