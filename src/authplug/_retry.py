"""Backoff and ``Retry-After`` for token calls.

The policy is an immutable value; the attempt counter lives in the caller's loop, never
on a shared object.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass

__all__ = ["RetryPolicy", "parse_retry_after"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How token calls are retried.

    Attributes:
        retries: how many times a failed call is tried again (0 disables retries).
        backoff: the first wait, in seconds; it doubles on each attempt.
        max_backoff: the longest wait between two attempts, ``Retry-After`` included.
    """

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0

    def should_retry_status(self, status: int) -> bool:
        """429 and 5xx are worth another try; every other status is final."""
        return status in RETRY_STATUSES

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait before retry number ``attempt`` (0-based), with full jitter.

        A server's ``Retry-After`` is honoured (up to ``max_backoff``) instead of the
        computed backoff.
        """
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security
