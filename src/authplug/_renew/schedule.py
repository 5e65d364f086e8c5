"""When to renew: a token on the monotonic clock, its state, the pause after failures.

Pure arithmetic: the caller passes the clocks' readings; nothing is read or sent here,
so every rule is a unit test away (``tests/unit/test_schedule.py``).

States. A token is FRESH until it is due, STALE (still valid, renewal due) until it
expires, INVALID after. A token without an expiry is always FRESH (used until the API
refuses it); no token at all is INVALID.

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

Quiet refusals. When the API refuses a token that was fetched because it refused the
previous one, renewing again will not help: the credentials work, the permission does
not. Refusals then go unanswered for :data:`REFUSAL_QUIET` seconds; not after a token
adopted from the cache, which another process may have rotated away since.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..token import Token, TokenState, parse_number

if TYPE_CHECKING:
    from ..events import Reason

__all__ = [
    "BACKOFF_CAP",
    "REFUSAL_QUIET",
    "SPREAD_FRACTION",
    "SPREAD_MAX",
    "Backoff",
    "Entry",
    "QuietRefusals",
    "due_at",
    "entry_for",
    "reason_for",
    "reason_kind",
    "state_of",
    "time_left",
]

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


#: Seconds refusals go unanswered after a freshly renewed token was refused too.
REFUSAL_QUIET = 60.0


@dataclass(slots=True)
class QuietRefusals:
    """Whether refusals go unanswered (see the module docstring: quiet refusals)."""

    until: float = -math.inf
    #: The current token when a renewal adopted it from the cache rather than fetching it.
    adopted: Token | None = None

    def quiet(self, now: float) -> bool:
        return now < self.until

    def refused_again(self, token: Token, now: float) -> bool:
        """The API refused ``token``, fetched after a refusal: refusals go quiet from
        ``now``, unless ``token`` was adopted (False: the next refusal renews)."""
        if token is self.adopted:
            return False
        self.until = now + REFUSAL_QUIET
        return True


@dataclass(frozen=True, slots=True)
class Entry:
    """A token with its deadlines on this process's monotonic clock."""

    token: Token
    deadline: float | None  # the access token expires
    renew_at: float | None  # renewal is due
    refresh_deadline: float | None  # the refresh token expires


def entry_for(
    token: Token, *, mono: float, wall: float, leeway: float, draw: Draw = random.random
) -> Entry:
    """Put a token on the monotonic clock, given both clocks' readings now.

    A token fetched here (or by another process: the cache keeps ``issued_at``) has a
    known age and lifetime, so its due time is drawn from the window; a token handed
    in has neither, so only ``leeway`` applies.
    """
    refresh_deadline = (
        mono + (token.refresh_expires_at - wall) if token.refresh_expires_at else None
    )
    if token.expires_at is None:
        return Entry(token, None, None, refresh_deadline)
    deadline = mono + (token.expires_at - wall)
    issued = mono + (token.issued_at - wall) if token.issued_at is not None else None
    renew_at = due_at(
        deadline=deadline,
        leeway=leeway,
        issued=issued,
        lifetime=token.lifetime,
        refresh_in=parse_number(token.extra.get("refresh_in")),
        draw=draw,
    )
    return Entry(token, deadline, renew_at, refresh_deadline)


def state_of(entry: Entry | None, now: float) -> TokenState:
    if entry is None:
        return TokenState.INVALID
    if entry.deadline is None or entry.renew_at is None:
        return TokenState.FRESH
    if now >= entry.deadline:
        return TokenState.INVALID
    if now >= entry.renew_at:
        return TokenState.STALE
    return TokenState.FRESH


def reason_for(entry: Entry | None, now: float) -> str:
    """Why a renewal starts, for the log line of its token call."""
    if entry is None:
        return "first use"
    if entry.deadline is None:
        return "no token"
    left = entry.deadline - now
    return f"token expires in {left:.0f}s" if left > 0 else "token expired"


def reason_kind(entry: Entry | None, now: float) -> Reason:
    """Why a renewal starts, as events and metrics name it (a short fixed list)."""
    if entry is None:
        return "first_use"
    if entry.deadline is None:
        return "unknown_expiry"
    return "stale" if entry.deadline > now else "expired"


def time_left(entry: Entry | None, now: float) -> float | None:
    """Seconds ``entry``'s token has left (negative once expired); None when unknown."""
    if entry is None or entry.deadline is None:
        return None
    return entry.deadline - now


def refresh_usable(entry: Entry | None, now: float) -> bool:
    """The entry holds a refresh token that has not expired."""
    if entry is None or not entry.token.refresh_token:
        return False
    return entry.refresh_deadline is None or now < entry.refresh_deadline
