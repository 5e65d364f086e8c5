"""What each client adds beyond the shared behavioural suite (tests/conftest.py's drivers).

The suite proves every token behaviour for every client. Here: the ways each client
takes an auth object (aiohttp's session and request middlewares, niquests' module
functions), how aiohttp's per-hop middlewares keep the token on its origin, that
async clients never block their loop while a token call is held open (counted, not
timed), trio's single flight and cancellation, one object shared by three clients on
three loops at once, and the urllib3 each environment really runs.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests

from authplug import BaseAuth
from authplug.testing import FakeClock, LoopbackServer, OAuth2Emulator, Request, Response, settle

from ..conftest import password_auth
from ..gated import GatedEmulator

aiohttp = pytest.importorskip("aiohttp")
trio = pytest.importorskip("trio")

#: A safety net for waits on other threads (never reached when the code is right).
SAFETY = 10.0


def _niquests() -> Any:
    return pytest.importorskip(
        "niquests", reason="niquests runs in its own tox environment: tox -e niquests"
    )


# -- the urllib3 each environment runs -------------------------------------------------


def test_requests_is_tested_on_the_real_urllib3() -> None:
    """Where niquests is absent, ``urllib3`` is urllib3 itself, as requests' users run it."""
    if importlib.util.find_spec("niquests") is not None:
        pytest.skip("the niquests environment runs urllib3-future (tox -e niquests)")
    import urllib3

    assert urllib3.__version__ == importlib.metadata.version("urllib3")
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("urllib3-future")


def test_niquests_environment_runs_urllib3_future() -> None:
    """niquests' own environment: urllib3-future provides ``urllib3`` there."""
    _niquests()
    import urllib3

    assert urllib3.__version__ == importlib.metadata.version("urllib3-future")


# -- aiohttp -------------------------------------------------------------------------


def test_aiohttp_session_middleware(emulator: OAuth2Emulator) -> None:
    """``ClientSession(middlewares=(auth,))``: Bearer, renewal and replay; the token
    calls never go through the user's session."""
    auth = password_auth(emulator)
    through_session: list[str] = []
    traces = aiohttp.TraceConfig()

    async def started(session: Any, context: Any, params: Any) -> None:
        through_session.append(str(params.url))

    traces.on_request_start.append(started)

    async def main() -> list[int]:
        statuses = []
        async with aiohttp.ClientSession(middlewares=(auth,), trace_configs=[traces]) as session:
            for _ in range(3):
                async with session.get(emulator.api_url()) as response:
                    statuses.append(response.status)
            emulator.revoke_all()
            async with session.post(emulator.api_url(), data=b"payload") as response:
                statuses.append(response.status)
        return statuses

    assert asyncio.run(main()) == [200, 200, 200, 200]
    assert emulator.token_calls == {"password": 1, "refresh_token": 1}
    assert [hit.status for hit in emulator.api_log] == [200, 200, 200, 401, 200]
    assert through_session == [emulator.api_url()] * 4
    assert not any("/token" in url for url in through_session)


@pytest.fixture
def elsewhere() -> Iterator[tuple[LoopbackServer, list[Request]]]:
    received: list[Request] = []

    def app(request: Request) -> Response:
        received.append(request)
        return Response.json(200, {"elsewhere": True})

    with LoopbackServer(app) as server:
        yield server, received


def test_aiohttp_redirect_to_another_origin_gets_no_token(
    emulator: OAuth2Emulator, elsewhere: tuple[LoopbackServer, list[Request]]
) -> None:
    """aiohttp runs middlewares on every hop: the token still goes to the first origin only."""
    server, received = elsewhere
    target = server.url.replace("127.0.0.1", "localhost") + "/landing"
    auth = password_auth(emulator)

    async def main() -> list[int]:
        statuses = []
        async with aiohttp.ClientSession(middlewares=(auth,)) as session:
            for url in (emulator.api_url("/redirect"), emulator.api_url()):
                async with session.get(url, params={"to": target}) as response:
                    statuses.append(response.status)
        return statuses

    assert asyncio.run(main()) == [200, 200]
    assert len(received) == 1
    assert "authorization" not in received[0].headers
    assert [bool(hit.authorization) for hit in emulator.api_log] == [True, True]
    assert emulator.token_calls == {"password": 1}


def test_aiohttp_anchor_without_a_chain() -> None:
    """Where aiohttp would give no chain of hops, the first origin served stands for all
    (the rule of aiohttp's DigestAuthMiddleware). Pure logic: a stand-in request."""
    from types import SimpleNamespace

    from yarl import URL

    from authplug._adapters.aiohttp_middleware import Anchor, off_origin

    anchor = Anchor()
    first = SimpleNamespace(url=URL("https://api.example/v1/a"))
    same = SimpleNamespace(url=URL("https://api.example/v2/b"))
    other = SimpleNamespace(url=URL("https://cdn.example/file"))
    assert not off_origin(anchor, first)  # type: ignore[arg-type]
    assert not off_origin(anchor, same)  # type: ignore[arg-type]
    assert off_origin(anchor, other)  # type: ignore[arg-type]


# -- niquests ------------------------------------------------------------------------


def test_niquests_module_functions(emulator: OAuth2Emulator) -> None:
    """``niquests.get(url, auth=auth)`` and ``await niquests.aget(url, auth=auth)``."""
    niquests = _niquests()
    auth = password_auth(emulator)
    assert niquests.get(emulator.api_url(), auth=auth, timeout=10).status_code == 200
    emulator.revoke_all()

    async def main() -> int:
        response = await niquests.aget(emulator.api_url(), auth=auth, timeout=10)
        return int(response.status_code)

    assert asyncio.run(main()) == 200
    assert emulator.token_calls == {"password": 1, "refresh_token": 1}


# -- async clients never block their loop ---------------------------------------------


async def _asyncio_get(kind: str, auth: BaseAuth, url: str) -> int:
    if kind == "aiohttp":
        async with (
            aiohttp.ClientSession(middlewares=(auth,)) as session,
            session.get(url) as response,
        ):
            return response.status
    if kind == "niquests_async":
        async with _niquests().AsyncSession(auth=auth) as session:
            return int((await session.get(url, timeout=10)).status_code)
    async with httpx.AsyncClient(auth=auth, timeout=10) as client:
        return (await client.get(url)).status_code


@pytest.fixture
def gated() -> Iterator[GatedEmulator]:
    with GatedEmulator() as running:
        yield running


@pytest.mark.parametrize("kind", ["aiohttp", "httpx_async", "niquests_async"])
def test_asyncio_clients_never_block_the_loop_on_a_token_call(
    gated: GatedEmulator, kind: str
) -> None:
    """While the token endpoint holds the first token call, the loop keeps turning."""
    if kind == "niquests_async":
        _niquests()
    auth = password_auth(gated)
    gated.hold_next(1)

    async def main() -> tuple[int, int]:
        request = asyncio.ensure_future(_asyncio_get(kind, auth, gated.api_url()))
        ticks = 0
        while not request.done():
            await asyncio.sleep(0.005)
            if gated.holding:
                ticks += 1
                if ticks == 20:
                    gated.release()
        return await request, ticks

    assert asyncio.run(asyncio.wait_for(main(), SAFETY)) == (200, 20)
    assert gated.token_calls == {"password": 1}


# -- trio ----------------------------------------------------------------------------


def test_trio_waiting_never_blocks_the_run(gated: GatedEmulator) -> None:
    """httpx.AsyncClient inside trio.run: the run keeps turning while the call is held."""
    auth = password_auth(gated)
    gated.hold_next(1)
    results: dict[str, int] = {}

    async def main() -> None:
        async with httpx.AsyncClient(auth=auth, timeout=10) as client:

            async def first() -> None:
                results["status"] = (await client.get(gated.api_url())).status_code

            async with trio.open_nursery() as nursery:
                nursery.start_soon(first)
                ticks = 0
                while "status" not in results:
                    await trio.sleep(0.005)
                    if gated.holding:
                        ticks += 1
                        if ticks == 20:
                            gated.release()
                results["ticks"] = ticks

    trio.run(main)
    assert results == {"status": 200, "ticks": 20}
    assert gated.token_calls == {"password": 1}


def test_trio_single_flight_and_renewal(emulator: OAuth2Emulator, clock: FakeClock) -> None:
    """200 trio tasks without a token: one token call; a refused token: one renewal;
    a token come due: one background renewal, nobody waiting for it."""
    slow = OAuth2Emulator(token_delay=0.2)
    with slow:
        auth = password_auth(slow, clock=clock)

        async def wave(client: httpx.AsyncClient, count: int) -> list[int]:
            statuses: list[int] = []

            async def one() -> None:
                statuses.append((await client.get(slow.api_url())).status_code)

            async with trio.open_nursery() as nursery:
                for _ in range(count):
                    nursery.start_soon(one)
            return statuses

        async def main() -> None:
            limits = httpx.Limits(max_connections=20)
            async with httpx.AsyncClient(auth=auth, timeout=30, limits=limits) as client:
                assert await wave(client, 200) == [200] * 200
                assert slow.token_calls == {"password": 1}
                slow.revoke_all()
                assert await wave(client, 200) == [200] * 200
                assert slow.token_calls == {"password": 1, "refresh_token": 1}
                clock.advance(3600 - 30)  # inside the renewal window, still valid
                assert await wave(client, 50) == [200] * 50
                from authplug.testing import asettle

                await asettle(auth)
                assert slow.token_calls == {"password": 1, "refresh_token": 2}

        trio.run(main)


def test_trio_cancelled_leader_strands_no_one() -> None:
    """Cancelling the trio task that started the token call leaves the others their token."""
    with OAuth2Emulator(token_delay=0.5) as emulator:
        auth = password_auth(emulator)
        tokens: list[str] = []

        async def main() -> None:
            async def follower() -> None:
                tokens.append((await auth.aget_token()).access_token)

            leader_scope = trio.CancelScope()

            async def leader() -> None:
                with leader_scope:
                    await auth.aget_token()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(leader)
                await trio.sleep(0.05)  # the leader is now in flight
                for _ in range(10):
                    nursery.start_soon(follower)
                await trio.sleep(0)
                leader_scope.cancel()

        trio.run(main)
        assert len(tokens) == 10
        assert len(set(tokens)) == 1
        assert emulator.token_calls == {"password": 1}


def test_trio_aclose_keeps_the_answer_of_its_token_call() -> None:
    """``await auth.aclose()`` inside trio returns while a token call is held at the
    endpoint, and does not cut it: released, its answer is stored and the caller gets it."""
    with GatedEmulator() as gated:
        auth = password_auth(gated)
        gated.hold_next(1)
        outcome: dict[str, Any] = {}

        async def main() -> None:
            async def fetch() -> None:
                try:
                    outcome["token"] = await auth.aget_token()
                except Exception as exc:
                    outcome["error"] = exc

            async with trio.open_nursery() as nursery:
                nursery.start_soon(fetch)
                while not gated.holding:
                    await trio.sleep(0.005)
                await auth.aclose()
                outcome["held after aclose"] = gated.holding
                gated.release()

        trio.run(main)
        assert "error" not in outcome
        assert outcome["held after aclose"] == 1
        assert outcome["token"] == auth.token
        assert gated.token_calls == {"password": 1}
        settle(auth)  # its leader ends too
        assert auth._manager._leaders.count == 0


# -- one object, three clients, three loops -------------------------------------------


def test_one_object_requests_aiohttp_and_trio_at_once(clock: FakeClock) -> None:
    """A requests thread, aiohttp tasks on asyncio and httpx tasks on trio, all at the
    moment the token needs renewing: one token call per renewal, shared by all."""
    with OAuth2Emulator(token_delay=0.3) as emulator:
        auth = password_auth(emulator, clock=clock)
        url = emulator.api_url()
        statuses: dict[str, list[int]] = {"requests": [], "aiohttp": [], "trio": []}

        def wave() -> None:
            start = threading.Barrier(3)

            def with_requests() -> None:
                start.wait(SAFETY)
                with requests.Session() as session:
                    session.auth = auth
                    for _ in range(5):
                        statuses["requests"].append(session.get(url, timeout=10).status_code)

            def with_aiohttp() -> None:
                async def main() -> None:
                    async with aiohttp.ClientSession(middlewares=(auth,)) as session:

                        async def one() -> None:
                            async with session.get(url) as response:
                                statuses["aiohttp"].append(response.status)

                        start.wait(SAFETY)
                        await asyncio.gather(*(one() for _ in range(20)))

                asyncio.run(main())

            def with_trio() -> None:
                async def main() -> None:
                    async with httpx.AsyncClient(auth=auth, timeout=10) as client:

                        async def one() -> None:
                            statuses["trio"].append((await client.get(url)).status_code)

                        start.wait(SAFETY)
                        async with trio.open_nursery() as nursery:
                            for _ in range(20):
                                nursery.start_soon(one)

                trio.run(main)

            workers = [threading.Thread(target=f) for f in (with_requests, with_aiohttp, with_trio)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(SAFETY * 3)

        wave()  # no token yet
        assert emulator.token_calls == {"password": 1}
        clock.advance(3600 + 1)  # expired: everyone must wait for the renewal
        wave()
        assert emulator.token_calls == {"password": 1, "refresh_token": 1}
        emulator.revoke_all()  # refused: one renewal after the refusals
        wave()
        settle(auth)
        assert emulator.token_calls == {"password": 1, "refresh_token": 2}
        assert statuses == {"requests": [200] * 15, "aiohttp": [200] * 60, "trio": [200] * 60}
