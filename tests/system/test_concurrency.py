"""Single flight: many threads and tasks, one token call. Counted, never timed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import requests

from authplug import BaseAuth, CredentialsRejectedError, TokenEndpointError
from authplug.cache import MemoryTokenCache
from authplug.testing import FakeClock, OAuth2Emulator, settle

from ..conftest import password_auth

THREADS = 64
TASKS = 300  # was 1,000: the same outcome, a third of the default run's 11 s


def _threads(auth: BaseAuth, url: str, count: int = THREADS) -> list[int | BaseException]:
    """``count`` threads released together, half with requests and half with httpx."""
    barrier = threading.Barrier(count)
    client = httpx.Client(auth=auth, timeout=30)

    def one(index: int) -> int | BaseException:
        barrier.wait()
        try:
            if index % 2:
                return client.get(url).status_code
            with requests.Session() as session:
                session.auth = auth
                return session.get(url, timeout=30).status_code
        except Exception as exc:
            return exc

    try:
        with ThreadPoolExecutor(count) as pool:
            return list(pool.map(one, range(count)))
    finally:
        client.close()


async def _tasks(auth: BaseAuth, url: str, count: int = TASKS) -> list[int | BaseException]:
    """``count`` tasks started together, spread over 20 clients.

    One AsyncClient with a thousand requests queued on its pool spends its time in
    httpcore's queue handling, not in our code; twenty small pools keep the run short.
    """
    limits = httpx.Limits(max_connections=5)
    clients = [httpx.AsyncClient(auth=auth, timeout=60, limits=limits) for _ in range(20)]

    async def one(index: int) -> int:
        return (await clients[index % len(clients)].get(url)).status_code

    try:
        return await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    finally:
        for client in clients:
            await client.aclose()


@pytest.fixture
def slow_emulator() -> Iterator[OAuth2Emulator]:
    """Token calls take a moment, so that every caller arrives while one is in flight."""
    with OAuth2Emulator(token_delay=0.2) as emulator:
        yield emulator


def test_threads_missing_token(slow_emulator: OAuth2Emulator) -> None:
    """64 threads that find no token cause exactly one token call."""
    auth = password_auth(slow_emulator)
    assert _threads(auth, slow_emulator.api_url()) == [200] * THREADS
    assert slow_emulator.token_calls == {"password": 1}


def test_threads_expired_token(slow_emulator: OAuth2Emulator, clock: FakeClock) -> None:
    """64 threads that find the token expired cause exactly one renewal."""
    auth = password_auth(slow_emulator, clock=clock)
    auth.get_token()
    clock.advance(7200)
    assert _threads(auth, slow_emulator.api_url()) == [200] * THREADS
    assert slow_emulator.token_calls == {"password": 1, "refresh_token": 1}


def test_threads_refused_token(slow_emulator: OAuth2Emulator) -> None:
    """64 threads whose token is refused by the API cause exactly one renewal."""
    auth = password_auth(slow_emulator)
    auth.get_token()
    slow_emulator.revoke_all()
    assert _threads(auth, slow_emulator.api_url()) == [200] * THREADS
    assert slow_emulator.token_calls == {"password": 1, "refresh_token": 1}


def test_tasks_missing_token(slow_emulator: OAuth2Emulator) -> None:
    """300 asyncio tasks that find no token cause exactly one token call."""
    auth = password_auth(slow_emulator)
    assert asyncio.run(_tasks(auth, slow_emulator.api_url())) == [200] * TASKS
    assert slow_emulator.token_calls == {"password": 1}


def test_tasks_refused_token(slow_emulator: OAuth2Emulator) -> None:
    """300 tasks whose token is refused cause exactly one renewal."""
    auth = password_auth(slow_emulator)
    auth.get_token()
    slow_emulator.revoke_all()
    assert asyncio.run(_tasks(auth, slow_emulator.api_url())) == [200] * TASKS
    assert slow_emulator.token_calls == {"password": 1, "refresh_token": 1}


def test_threads_and_tasks_share_one_flight(slow_emulator: OAuth2Emulator) -> None:
    """Threads and tasks on one object at the same moment share the same token call."""
    auth = password_auth(slow_emulator)
    url = slow_emulator.api_url()
    results: dict[str, list[int | BaseException]] = {}
    start = threading.Barrier(2)

    def run_tasks() -> None:
        start.wait()
        results["tasks"] = asyncio.run(_tasks(auth, url, 200))

    def run_threads() -> None:
        start.wait()
        results["threads"] = _threads(auth, url, 16)

    workers = [threading.Thread(target=run_tasks), threading.Thread(target=run_threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert results["tasks"] == [200] * 200
    assert results["threads"] == [200] * 16
    assert slow_emulator.token_calls == {"password": 1}


def test_failure_reaches_every_waiter_and_is_remembered(
    slow_emulator: OAuth2Emulator, clock: FakeClock
) -> None:
    """Everyone waiting gets the failure; for about a second no new call is made."""
    auth = password_auth(slow_emulator, clock=clock, password="wrong-password")
    outcomes = _threads(auth, slow_emulator.api_url(), 32)
    assert all(isinstance(o, CredentialsRejectedError) for o in outcomes)
    assert slow_emulator.token_calls == {"password": 1}
    with pytest.raises(CredentialsRejectedError):
        auth.get_token()
    assert slow_emulator.token_calls == {"password": 1}
    clock.advance(1.5)
    with pytest.raises(CredentialsRejectedError):
        auth.get_token()
    assert slow_emulator.token_calls == {"password": 2}


def test_async_failure_reaches_every_task(slow_emulator: OAuth2Emulator) -> None:
    """Tasks waiting on a failed call all get its error; one call was made."""
    auth = password_auth(slow_emulator, password="wrong-password")
    outcomes = asyncio.run(_tasks(auth, slow_emulator.api_url(), 100))
    assert all(isinstance(o, CredentialsRejectedError) for o in outcomes)
    assert slow_emulator.token_calls == {"password": 1}


def test_cancelled_leader_strands_no_one() -> None:
    """Cancelling the task that started the token call leaves the others their token."""
    with OAuth2Emulator(token_delay=0.5) as emulator:
        auth = password_auth(emulator)

        async def main() -> list[str]:
            leader = asyncio.create_task(auth.aget_token())
            await asyncio.sleep(0.05)  # the leader is now in flight
            followers = [asyncio.create_task(auth.aget_token()) for _ in range(10)]
            await asyncio.sleep(0)
            leader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await leader
            return [(await f).access_token for f in followers]

        tokens = asyncio.run(main())
        assert len(set(tokens)) == 1
        assert emulator.token_calls == {"password": 1}


def test_waiting_does_not_block_the_loop() -> None:
    """While a thread leads the token call, waiting tasks leave the event loop running."""
    with OAuth2Emulator(token_delay=0.5) as emulator:
        auth = password_auth(emulator)
        started = threading.Event()

        def lead() -> None:
            started.set()
            auth.get_token()

        async def main() -> int:
            ticks = 0
            waiter = asyncio.create_task(auth.aget_token())
            while not waiter.done():
                ticks += 1
                await asyncio.sleep(0.01)
            await waiter
            return ticks

        thread = threading.Thread(target=lead)
        thread.start()
        started.wait()
        ticks = asyncio.run(main())
        thread.join()
        assert ticks > 5  # the loop kept turning while the token call was in flight
        assert emulator.token_calls == {"password": 1}


def test_proactive_failure_uses_current_token(
    emulator: OAuth2Emulator, clock: FakeClock, authlog: pytest.LogCaptureFixture
) -> None:
    """A failed proactive renewal sends the still-valid token and logs a warning."""
    auth = password_auth(emulator, clock=clock, retries=0)
    first = auth.get_token()
    clock.advance(3580)
    emulator.fail_next(1, status=503)
    with httpx.Client(auth=auth) as client:
        assert client.get(emulator.api_url()).status_code == 200
    settle(auth)
    assert emulator.api_log[-1].authorization == f"Bearer {first.access_token}"
    assert any(
        r.levelname == "WARNING" and "the current token is used" in r.getMessage()
        for r in authlog.records
    )
    clock.advance(25)  # past the deadline: no token left to fall back on
    emulator.fail_next(1, status=503)
    with pytest.raises(TokenEndpointError):
        auth.get_token()


class LoopOnlyCache(MemoryTokenCache):
    """A cache only an event loop can drive (as a redis.asyncio client)."""

    serves_sync = False


def test_blocking_wait_on_the_loop_thread_is_refused() -> None:
    """A sync call on the loop's thread, waiting on that loop's own flight, fails clearly.

    (A flight led on the loop: with a cache only the loop can drive.)
    """
    with OAuth2Emulator(token_delay=0.3) as emulator:
        auth = password_auth(emulator, cache=LoopOnlyCache())

        async def main() -> None:
            leader = asyncio.create_task(auth.aget_token())
            await asyncio.sleep(0.05)
            with pytest.raises(TokenEndpointError, match="event loop"):
                auth.get_token()
            await leader

        asyncio.run(main())
        assert emulator.token_calls == {"password": 1}


def test_blocking_wait_on_the_loop_thread_for_a_thread_leader_succeeds() -> None:
    """A sync call on the loop's thread gets the token an async caller's renewal brings:
    that renewal runs in a thread of its own, not on the (now blocked) loop."""
    with OAuth2Emulator(token_delay=0.3) as emulator:
        auth = password_auth(emulator)

        async def main() -> tuple[str, str]:
            leader = asyncio.create_task(auth.aget_token())
            await asyncio.sleep(0.05)
            blocking = auth.get_token()
            return blocking.access_token, (await leader).access_token

        blocking, led = asyncio.run(main())
        assert blocking == led
        assert emulator.token_calls == {"password": 1}
