"""The renewal schedule as arithmetic: due times, the spread window, the backoff."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from authplug._renew.schedule import BACKOFF_CAP, SPREAD_MAX, Backoff, due_at


def test_the_window_ends_leeway_before_expiry() -> None:
    """Drawing 0 renews at ``expires - leeway``; drawing near 1 at the window's start."""
    assert due_at(deadline=3600, leeway=60, issued=0, lifetime=3600, draw=lambda: 0.0) == 3540
    early = due_at(deadline=3600, leeway=60, issued=0, lifetime=3600, draw=lambda: 0.999999)
    assert early == pytest.approx(3540 - SPREAD_MAX * 0.999999)  # 10% of 3600 s is 360 s


def test_the_window_spans_a_tenth_of_the_lifetime_at_most_five_minutes() -> None:
    """A day-long token spreads over 300 s, not 2.4 hours."""
    earliest = due_at(deadline=86400, leeway=60, issued=0, lifetime=86400, draw=lambda: 1.0)
    assert earliest == 86400 - 60 - SPREAD_MAX
    short = due_at(deadline=600, leeway=60, issued=0, lifetime=600, draw=lambda: 1.0)
    assert short == 600 - 60 - 60


def test_never_before_half_the_lifetime() -> None:
    """A 30-second token with the default leeway is still used for 15 seconds."""
    assert due_at(deadline=30, leeway=60, issued=0, lifetime=30, draw=lambda: 0.5) == 15


def test_a_token_of_unknown_age_is_due_leeway_before_it_expires() -> None:
    """Handed-in tokens: no lifetime known, no spread."""
    assert due_at(deadline=1000, leeway=60) == 940


def test_refresh_in_sets_the_due_time() -> None:
    """``refresh_in`` (Microsoft's identity platform) wins over the window, capped at expiry."""
    assert due_at(deadline=3600, leeway=60, issued=100, lifetime=3500, refresh_in=1800) == 1900
    assert due_at(deadline=3600, leeway=60, issued=0, lifetime=3600, refresh_in=9999) == 3600
    fallback = due_at(
        deadline=3600, leeway=60, issued=0, lifetime=3600, refresh_in=0, draw=lambda: 0
    )
    assert fallback == 3540


def test_a_thousand_tokens_spread_their_renewals() -> None:
    """1,000 one-hour tokens fetched in the same second: no second holds 2% of renewals."""
    draw = random.Random(7).random
    buckets = Counter(
        int(due_at(deadline=3600, leeway=60, issued=0, lifetime=3600, draw=draw))
        for _ in range(1000)
    )
    assert max(buckets.values()) <= 20
    assert min(buckets) >= 3600 - 60 - SPREAD_MAX
    assert max(buckets) < 3540


def test_backoff_doubles_then_holds_at_the_cap() -> None:
    """1, 2, 4, 8, then 10 s, each stretched by at most a quarter and never shortened."""
    backoff = Backoff()
    pauses = [backoff.failed(0.0, draw=lambda: 0.0) for _ in range(7)]
    assert pauses == [1, 2, 4, 8, BACKOFF_CAP, BACKOFF_CAP, BACKOFF_CAP]
    stretched = Backoff()
    assert [stretched.failed(0.0, draw=lambda: 0.999) for _ in range(5)][-1] < BACKOFF_CAP * 1.25
    assert not backoff.ready(BACKOFF_CAP - 0.1)
    assert backoff.ready(BACKOFF_CAP)


def test_a_refused_credential_waits_the_cap_at_once() -> None:
    backoff = Backoff()
    assert backoff.failed(100.0, refused=True, draw=lambda: 0.0) == BACKOFF_CAP
    assert not backoff.ready(100.0 + BACKOFF_CAP - 0.01)


def test_success_clears_the_backoff() -> None:
    backoff = Backoff()
    backoff.failed(0.0)
    backoff.failed(0.0)
    backoff.succeeded()
    assert backoff.ready(0.0)
    assert backoff.failed(0.0, draw=lambda: 0.0) == 1
