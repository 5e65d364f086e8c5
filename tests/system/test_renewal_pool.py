"""Background renewals share a small bounded pool of threads; closing has one budget.

Counted, never timed: the durations are safety nets against a hang.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from authplug import OAuth2PasswordAuth
from authplug._renew import pool as _pool
from authplug.testing import FakeClock, OAuth2Emulator, Request, settle
from authplug.testing import Response as EmulatorResponse

from ..conftest import password_auth
from ..gated import GatedEmulator

SAFETY = 30.0
DUE = 3600.0 - 30  # inside every object's renewal window, still valid


def _renewal_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == _pool.NAME)


def test_many_due_objects_renew_in_a_handful_of_threads() -> None:
    """Objects whose tokens come due together (25 times MAX_WORKERS of them) start at most
    MAX_WORKERS renewal threads, and every one of them is renewed.

    Each object's token is due; a request asks each for a token (handed back at once,
    the renewal queued). Each token call takes a while at the endpoint, so renewals
    overlap. After each request the renewal threads alive are counted; the threads
    that ran a renewal are counted too (``on_token`` runs in them).
    """
    fleet = 25 * _pool.MAX_WORKERS  # far more renewals queued than threads allowed
    clock = FakeClock()
    renewers: set[int] = set()

    def renewed(_: object) -> None:
        renewers.add(threading.get_ident())

    with OAuth2Emulator() as emulator:
        auths = [password_auth(emulator, clock=clock, on_token=renewed) for _ in range(fleet)]
        old = [auth.get_token().access_token for auth in auths]
        assert _pool.quiet(SAFETY)
        renewers.clear()
        emulator.token_delay = 0.005
        clock.advance(DUE)
        peak = 0
        for auth, token in zip(auths, old, strict=True):
            assert auth.get_token().access_token == token  # at once, the current token
            peak = max(peak, _renewal_threads())
        assert _pool.quiet(4 * SAFETY), "the renewals never ended"
        for auth in auths:
            settle(auth)
        assert emulator.token_calls == {"password": fleet, "refresh_token": fleet}
    assert 1 <= peak <= _pool.MAX_WORKERS
    assert 1 <= len(renewers) <= _pool.MAX_WORKERS
    pairs = zip(auths, old, strict=True)
    assert all(auth.get_token().access_token != token for auth, token in pairs)


def test_a_caller_whose_token_expired_runs_its_queued_renewal_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A renewal waiting in the pool's queue does not hold a caller whose token expired:
    the caller runs it at once, and the queued job is then skipped.

    With one worker, object A's refresh is held at the endpoint and object B's renewal
    waits in the queue. B's token then expires: B's next request runs that renewal
    itself and gets a new token while A's refresh is still held. Released, A completes;
    B's queued job makes no second call.
    """
    monkeypatch.setattr(_pool, "MAX_WORKERS", 1)
    monkeypatch.setattr(_pool, "_POOL", _pool._Pool())
    clock = FakeClock()
    with GatedEmulator() as emulator:
        try:
            a, b = (password_auth(emulator, clock=clock, retries=0, timeout=50) for _ in range(2))
            a.get_token()
            old = b.get_token()
            clock.advance(DUE)
            emulator.hold_next(1)
            a.get_token()
            assert emulator.arrived.wait(SAFETY)
            assert b.get_token() == old  # due: its renewal is queued behind A's
            clock.advance(3600)  # B's token has expired
            got: list[str] = []
            caller = threading.Thread(target=lambda: got.append(b.get_token().access_token))
            caller.start()
            caller.join(SAFETY)
            assert len(got) == 1, "the caller waited behind the held renewal"
            assert got[0] != old.access_token
            assert emulator.holding == 1  # A's refresh is still held
        finally:
            emulator.release()
        assert _pool.quiet(SAFETY)
        settle(a)
        settle(b)
        assert emulator.token_calls == {"password": 2, "refresh_token": 2}
        assert b.get_token().access_token == got[0]


# -- closing within one budget ------------------------------------------------------------


class HungRevocation(OAuth2Emulator):
    """A revocation endpoint that answers nothing until released."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.release = threading.Event()
        self.revocation_calls = 0

    def handle(self, request: Request) -> EmulatorResponse:
        if request.path == self.revocation_path:
            with self._lock:
                self.revocation_calls += 1
            self.release.wait(2 * SAFETY)
        return super().handle(request)


@pytest.fixture
def hung() -> Iterator[HungRevocation]:
    with HungRevocation() as emulator:
        try:
            yield emulator
        finally:
            emulator.release.set()


def _abandoned(authlog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in authlog.records
        if r.levelno == logging.WARNING and "did not finish within close_timeout" in r.getMessage()
    ]


def _bounded(call: Any) -> None:
    """Run ``call()`` in a thread; fail if it has not returned after SAFETY seconds."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(SAFETY)
    assert not thread.is_alive(), "closing did not return"
    assert not errors, errors


@pytest.mark.parametrize("how", ["with", "async_with"])
def test_closing_against_a_hung_revocation_endpoint_keeps_its_budget(
    hung: HungRevocation, authlog: pytest.LogCaptureFixture, how: str
) -> None:
    """Leaving ``with auth:`` (or ``async with``) with ``revoke_on_close=True`` returns
    once ``close_timeout`` is spent, whatever the retries, and says the revocation was
    abandoned.

    The revocation endpoint never answers; every attempt has ``timeout=10`` and three
    retries (over 40 s in all); the budget is 0.5 s. Closing returns, one revocation
    request reached the endpoint, and one WARNING says it was abandoned.
    """
    auth = password_auth(
        hung,
        revocation_url=hung.revocation_url,
        revoke_on_close=True,
        close_timeout=0.5,
        timeout=10,
        retries=3,
    )

    def sync() -> None:
        with auth:
            auth.get_token()

    async def inside() -> None:
        async with auth:
            await auth.aget_token()

    _bounded(sync if how == "with" else lambda: asyncio.run(inside()))
    assert hung.revocation_calls == 1
    assert len(_abandoned(authlog)) == 1
    assert auth.token is not None  # not revoked: it is kept, and still works


def test_close_timeout_is_checked() -> None:
    """``close_timeout=`` takes a number of seconds >= 0."""
    from authplug import ConfigurationError

    with pytest.raises(ConfigurationError, match="close_timeout"):
        OAuth2PasswordAuth(
            token_url="https://idp.example/token", username="u", password="p", close_timeout=-1
        )
    with pytest.raises(ConfigurationError, match="close_timeout"):
        OAuth2PasswordAuth(
            token_url="https://idp.example/token", username="u", password="p", close_timeout="5"
        )
