"""The renewal and revocation plans of :class:`Renewer`, driven by hand with fake answers.

Each test sends the plan what the cache and the token endpoint would answer; no cache,
no request, no thread. What the manager does with the outcome is test_manager's job.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import pytest

from authplug import CredentialsRejectedError, Token, TokenEndpointError
from authplug._call.messages import RawResponse, TokenRequest
from authplug._call.plan import Send
from authplug._renew.renewal import CacheDelete, CacheGet, CacheLock, CacheSet, Renewer
from authplug._renew.report import Reporter
from authplug.cache import CacheError
from authplug.errors import AuthError
from authplug.events import CacheLookup, Event, Renewal, TokenCall
from authplug.testing import FakeClock


class Source:
    """Token calls that answer from a list: a Token, or an AuthError to raise. Each call
    sends one request first (so that the attempts can be counted)."""

    wait_limit = 5.0
    needs_person = False

    def before_lock(self) -> Generator[Any, Any, None]:
        yield from ()

    def made_from(self, token: Token) -> bool:
        return False

    def __init__(self, *answers: Token | AuthError) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def _call(self, kind: str) -> Generator[Any, Any, Token]:
        self.calls.append(kind)
        yield Send(TokenRequest("POST", "https://as.example/token", {}, b""))
        answer = self.answers.pop(0)
        if isinstance(answer, AuthError):
            raise answer
        return answer

    def grant(self, ask: bool | None = None) -> Generator[Any, Any, Token]:
        return self._call("grant")

    def refresh(self, token: Token) -> Generator[Any, Any, Token]:
        return self._call("refresh")

    def revoke(self, token: Token) -> Generator[Any, Any, str]:
        self.calls.append(f"revoke {token.access_token}")
        yield from ()
        return "refresh token"


ANSWER = RawResponse(200, {}, b"")


def token(clock: FakeClock, name: str, *, refresh: bool = True, jkt: str | None = None) -> Token:
    now = clock.time()
    return Token(
        access_token=name,
        expires_at=now + 3600,
        refresh_token=f"rt-{name}" if refresh else None,
        issued_at=now,
        dpop_jkt=jkt,
    )


def renewer(clock: FakeClock, source: Source, seen: list[Event]) -> Renewer:
    report = Reporter("test", [seen.append])
    return Renewer(
        source=source, clock=clock, leeway=60, dpop=None, reporter=report, grant_type="password"
    )


def finish(plan: Generator[Any, Any, Any], value: Any = None) -> Any:
    """Send ``value`` and expect the plan to end; its return value."""
    with pytest.raises(StopIteration) as done:
        plan.send(value)
    return done.value.value


# -- renewal ---------------------------------------------------------------------------


def test_a_renewal_starts_with_its_event_then_takes_the_lock_and_reads() -> None:
    """Renewal (with the time left), CacheLock, CacheGet; an empty cache is a miss."""
    clock, seen = FakeClock(), []
    source = Source(token(clock, "b"))
    plan = renewer(clock, source, seen).renewal("first use", None, "first_use", True)
    assert isinstance(next(plan), CacheLock)
    assert seen == [Renewal("test", "first_use", None, True)]
    assert isinstance(plan.send(None), CacheGet)
    assert isinstance(plan.send(None), Send)
    assert seen[-1] == CacheLookup("test", "miss")
    stored = plan.send(ANSWER)
    assert isinstance(stored, CacheSet)
    entry, fetched = finish(plan)
    assert (entry.token.access_token, fetched) == ("b", True)
    assert source.calls == ["grant"]


def test_a_token_call_is_reported_with_its_attempts_and_status() -> None:
    """One TokenCall when the call ends: grant, reason, outcome, requests sent, status."""
    clock, seen = FakeClock(), []
    plan = renewer(clock, Source(token(clock, "b")), seen).renewal("expired", None, "expired")
    next(plan)
    plan.send(None)
    plan.send(None)  # the miss: the grant sends its request
    plan.send(ANSWER)
    calls = [event for event in seen if isinstance(event, TokenCall)]
    assert len(calls) == 1
    call = calls[0]
    assert (call.grant, call.reason, call.outcome, call.attempts, call.status_code) == (
        "password",
        "expired",
        "ok",
        1,
        200,
    )


def test_a_failed_read_is_an_outage_and_the_renewal_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The cache fails at the lock and the read: one warning, an outage, a token call."""
    clock, seen = FakeClock(), []
    plan = renewer(clock, Source(token(clock, "b")), seen).renewal("expired", None, "expired")
    next(plan)
    assert isinstance(plan.throw(CacheError("down")), CacheGet)
    assert isinstance(plan.throw(CacheError("down")), Send)
    assert CacheLookup("test", "outage") in seen
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "the token cache is unavailable" in warnings[0].getMessage()


def test_a_fresh_shared_token_is_adopted_without_a_call() -> None:
    """Another process stored a fresh token: a hit, used as it is."""
    clock, seen = FakeClock(), []
    source = Source()
    plan = renewer(clock, source, seen).renewal("expired", None, "expired")
    next(plan)
    plan.send(None)
    entry, fetched = finish(plan, token(clock, "shared"))
    assert (entry.token.access_token, fetched) == ("shared", False)
    assert CacheLookup("test", "hit") in seen
    assert source.calls == []


def test_a_shared_token_bound_to_another_dpop_key_is_never_adopted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """RFC 9449: a token bound to a key this object does not hold is useless here."""
    clock, seen = FakeClock(), []
    source = Source(token(clock, "mine"))
    plan = renewer(clock, source, seen).renewal("expired", None, "expired")
    next(plan)
    plan.send(None)
    assert isinstance(plan.send(token(clock, "theirs", jkt="other-key")), Send)
    assert "bound to another DPoP key" in caplog.text
    assert source.calls == ["grant"]


def test_a_refused_refresh_falls_back_to_the_grant() -> None:
    """A 4xx on the refresh: the full grant follows, in the same plan."""
    clock, seen = FakeClock(), []
    source = Source(CredentialsRejectedError("gone", status_code=400), token(clock, "b"))
    rn = renewer(clock, source, seen)
    plan = rn.renewal("expired", rn.entry_for(token(clock, "a")), "expired")
    next(plan)
    plan.send(None)
    plan.send(None)  # the refresh's request
    plan.send(ANSWER)  # refused: the grant's request
    assert isinstance(plan.send(ANSWER), CacheSet)
    assert source.calls == ["refresh", "grant"]
    outcomes = [(e.grant, e.outcome) for e in seen if isinstance(e, TokenCall)]
    assert outcomes == [("refresh_token", "refused"), ("password", "ok")]


def test_a_refresh_answered_429_is_not_a_refusal() -> None:
    """Too many requests says nothing about the refresh token: no full grant."""
    clock, seen = FakeClock(), []
    source = Source(TokenEndpointError("slow down", status_code=429))
    rn = renewer(clock, source, seen)
    plan = rn.renewal("expired", rn.entry_for(token(clock, "a")), "expired")
    next(plan)
    plan.send(None)
    plan.send(None)
    with pytest.raises(TokenEndpointError):
        plan.send(ANSWER)
    assert source.calls == ["refresh"]


def test_both_refusals_are_named_when_the_grant_is_refused_too() -> None:
    """Refresh token and credentials refused: one error that says both."""
    clock, seen = FakeClock(), []
    source = Source(
        CredentialsRejectedError("gone", status_code=400, error="invalid_grant"),
        CredentialsRejectedError("bad password", status_code=400, error="invalid_grant"),
    )
    rn = renewer(clock, source, seen)
    plan = rn.renewal("expired", rn.entry_for(token(clock, "a")), "expired")
    next(plan)
    plan.send(None)
    plan.send(None)
    plan.send(ANSWER)
    with pytest.raises(CredentialsRejectedError) as info:
        plan.send(ANSWER)
    assert "the refresh token was refused (invalid_grant), and the password grant too" in str(
        info.value
    )


def test_a_refresh_answer_without_refresh_token_keeps_the_one_used() -> None:
    """The refresh token that worked stays with the new token."""
    clock, seen = FakeClock(), []
    source = Source(token(clock, "b", refresh=False))
    rn = renewer(clock, source, seen)
    plan = rn.renewal("expired", rn.entry_for(token(clock, "a")), "expired")
    next(plan)
    plan.send(None)
    plan.send(None)
    plan.send(ANSWER)
    entry, _ = finish(plan)
    assert (entry.token.access_token, entry.token.refresh_token) == ("b", "rt-a")


# -- revocation --------------------------------------------------------------------------


def test_a_revocation_returns_what_it_revoked_and_drops_the_shared_copy() -> None:
    """Our token, also in the cache: revoked, deleted there, and handed back to forget."""
    clock, seen = FakeClock(), []
    source = Source()
    rn = renewer(clock, source, seen)
    ours = rn.entry_for(token(clock, "a"))
    plan = rn.revocation(lambda: ours)
    next(plan)
    plan.send(None)
    assert isinstance(plan.send(token(clock, "a")), CacheDelete)
    assert finish(plan) == (ours.token, "refresh token")
    assert source.calls == ["revoke a"]


def test_a_revocation_without_our_own_token_revokes_the_shared_one() -> None:
    """Nothing here, a token in the cache: that one is revoked and deleted."""
    clock, seen = FakeClock(), []
    source = Source()
    plan = renewer(clock, source, seen).revocation(lambda: None)
    next(plan)
    plan.send(None)
    shared = token(clock, "shared")
    assert isinstance(plan.send(shared), CacheDelete)
    assert finish(plan) == (shared, "refresh token")


def test_a_revocation_keeps_a_different_shared_token(caplog: pytest.LogCaptureFixture) -> None:
    """The cache holds another token (renewed elsewhere): it stays there."""
    clock, seen = FakeClock(), []
    rn = renewer(clock, Source(), seen)
    ours = rn.entry_for(token(clock, "a"))
    plan = rn.revocation(lambda: ours)
    next(plan)
    plan.send(None)
    assert finish(plan, token(clock, "newer")) == (ours.token, "refresh token")


def test_a_revocation_with_no_token_anywhere_revokes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No token here nor in the cache: None, and the log says so."""
    caplog.set_level(logging.INFO, logger="authplug")
    clock, seen = FakeClock(), []
    source = Source()
    plan = renewer(clock, source, seen).revocation(lambda: None)
    next(plan)
    plan.send(None)
    assert finish(plan, None) is None
    assert "test: no token to revoke" in caplog.text
    assert source.calls == []
