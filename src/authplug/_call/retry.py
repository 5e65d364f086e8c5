"""Backoff and ``Retry-After`` for token calls, and the plan that applies them.

The policy is an immutable value; the attempt counter lives in the plan, never on a
shared object.
"""

from __future__ import annotations

import email.utils
import itertools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from .messages import RawResponse, TokenRequest, TransportFailure
from .plan import Plan, Send, Sleep

__all__ = ["RetryPolicy", "attempts", "parse_retry_after"]

log = logging.getLogger("authplug")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value) if len(value) < 12 else None
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

    def worst_case(self, timeout: float) -> float:
        """The longest a whole token call may take: every attempt and every wait.

        Each attempt ends within ``timeout`` (the transport's deadline covers the whole
        exchange); waits between attempts are capped at ``max_backoff``.
        """
        return timeout * (self.retries + 1) + self.max_backoff * self.retries


def attempts(
    policy: RetryPolicy,
    prepare: Callable[[], TokenRequest],
    *,
    now: Callable[[], float],
    name: str,
) -> Plan[RawResponse | TransportFailure]:
    """Send a freshly prepared request until an answer is final or attempts run out.

    Returns the final answer, or the last failure to reach the endpoint. 429 and 5xx
    are tried again, with ``Retry-After`` honoured; any other answer is final.
    """
    for attempt in itertools.count():
        try:
            raw: RawResponse = yield Send(prepare())
        except TransportFailure as failure:
            if attempt >= policy.retries:
                return failure
            delay = policy.delay(attempt)
        else:
            if attempt >= policy.retries or not policy.should_retry_status(raw.status_code):
                return raw
            after = parse_retry_after(raw.headers.get("retry-after"), now=now())
            delay = policy.delay(attempt, after)
        log.info("%s: token call attempt %d failed; retrying in %.2fs", name, attempt + 1, delay)
        yield Sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - itertools.count() never ends
