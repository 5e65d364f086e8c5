"""The manager's decisions without a server: join outcomes, the renewal plan, backoff.

The token source here is a script of outcomes (plans that return a token or raise at
once); no request is sent. What a real endpoint does is the loopback suite's job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

import pytest

from authplug import CredentialsRejectedError, Token, TokenEndpointError
from authplug._renew.flight import Fail, Follow, Lead, Use
from authplug._renew.manager import FAILURE_MEMORY, REFUSAL_QUIET, TokenManager
from authplug._renew.renewal import CacheGet, CacheLock, CacheSet, Performer, Renewer
from authplug._renew.report import Reporter
from authplug._renew.schedule import BACKOFF_CAP, QuietRefusals
from authplug.cache import CacheError, MemoryTokenCache
from authplug.errors import AuthError
from authplug.testing import FakeClock


class ScriptedSource:
    """Answers token calls from a list: a token's name (issued when asked), a Token, or
    an AuthError to raise."""

    wait_limit = 5.0
    needs_person = False

    def before_lock(self) -> Generator[Any, Any, None]:
        yield from ()

    def made_from(self, token: Token) -> bool:
        return False

    def __init__(self, clock: FakeClock, *answers: str | Token | AuthError) -> None:
        self.clock = clock
        self.answers = list(answers)
        self.calls: list[str] = []

    def _answer(self, kind: str) -> Generator[Any, Any, Token]:
        self.calls.append(kind)
        answer = self.answers.pop(0)
        if isinstance(answer, AuthError):
            raise answer
        yield from ()  # a plan: a generator, though this one needs no I/O
        return token(self.clock, answer) if isinstance(answer, str) else answer

    def grant(self, ask: bool | None = None) -> Generator[Any, Any, Token]:
        return self._answer("grant")

    def refresh(self, token: Token) -> Generator[Any, Any, Token]:
        return self._answer("refresh")

    def revoke(self, token: Token) -> Generator[Any, Any, str]:
        self.calls.append("revoke")
        yield from ()
        return "access token"


def no_io(effect: Any) -> None:
    raise AssertionError("no I/O in these plans")


async def ano_io(effect: Any) -> None:
    raise AssertionError("no I/O in these plans")


def token(clock: FakeClock, name: str, lifetime: float | None = 3600) -> Token:
    now = clock.time()
    return Token(
        access_token=name,
        expires_at=now + lifetime if lifetime else None,
        refresh_token=f"rt-{name}",
        issued_at=now,
        extra={"expires_in": lifetime} if lifetime else {},
    )


def manager(clock: FakeClock, source: ScriptedSource, **options: Any) -> TokenManager:
    report = Reporter("test")
    renewer = Renewer(
        source=source, clock=clock, leeway=60, dpop=None, reporter=report, grant_type="password"
    )
    kwargs: dict[str, Any] = {
        "renewer": renewer,
        "performer": Performer(no_io, ano_io),
        "reporter": report,
        "cache": MemoryTokenCache(),
        "key": "k",
        "clock": clock,
        "on_token": None,
        "initial": None,
        "wait_limit": 5.0,
    }
    kwargs.update(options)
    return TokenManager(**kwargs)


# -- the join outcomes (the table of the manager's docstring) ------------------------------


def test_no_token_leads_and_a_second_caller_follows() -> None:
    clock = FakeClock()
    brain = manager(clock, ScriptedSource(clock))
    first = brain._join(None, None)
    assert isinstance(first, Lead)
    second = brain._join(None, None)
    assert isinstance(second, Follow)
    assert second.flight is first.flight


def test_a_fresh_token_is_used() -> None:
    clock = FakeClock()
    brain = manager(clock, ScriptedSource(clock), initial=token(clock, "a"))
    assert brain._join(None, None) == Use(brain.token)  # type: ignore[arg-type]


def test_a_recent_failure_fails_without_a_call_then_leads_again() -> None:
    clock = FakeClock()
    source = ScriptedSource(clock, TokenEndpointError("down"), "b")
    brain = manager(clock, source)
    with pytest.raises(TokenEndpointError):
        brain.get()
    assert isinstance(brain._join(None, None), Fail)
    clock.advance(FAILURE_MEMORY)
    assert brain.get().access_token == "b"
    assert source.calls == ["grant", "grant"]


def test_a_refusal_of_an_older_token_uses_the_current_one() -> None:
    clock = FakeClock()
    brain = manager(clock, ScriptedSource(clock), initial=token(clock, "new"))
    assert brain._join(token(clock, "old"), None) == Use(brain.token)  # type: ignore[arg-type]


def test_a_due_token_is_used_and_renewed_behind() -> None:
    """STALE: get() returns the current token; one background flight starts."""
    clock = FakeClock()
    source = ScriptedSource(clock, "b")
    brain = manager(clock, source, initial=token(clock, "a"))
    clock.advance(3600 - 59)
    assert brain.get().access_token == "a"
    assert brain.settle(5)
    assert brain.get().access_token == "b"
    assert source.calls == ["refresh"]


def test_background_failures_back_off() -> None:
    """After a failed background renewal, due requests start none until the pause ends."""
    clock = FakeClock()
    source = ScriptedSource(
        clock,
        CredentialsRejectedError("no", status_code=400),  # the refresh is refused...
        CredentialsRejectedError("no", status_code=400),  # ...and so is the grant
        "b",
    )
    brain = manager(clock, source, initial=token(clock, "a"))
    clock.advance(3600 - 59)
    assert brain.get().access_token == "a"
    assert brain.settle(5)
    assert source.calls == ["refresh", "grant"]
    for _ in range(9):  # refused credentials: the cap, whatever the jitter
        clock.advance(1)
        assert brain.get().access_token == "a"
        assert brain.settle(5)
    assert source.calls == ["refresh", "grant"]
    clock.advance(BACKOFF_CAP * 0.25 + 1)
    brain.get()
    assert brain.settle(5)
    assert brain.get().access_token == "b"


# -- the renewal plan, driven by hand ----------------------------------------------------


def test_the_plan_adopts_a_fresh_shared_token_without_a_call() -> None:
    clock = FakeClock()
    source = ScriptedSource(clock)
    brain = manager(clock, source)
    plan = brain._renewer.renewal("first use", None, "first_use")
    assert isinstance(next(plan), CacheLock)
    assert isinstance(plan.send(None), CacheGet)
    with pytest.raises(StopIteration) as done:
        plan.send(token(clock, "shared"))
    entry, fetched = done.value.value
    assert (entry.token.access_token, fetched) == ("shared", False)
    assert source.calls == []


def test_the_plan_survives_a_failing_cache_and_falls_back_to_the_grant() -> None:
    """Lock and read fail (logged, skipped); the refresh is refused; the grant is stored."""
    clock = FakeClock()
    source = ScriptedSource(clock, CredentialsRejectedError("gone", status_code=400), "b")
    brain = manager(clock, source)
    plan = brain._renewer.renewal(
        "token expired", brain._renewer.entry_for(token(clock, "a")), "expired"
    )
    assert isinstance(next(plan), CacheLock)
    assert isinstance(plan.throw(CacheError("down")), CacheGet)
    stored = plan.throw(CacheError("down"))
    assert isinstance(stored, CacheSet)
    assert stored.token.access_token == "b"
    with pytest.raises(StopIteration) as done:
        plan.throw(CacheError("still down"))
    assert done.value.value[1] is True
    assert source.calls == ["refresh", "grant"]


def test_a_refresh_answer_without_refresh_token_keeps_the_old_one() -> None:
    clock = FakeClock()
    bare = Token(access_token="b", expires_at=clock.time() + 60, issued_at=clock.time())
    source = ScriptedSource(clock, bare)
    brain = manager(clock, source, initial=token(clock, "a"))
    clock.advance(3600)
    assert brain.get().refresh_token == "rt-a"


def test_async_callers_share_the_same_decisions() -> None:
    clock = FakeClock()
    source = ScriptedSource(clock, "a", "b")
    brain = manager(clock, source)

    async def main() -> list[str]:
        first = await asyncio.gather(*(brain.aget() for _ in range(10)))
        clock.advance(3600 - 59)
        due = await brain.aget()  # answered at once, renewed in a detached task
        assert await brain.asettle(5)
        return [t.access_token for t in (*first, due, await brain.aget())]

    assert asyncio.run(main()) == ["a"] * 11 + ["b"]
    assert source.calls == ["grant", "refresh"]


# -- refusals and revocation -----------------------------------------------------------


def test_a_refused_renewed_token_quiets_refusals_unless_it_was_adopted() -> None:
    """Fetched and refused again: quiet for REFUSAL_QUIET; adopted from the cache: not."""
    quiet = QuietRefusals()
    clock = FakeClock()
    adopted, fetched = token(clock, "adopted"), token(clock, "fetched")
    quiet.adopted = adopted
    assert quiet.refused_again(adopted, now=100.0) is False
    assert not quiet.quiet(100.0)
    assert quiet.refused_again(fetched, now=100.0) is True
    assert quiet.quiet(100.0 + REFUSAL_QUIET - 0.001)
    assert not quiet.quiet(100.0 + REFUSAL_QUIET)


def test_renew_rejected_hands_back_none_while_refusals_are_quiet() -> None:
    """After replay_refused(), a refusal is not answered with a renewal."""
    clock = FakeClock()
    source = ScriptedSource(clock, "b")
    brain = manager(clock, source, initial=token(clock, "a"))
    refused = brain.renew_rejected(brain.token)  # type: ignore[arg-type]
    assert refused is not None
    assert refused.access_token == "b"
    brain.replay_refused(refused)
    assert brain.renew_rejected(refused) is None
    assert source.calls == ["refresh"]


def test_revoke_forgets_the_token_it_revoked() -> None:
    """The manager drops the token the revocation plan hands back; none left: False."""
    clock = FakeClock()
    source = ScriptedSource(clock)
    brain = manager(clock, source, initial=token(clock, "a"))
    assert brain.revoke() is True
    assert brain.token is None
    assert asyncio.run(brain.arevoke()) is False
    assert source.calls == ["revoke"]
