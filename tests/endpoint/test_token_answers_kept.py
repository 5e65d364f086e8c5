"""The answer to a token call that was sent is never lost.

With refresh-token rotation, a refresh that reached the token endpoint has spent the
old refresh token: dropping its answer leaves a retired refresh token behind, and the
next refresh is an ``invalid_grant`` (or, with reuse detection, the whole token family
is revoked). These tests hold the refresh at a real loopback emulator that rotates
refresh tokens and revokes the family when a retired one comes back, then end what
started it: the caller's event loop (``asyncio.run()`` and ``trio.run()`` per request,
for every async client), the object (closed), or the process (normal exit, SIGTERM).
Counted, never timed: the durations are safety nets against a hang.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import authplug
from authplug import BaseAuth, OAuth2PasswordAuth
from authplug._renew import pool as _pool
from authplug.cache import FileTokenCache
from authplug.testing import FakeClock, OAuth2Emulator, Request, settle
from authplug.testing import Response as EmulatorResponse

from ..conftest import password_auth
from ..gated import GatedEmulator

SAFETY = 30.0
LIFETIME = 3600.0
DUE = LIFETIME - 30  # inside the renewal window, still valid


class RotatingEmulator(GatedEmulator):
    """Rotates refresh tokens; a retired one presented again revokes its whole family
    (every refresh token issued since the first grant), as reuse detection does."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.retired: set[str] = set()
        self.reuses = 0

    def check_request(self, request: Request, params: dict[str, str]) -> EmulatorResponse | None:
        held = super().check_request(request, params)
        if held is not None or params.get("grant_type") != "refresh_token":
            return held
        presented = params.get("refresh_token", "")
        with self._lock:
            if presented in self.retired:
                self.reuses += 1
                self._refresh.clear()  # the family is revoked
                return self.reject_refresh_token()
            self.retired.add(presented)  # spent by this call, whatever comes of it
        return None


@pytest.fixture
def rotating() -> Iterator[RotatingEmulator]:
    with RotatingEmulator() as emulator:
        try:
            yield emulator
        finally:
            emulator.release()


def _issued(emulator: OAuth2Emulator) -> list[str]:
    return [entry.issued for entry in emulator.journal if entry.issued is not None]


# -- one event loop per request, for every async client ----------------------------------


async def _httpx(auth: BaseAuth, url: str) -> str:
    async with httpx.AsyncClient(auth=auth, timeout=10) as client:
        response = await client.get(url)
        return str(response.request.headers["Authorization"])


async def _httpx2(auth: BaseAuth, url: str) -> str:
    module = pytest.importorskip("httpx2")
    async with module.AsyncClient(auth=auth, timeout=10) as client:
        response = await client.get(url)
        return str(response.request.headers["Authorization"])


async def _aiohttp(auth: BaseAuth, url: str) -> str:
    aiohttp = pytest.importorskip("aiohttp")
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, middlewares=(auth,)) as response,
    ):
        return str(response.request_info.headers["Authorization"])


async def _niquests(auth: BaseAuth, url: str) -> str:
    niquests = pytest.importorskip("niquests", reason="niquests runs in its own environment")
    async with niquests.AsyncSession() as session:
        response = await session.get(url, auth=auth, timeout=10)
        return str(response.request.headers["Authorization"])


CLIENTS: dict[str, Callable[[BaseAuth, str], Any]] = {
    "httpx_asyncio": _httpx,
    "httpx_trio": _httpx,
    "httpx2": _httpx2,
    "aiohttp": _aiohttp,
    "niquests_async": _niquests,
}


def _run_once(kind: str, auth: BaseAuth, url: str, until: Callable[[], bool]) -> str:
    """One request in an event loop of its own, which ends once ``until()`` holds
    (the renewal it started is at the endpoint); the Authorization it sent."""
    send = CLIENTS[kind]

    async def job(sleep: Callable[[float], Any]) -> str:
        sent = await send(auth, url)
        for _ in range(int(SAFETY * 100)):
            if until():
                return sent
            await sleep(0.01)
        raise AssertionError("the renewal never reached the token endpoint")

    if kind == "httpx_trio":
        trio = pytest.importorskip("trio")
        return str(trio.run(job, trio.sleep))
    return asyncio.run(job(asyncio.sleep))


@pytest.mark.parametrize("kind", list(CLIENTS))
def test_a_renewal_outlives_the_event_loop_that_started_it(
    rotating: RotatingEmulator, tmp_path: Path, kind: str
) -> None:
    """A refresh sent for a request whose event loop then ends is read and stored.

    Each request runs in its own ``asyncio.run()`` (or ``trio.run()``). The token is
    due: a request goes out with it and starts a refresh, which the emulator holds;
    that request's loop ends. Released, the refresh's answer is stored, in the object
    and in the file cache: the next loop's request carries the new token without a
    token call, and the next renewal refreshes with the newest refresh token. No
    retired refresh token is ever presented, nothing falls back to the password grant.
    """
    clock = FakeClock()
    cache = FileTokenCache(tmp_path / "tokens.json")
    auth = password_auth(rotating, clock=clock, cache=cache, retries=0)
    url = rotating.api_url()
    first = _run_once(kind, auth, url, lambda: True)
    (old,) = _issued(rotating)
    assert first == f"Bearer {old}"

    for renewal in range(2):
        clock.advance(DUE)
        rotating.arrived.clear()
        rotating._gate.clear()
        rotating.hold_next(1)
        sent = _run_once(kind, auth, url, rotating.arrived.is_set)
        assert sent == f"Bearer {_issued(rotating)[-1]}"
        assert rotating.holding == 1  # the loop ended with the refresh at the endpoint
        rotating.release()
        settle(auth)
        assert _pool.quiet(SAFETY)
        new = _issued(rotating)[-1]
        assert len(_issued(rotating)) == 2 + renewal
        assert _run_once(kind, auth, url, lambda: True) == f"Bearer {new}"
        cached = cache.get(auth._manager._key)
        assert cached is not None
        assert cached.access_token == new

    assert rotating.token_calls == {"password": 1, "refresh_token": 2}
    assert rotating.reuses == 0


def test_a_refresh_outlives_a_caller_that_gave_up_and_its_loop(
    rotating: RotatingEmulator,
) -> None:
    """A caller that waits for a refresh (its token expired), then gives up
    (``wait_for``) and whose loop ends, leaves the refresh to finish and be stored."""
    clock = FakeClock()
    auth = password_auth(rotating, clock=clock, retries=0)
    url = rotating.api_url()
    _run_once("httpx_asyncio", auth, url, lambda: True)
    clock.advance(LIFETIME + 1)  # expired: the caller must wait for the refresh
    rotating.hold_next(1)

    async def impatient() -> None:
        with pytest.raises((TimeoutError, asyncio.TimeoutError)):
            await asyncio.wait_for(_httpx(auth, url), 0.2)
        assert await asyncio.to_thread(rotating.arrived.wait, SAFETY)

    asyncio.run(asyncio.wait_for(impatient(), SAFETY))
    rotating.release()
    settle(auth)
    (_, new) = _issued(rotating)
    assert _run_once("httpx_asyncio", auth, url, lambda: True) == f"Bearer {new}"
    assert rotating.token_calls == {"password": 1, "refresh_token": 1}
    assert rotating.reuses == 0


def test_closing_the_object_keeps_a_sync_renewal_under_way(rotating: RotatingEmulator) -> None:
    """``close()`` while a background refresh is held: its token is still stored."""
    clock = FakeClock()
    auth = password_auth(rotating, clock=clock, retries=0)
    old = auth.get_token()
    clock.advance(DUE)
    rotating.hold_next(1)
    assert auth.get_token() == old
    assert rotating.arrived.wait(SAFETY)
    auth.close()
    rotating.release()
    settle(auth)
    (_, new) = _issued(rotating)
    assert auth.get_token().access_token == new
    assert rotating.token_calls == {"password": 1, "refresh_token": 1}


def test_objects_sharing_a_file_cache_in_one_process_refresh_once(
    rotating: RotatingEmulator, tmp_path: Path
) -> None:
    """Two auth objects of one process that share a file cache never refresh together.

    Both tokens come due at once; each object starts a renewal in the pool. The first
    refresh is held at the endpoint; the other renewal waits for the cache's lock (the
    lock file alone lets any thread of its process in), then adopts the token the
    first one stored: one refresh, no retired refresh token presented.
    """
    clock = FakeClock()
    cache = FileTokenCache(tmp_path / "tokens.json")
    first, second = (password_auth(rotating, clock=clock, cache=cache, retries=0) for _ in range(2))
    assert first.get_token() == second.get_token()
    clock.advance(DUE)
    rotating.hold_next(1)
    first.get_token()
    assert rotating.arrived.wait(SAFETY)
    second.get_token()
    rotating.release()
    assert _pool.quiet(SAFETY)
    settle(first)
    settle(second)
    (_, new) = _issued(rotating)
    assert first.get_token().access_token == second.get_token().access_token == new
    assert rotating.token_calls == {"password": 1, "refresh_token": 1}
    assert rotating.reuses == 0


# -- the process ends while a refresh for a persistent cache is held -----------------------

CHILD = """
import signal, sys
from authplug import OAuth2PasswordAuth
from authplug.cache import FileTokenCache, RedisTokenCache
from authplug.testing import FakeClock

token_url, username, password, client_id, client_secret, path, due = sys.argv[1:8]
if path.startswith("redis:"):
    import redis
    cache = RedisTokenCache(redis.Redis(host="127.0.0.1", port=int(path[6:])))
else:
    cache = FileTokenCache(path) if path != "-" else None
clock = FakeClock()
auth = OAuth2PasswordAuth(
    token_url=token_url, username=username, password=password, client_id=client_id,
    client_secret=client_secret, clock=clock, retries=0, timeout=20, cache=cache,
)
print("sigterm", "guarded" if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
      else "default", flush=True)
first = auth.get_token()
print("fetched", flush=True)
if float(due):
    sys.stdin.readline()  # the parent now holds the next token call
    clock.advance(float(due))
    auth.get_token()  # due: handed back at once, renewed by a renewal thread
    print("renewing", flush=True)
sys.stdin.readline()  # exit now (or wait for SIGTERM)
"""


def _child(emulator: OAuth2Emulator, cache: str, due: float) -> subprocess.Popen[str]:
    args = [
        emulator.token_url,
        emulator.username,
        emulator.password,
        emulator.client_id or "",
        emulator.client_secret or "",
        cache,
        str(due),
    ]
    # The authplug under test (a source tree put first on the path, say), in the child.
    env = {**os.environ, "PYTHONPATH": str(Path(authplug.__file__).parents[1])}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _say(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def _read(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


def _finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    watchdog = threading.Timer(2 * SAFETY, process.kill)
    watchdog.start()
    try:
        _, stderr = process.communicate(timeout=2 * SAFETY)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stderr


def _cached(path: Path) -> set[str]:
    return {entry["access_token"] for entry in json.loads(path.read_text()).values()}


@pytest.mark.parametrize("how", ["exit", "sigterm"])
@pytest.mark.parametrize("cache", ["file", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_process_ending_finishes_its_refresh_for_a_persistent_cache(
    rotating: RotatingEmulator, tmp_path: Path, how: str, cache: str, request: Any
) -> None:
    """A process that exits, or gets SIGTERM, while its refresh for a file or Redis cache
    is held stores that refresh's answer first.

    The child's token is due; its renewal is held at the endpoint; then its script
    returns (or it is sent SIGTERM). Released, the refresh is answered, and the child
    exits (of SIGTERM, when it got one) with the new token in the cache. The Redis cache
    bounds each call with a helper thread, which Python 3.12 refuses to start once the
    interpreter is exiting: the call then runs in the renewal's own thread.
    """
    path = tmp_path / "tokens.json"
    if cache == "redis":
        server = request.getfixturevalue("redis_server")
        spec = f"redis:{server.port}"
    else:
        spec = str(path)
    process = _child(rotating, spec, DUE)
    try:
        assert _read(process).startswith("sigterm")
        assert _read(process) == "fetched"
        rotating.hold_next(1)
        _say(process, "go")
        assert _read(process) == "renewing"
        assert rotating.arrived.wait(SAFETY), "the child's refresh never arrived"
        if how == "exit":
            _say(process, "exit")
        else:
            process.send_signal(signal.SIGTERM)
    finally:
        rotating.release()
        code, stderr = _finish(process)
    assert code == (0 if how == "exit" else -signal.SIGTERM), stderr
    (_, new) = _issued(rotating)
    if cache == "redis":
        assert _redis_cached(server.port) == {new}, stderr
    else:
        assert _cached(path) == {new}
    assert rotating.token_calls == {"password": 1, "refresh_token": 1}


def _redis_cached(port: int) -> set[str]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    try:  # the token entries (beside them, a lock may be left to expire)
        entries = [client.get(key) or b"" for key in client.scan_iter()]
    finally:
        client.close()
    return {json.loads(entry)["access_token"] for entry in entries if entry.startswith(b"{")}


@pytest.mark.parametrize("how", ["exit", "sigterm"])
@pytest.mark.parametrize("cache", ["file", "memory"])
def test_a_process_with_nothing_to_store_ends_at_once(
    rotating: RotatingEmulator, tmp_path: Path, how: str, cache: str
) -> None:
    """With no refresh under way for a persistent cache, exit and SIGTERM are immediate.

    The child holds a valid token (file cache or memory cache), or, with a memory
    cache, has its refresh held at the endpoint: it exits (or dies of SIGTERM) while
    the emulator still holds that refresh, unanswered. Only a persistent cache gets
    a SIGTERM handler; the memory cache leaves SIGTERM's default alone.
    """
    path = tmp_path / "tokens.json"
    held = cache == "memory"
    process = _child(rotating, str(path) if cache == "file" else "-", DUE if held else 0)
    try:
        assert _read(process) == ("sigterm guarded" if cache == "file" else "sigterm default")
        assert _read(process) == "fetched"
        if held:
            rotating.hold_next(1)
            _say(process, "go")
            assert _read(process) == "renewing"
            assert rotating.arrived.wait(SAFETY)
        if how == "exit":
            _say(process, "exit")
        else:
            process.send_signal(signal.SIGTERM)
        code, stderr = _finish(process)
        still_held = rotating.holding
    finally:
        rotating.release()
    assert code == (0 if how == "exit" else -signal.SIGTERM), stderr
    assert still_held == (1 if held else 0)
    assert len(_issued(rotating)) == 1


def test_renewals_stay_on_the_loop_only_where_only_the_loop_can_drive_them() -> None:
    """Renewals run in threads, except with a redis.asyncio client or an async
    ``client_assertion`` callable, which only the caller's event loop can drive."""
    redis = pytest.importorskip("redis")
    redis_asyncio = pytest.importorskip("redis.asyncio")

    from authplug.cache import RedisTokenCache

    async def assertion() -> str:
        return "a.b.c"

    def threads(**options: Any) -> bool:
        auth = OAuth2PasswordAuth(
            token_url="https://idp.example/token", username="u", password="p", **options
        )
        return bool(auth._manager._threads)

    assert threads()
    assert threads(cache=RedisTokenCache(redis.Redis()))
    assert not threads(cache=RedisTokenCache(redis_asyncio.Redis()))
    assert not threads(client_assertion=assertion, client_id="c")
