"""Nobody waits forever on a token call: a flight whose event loop was closed strands none
of its waiters, a forked child does not wait on its parent's flight, and waiters of a flight
that never ends give up after the wait limit. Counted, never timed: the only durations are
generous safety nets against a hang.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
import requests

from authplug import (
    AuthError,
    BaseAuth,
    Token,
    TokenEndpointError,
)
from authplug.cache import MemoryTokenCache
from authplug.testing import OAuth2Emulator

from ..conftest import make_driver, password_auth
from ..forked import wait_for_child
from ..gated import GatedEmulator

T = TypeVar("T")

#: The longest any step may take before the test calls it stranded (a safety net).
SAFETY = 30.0

#: Where Flight.wait is defined: a thread in it waits on another caller's token call.
FLIGHT_MODULE = os.path.join("_renew", "flight.py")


@pytest.fixture
def gated() -> Iterator[GatedEmulator]:
    with GatedEmulator() as emulator:
        try:
            yield emulator
        finally:
            emulator.release()


def _bounded(call: Callable[[], T], limit: float = SAFETY) -> T:
    """Run ``call`` in a daemon thread; fail (instead of hanging) if it never returns."""
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        pytest.fail(f"still waiting after {limit:.0f}s: the caller was stranded")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


async def _until_arrived(emulator: GatedEmulator) -> None:
    """Turn the loop until the held token call has reached the endpoint."""
    for _ in range(int(SAFETY * 100)):
        if emulator.arrived.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the token call never reached the endpoint")


class LoopOnlyCache(MemoryTokenCache):
    """A cache only an event loop can drive (as a redis.asyncio client): async callers
    then lead token calls in tasks on their loop, which may be closed under them."""

    serves_sync = False


def _loop_auth(emulator: OAuth2Emulator, **options: Any) -> BaseAuth:
    return password_auth(emulator, cache=LoopOnlyCache(), **options)


def _stopped_loop_leading(auth: BaseAuth, emulator: GatedEmulator) -> asyncio.AbstractEventLoop:
    """A loop (stopped, still open) whose detached task leads a held token call.

    The caller's ``wait_for(…, 0.2)`` gives up; the leader task stays behind, its
    request at the endpoint.
    """
    emulator.hold_next(1)
    loop = asyncio.new_event_loop()
    with pytest.raises((TimeoutError, asyncio.TimeoutError)):
        loop.run_until_complete(asyncio.wait_for(auth.aget_token(), 0.2))
    loop.run_until_complete(_until_arrived(emulator))
    return loop


def _issued(emulator: OAuth2Emulator) -> list[str]:
    """The access tokens the token endpoint issued, in the order it answered."""
    return [entry.issued for entry in emulator.journal if entry.issued is not None]


def _warnings(log: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [
        r.getMessage()
        for r in log.records
        if r.name == "authplug" and r.levelname == "WARNING" and words in r.getMessage()
    ]


def _thread_waits_on_flight(thread: threading.Thread) -> bool:
    """The thread is inside ``Flight.wait`` (waiting on someone else's token call)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "wait" and code.co_filename.endswith(
            os.path.join("_renew", "flight.py")
        ):
            return True
        frame = frame.f_back
    return False


def _task_waits_on_flight(auth: BaseAuth) -> bool:
    """An asyncio task waits on the current flight (it registered its wake-up)."""
    flight = auth._manager._flight
    return flight is not None and bool(flight._callbacks)


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(SAFETY * 100)):
        if condition():
            return
        time.sleep(0.01)
    pytest.fail(f"never happened: {what}")


@pytest.mark.parametrize("kind", ["requests", "httpx"])
def test_closed_loop_does_not_strand_sync_clients(
    gated: GatedEmulator, kind: str, authlog: pytest.LogCaptureFixture
) -> None:
    """After the loop leading a token call is closed, sync requests get a new token.

    The flight led by a task of a closed loop can never end; the next caller abandons
    it and leads a new one instead of waiting on it (for the whole wait limit, or
    forever). A new loop's async request then works too.
    """
    auth = _loop_auth(gated)
    loop = _stopped_loop_leading(auth, gated)
    loop.close()
    driver = make_driver(kind)
    try:
        result = _bounded(lambda: driver.send(auth, "GET", gated.api_url()))
    finally:
        driver.close()
    assert result.status == 200
    assert gated.token_calls == {"password": 2}  # the stranded call and the new one
    assert gated.api_log[-1].authorization == f"Bearer {_issued(gated)[-1]}"
    assert len(_warnings(authlog, "abandoned (its event loop was closed)")) == 1

    async def in_a_new_loop() -> int:
        async with httpx.AsyncClient(auth=auth, timeout=10) as client:
            return (await client.get(gated.api_url())).status_code

    assert asyncio.run(asyncio.wait_for(in_a_new_loop(), SAFETY)) == 200
    assert gated.token_calls == {"password": 2}


def test_closed_loop_does_not_strand_a_new_loop(
    gated: GatedEmulator, authlog: pytest.LogCaptureFixture
) -> None:
    """An async request timed out and its loop closed; a new loop's requests succeed.

    The first loop's async httpx request led the token call and was cut short by
    ``wait_for``; the leader task died with its loop. A new loop must not wait on that
    flight: it gets its own token, and a sync request afterwards shares it.
    """
    auth = _loop_auth(gated)
    gated.hold_next(1)
    first = asyncio.new_event_loop()
    try:
        client = httpx.AsyncClient(auth=auth, timeout=10)
        with pytest.raises((TimeoutError, asyncio.TimeoutError)):
            first.run_until_complete(asyncio.wait_for(client.get(gated.api_url()), 0.2))
        first.run_until_complete(_until_arrived(gated))
    finally:
        first.close()

    async def in_a_new_loop() -> tuple[int, Token]:
        async with httpx.AsyncClient(auth=auth, timeout=10) as fresh:
            status = (await fresh.get(gated.api_url())).status_code
        return status, await auth.aget_token()

    status, token = asyncio.run(asyncio.wait_for(in_a_new_loop(), SAFETY))
    assert status == 200
    assert gated.token_calls == {"password": 2}
    assert token.access_token == _issued(gated)[-1]
    with requests.Session() as session:
        session.auth = auth
        assert session.get(gated.api_url(), timeout=10).status_code == 200
    assert gated.token_calls == {"password": 2}
    assert len(_warnings(authlog, "abandoned (its event loop was closed)")) == 1


@pytest.mark.parametrize("waiter", ["thread", "task"])
def test_waiter_notices_its_leaders_loop_closing(gated: GatedEmulator, waiter: str) -> None:
    """A caller already waiting when the leader's loop is closed leads a new call.

    It waits on a flight led by a task of another (stopped) loop. When that loop is
    closed, the waiter notices within a poll and gets a token, instead of waiting out
    the wait limit (over two minutes with the defaults) or, for a task, forever.
    """
    auth = _loop_auth(gated)
    loop = _stopped_loop_leading(auth, gated)
    statuses: list[int] = []

    def sync_waiter() -> None:
        with requests.Session() as session:
            session.auth = auth
            statuses.append(session.get(gated.api_url(), timeout=10).status_code)

    async def async_waiter() -> None:
        async with httpx.AsyncClient(auth=auth, timeout=10) as client:
            statuses.append((await client.get(gated.api_url())).status_code)

    def task_waiter() -> None:
        asyncio.run(asyncio.wait_for(async_waiter(), SAFETY))

    thread = threading.Thread(
        target=sync_waiter if waiter == "thread" else task_waiter, daemon=True
    )
    thread.start()
    try:
        if waiter == "thread":
            _wait_for(lambda: _thread_waits_on_flight(thread), "the thread waits")
        else:
            _wait_for(lambda: _task_waits_on_flight(auth), "the task waits")
        assert gated.token_calls == {"password": 1}
    finally:
        loop.close()
        thread.join(SAFETY)
    assert not thread.is_alive(), "the waiter was stranded on the closed loop's flight"
    assert statuses == [200]
    assert gated.token_calls == {"password": 2}


def test_every_waiter_of_an_abandoned_flight_joins_the_next(gated: GatedEmulator) -> None:
    """When the leader's loop closes under four waiting threads, all four get a token.

    The first to notice abandons the flight and leads a new one; the others must join
    that one, not receive an "abandoned" error. One new token call serves them all.
    """
    auth = _loop_auth(gated)
    loop = _stopped_loop_leading(auth, gated)
    outcomes: list[str] = []

    def waiter() -> None:
        try:
            outcomes.append(auth.get_token().access_token)
        except AuthError as exc:
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=waiter, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            _wait_for(functools.partial(_thread_waits_on_flight, thread), "the threads wait")
    finally:
        loop.close()
        for thread in threads:
            thread.join(SAFETY)
    assert len(set(outcomes)) == 1, outcomes
    assert outcomes[0] in _issued(gated)
    assert gated.token_calls == {"password": 2}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_wait_on_the_parents_flight(gated: GatedEmulator) -> None:
    """A child forked during the parent's token call gets its own token.

    A parent thread is inside a token call (held at the endpoint) when the process
    forks. That thread does not exist in the child, so the inherited flight would never
    end; the child must start with no flight and a lock of its own, make its own token
    call and succeed.
    """
    # Warm every import a request makes: forking during Authlib's first import
    # deadlocks the child on the import lock.
    with requests.Session() as session:
        session.auth = password_auth(gated)
        assert session.get(gated.api_url(), timeout=10).status_code == 200
    gated.reset_counters()

    auth = password_auth(gated)
    gated.hold_next(1)
    parent_tokens: list[Token] = []
    leader = threading.Thread(target=lambda: parent_tokens.append(auth.get_token()), daemon=True)
    leader.start()
    assert gated.arrived.wait(SAFETY), "the parent's token call never arrived"

    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(read_end)
            with requests.Session() as session:
                session.auth = auth
                response = session.get(gated.api_url(), timeout=10)
            sent = response.request.headers.get("Authorization", "")
            os.write(write_end, str(sent).encode())
            code = 0 if response.status_code == 200 else 2
        except BaseException:
            code = 3
        finally:
            os._exit(code)

    os.close(write_end)
    try:
        status = wait_for_child(
            pid, SAFETY, "the child waited on the flight it inherited; killed it"
        )
        with os.fdopen(read_end, "rb") as pipe:
            child_header = pipe.read().decode()
    finally:
        gated.release()
        leader.join(SAFETY)

    assert os.waitstatus_to_exitcode(status) == 0
    assert not leader.is_alive()
    assert gated.token_calls == {"password": 2}  # the parent's call and the child's own
    issued = _issued(gated)
    assert child_header in {f"Bearer {token}" for token in issued}
    assert parent_tokens[0].access_token in issued
    assert child_header != f"Bearer {parent_tokens[0].access_token}"


def test_waiters_give_up_on_a_stuck_leader(
    gated: GatedEmulator, authlog: pytest.LogCaptureFixture
) -> None:
    """Async and sync waiters of a flight that never ends give up with an error.

    The leader is a task of a loop that stopped running while its token call hangs at
    the endpoint: the flight outlives the wait limit (``timeout=0.5, retries=0``: the
    token call's worst case plus 5 s). Tasks (``aget_token`` and async requests) and
    threads (requests, httpx) waiting on it end with TokenEndpointError instead of
    waiting forever, and make no token call of their own; the next caller abandons the
    stuck flight and gets a token.
    """
    auth = _loop_auth(gated, timeout=0.5, retries=0)
    # The limit is the call's worst case plus 5 s of allowance for a cache's waits; no
    # cache waits here, so a shorter one keeps the test short (the logic is the same).
    auth._manager._wait_limit = 1.5
    loop = _stopped_loop_leading(auth, gated)
    try:
        sync_outcomes: list[object] = []

        def sync_waiter(use_httpx: bool) -> None:
            try:
                if use_httpx:
                    with httpx.Client(auth=auth, timeout=10) as client:
                        sync_outcomes.append(client.get(gated.api_url()).status_code)
                else:
                    with requests.Session() as session:
                        session.auth = auth
                        sync_outcomes.append(session.get(gated.api_url(), timeout=10).status_code)
            except Exception as exc:
                sync_outcomes.append(exc)

        threads = [
            threading.Thread(target=sync_waiter, args=(flag,), daemon=True)
            for flag in (False, True)
        ]
        for thread in threads:
            thread.start()

        async def async_waiters() -> list[object]:
            async with httpx.AsyncClient(auth=auth, timeout=10) as client:
                calls: list[Awaitable[object]] = [auth.aget_token() for _ in range(3)]
                calls += [client.get(gated.api_url()) for _ in range(3)]
                return list(await asyncio.gather(*calls, return_exceptions=True))

        async_outcomes = asyncio.run(asyncio.wait_for(async_waiters(), SAFETY))
        for thread in threads:
            thread.join(SAFETY)
        assert not any(thread.is_alive() for thread in threads)

        for outcome in [*async_outcomes, *sync_outcomes]:
            assert isinstance(outcome, TokenEndpointError), outcome
            assert "gave up after" in str(outcome)
        assert len(async_outcomes) == 6
        assert len(sync_outcomes) == 2
        assert gated.token_calls == {"password": 1}  # the stuck call only

        token = _bounded(auth.get_token)
        assert gated.token_calls == {"password": 2}
        assert token.access_token == _issued(gated)[-1]
        assert len(_warnings(authlog, "abandoned (stuck)")) == 1
    finally:
        loop.close()
