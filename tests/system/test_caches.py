"""Token caches shared by processes: a file on one host, Redis across a fleet."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from authplug import (
    CacheError,
    FileTokenCache,
    OAuth2PasswordAuth,
    RedisTokenCache,
    Token,
    TokenCache,
)
from authplug.testing import FakeClock, OAuth2Emulator

from ..conftest import key_for, password_auth

PROCESSES = 8
THREADS = 16


@pytest.fixture
def slow_emulator() -> Iterator[OAuth2Emulator]:
    with OAuth2Emulator(token_delay=0.2) as emulator:
        yield emulator


def seed_expired(emulator: OAuth2Emulator, cache: TokenCache) -> None:
    """Store a real token whose access part expired ten seconds ago."""
    token = password_auth(emulator).get_token()
    expired = dataclasses.replace(
        token,
        issued_at=token.issued_at - 3610,  # type: ignore[operator]
        expires_at=token.issued_at - 10,  # type: ignore[operator]
    )
    cache.set(key_for(emulator), expired)
    emulator.reset_counters()


def run_fleet(cache_spec: str, emulator: OAuth2Emulator) -> list[list[int]]:
    """8 worker processes of 16 threads each, released together."""
    root = Path(__file__).resolve().parents[2]
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.system.fleet_worker",
                cache_spec,
                emulator.token_url,
                emulator.api_url(),
                str(THREADS),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = []
        for worker in workers:
            out, _ = worker.communicate(timeout=120)
            assert worker.returncode == 0
            results.append(json.loads(out))
        return results
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()


# -- the file cache ---------------------------------------------------------------------


def test_file_fleet_single_flight(slow_emulator: OAuth2Emulator, tmp_path: Path) -> None:
    """8 processes x 16 threads find the shared token expired: one token call in all."""
    path = tmp_path / "tokens.json"
    seed_expired(slow_emulator, FileTokenCache(path))
    results = run_fleet(f"file:{path}", slow_emulator)
    assert results == [[200] * THREADS] * PROCESSES
    assert slow_emulator.token_calls == {"refresh_token": 1}


def test_file_is_private_and_written_atomically(emulator: OAuth2Emulator, tmp_path: Path) -> None:
    """Mode 0600, no temporary file left behind, the key carries no secret."""
    path = tmp_path / "tokens.json"
    auth = password_auth(emulator, cache=FileTokenCache(path))
    token = auth.get_token()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json", "tokens.json.lock"]
    data = json.loads(path.read_text())
    (key,) = data
    assert data[key]["access_token"] == token.access_token
    for secret in (emulator.password, emulator.client_secret, emulator.username):
        assert str(secret) not in key


@pytest.mark.parametrize(
    "content", [b"", b"{", b'{"k": {"access_tok', b"[1, 2]", b"\xff\xfe", b"null"]
)
def test_corrupt_file_reads_as_empty(
    emulator: OAuth2Emulator, tmp_path: Path, content: bytes
) -> None:
    """A corrupt or truncated file is treated as empty and rewritten, never a crash."""
    path = tmp_path / "tokens.json"
    path.write_bytes(content)
    auth = password_auth(emulator, cache=FileTokenCache(path))
    assert auth.get_token().access_token
    assert emulator.token_calls.total() == 1
    assert json.loads(path.read_text())


def test_second_object_adopts_the_file_token(emulator: OAuth2Emulator, tmp_path: Path) -> None:
    """A new auth object (a new process, say) uses the stored token: no login."""
    path = tmp_path / "tokens.json"
    first = password_auth(emulator, cache=FileTokenCache(path))
    with httpx.Client(auth=first) as client:
        assert client.get(emulator.api_url()).status_code == 200
    second = password_auth(emulator, cache=FileTokenCache(path))
    with httpx.Client(auth=second) as client:
        assert client.get(emulator.api_url()).status_code == 200
    assert emulator.token_calls.total() == 1


async def test_file_cache_async(emulator: OAuth2Emulator, tmp_path: Path) -> None:
    """The async path uses the file without blocking the loop, and shares the token."""
    path = tmp_path / "tokens.json"
    auths = [password_auth(emulator, cache=FileTokenCache(path)) for _ in range(3)]
    async with httpx.AsyncClient() as client:
        statuses = await asyncio.gather(
            *(client.get(emulator.api_url(), auth=auths[i % 3]) for i in range(30))
        )
    assert {r.status_code for r in statuses} == {200}
    assert emulator.token_calls.total() == 1


def test_unwritable_file_loses_no_request(
    emulator: OAuth2Emulator, tmp_path: Path, authlog: pytest.LogCaptureFixture
) -> None:
    """A cache that cannot be written: requests go through, one warning is logged."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    cache = FileTokenCache(blocker / "tokens.json")  # its "folder" is a file
    clock = FakeClock()
    auth = password_auth(emulator, cache=cache, clock=clock)
    with httpx.Client(auth=auth) as client:
        assert client.get(emulator.api_url()).status_code == 200
        emulator.revoke_all()
        assert client.get(emulator.api_url()).status_code == 200
    warnings = [r for r in authlog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "token cache is unavailable" in warnings[0].getMessage()
    assert emulator.token_calls == {"password": 1, "refresh_token": 1}


# -- Redis ------------------------------------------------------------------------------


_SYNC_CLIENTS: list[Any] = []


def redis_cache(server: Any, *, asynchronous: bool = False, **options: Any) -> RedisTokenCache:
    """A cache on ``server``; sync clients are closed after the test, async ones by it."""
    import redis
    import redis.asyncio
    import redis.asyncio.retry
    import redis.backoff
    import redis.retry

    module: Any = redis.asyncio if asynchronous else redis
    retry_module: Any = redis.asyncio.retry if asynchronous else redis.retry
    # No client-side retries with backoff: a stopped server must fail fast here.
    client = module.Redis(
        host="127.0.0.1",
        port=server.port,
        socket_timeout=5,
        retry=retry_module.Retry(redis.backoff.NoBackoff(), 0),
    )
    if not asynchronous:
        _SYNC_CLIENTS.append(client)
    return RedisTokenCache(client, **options)


@pytest.fixture(autouse=True)
def _close_redis_clients() -> Iterator[None]:
    yield
    while _SYNC_CLIENTS:
        _SYNC_CLIENTS.pop().close()


@pytest.mark.redis
def test_redis_fleet_single_flight(slow_emulator: OAuth2Emulator, redis_server: Any) -> None:
    """8 processes x 16 threads on one Redis find the token expired: one token call."""
    seed_expired(slow_emulator, redis_cache(redis_server))
    results = run_fleet(f"redis:{redis_server.port}", slow_emulator)
    assert results == [[200] * THREADS] * PROCESSES
    assert slow_emulator.token_calls == {"refresh_token": 1}


@pytest.mark.redis
def test_an_asyncio_redis_client_under_trio_is_an_outage(
    emulator: OAuth2Emulator, redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """redis.asyncio cannot run on trio: the cache is unavailable (one WARNING saying
    what to give instead), and requests go on with the object's own token."""
    import trio

    auth = password_auth(emulator, cache=redis_cache(redis_server, asynchronous=True))

    async def main() -> list[int]:
        async with httpx.AsyncClient(auth=auth) as client:
            return [(await client.get(emulator.api_url())).status_code for _ in range(2)]

    assert trio.run(main) == [200, 200]
    assert emulator.token_calls.total() == 1
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "redis.asyncio client runs on asyncio only" in warning.getMessage()


@pytest.mark.redis
def test_redis_keys_carry_no_secret(emulator: OAuth2Emulator, redis_server: Any) -> None:
    """Keys are the prefix and a hash; values expire with the token."""
    import redis

    auth = password_auth(emulator, cache=redis_cache(redis_server, prefix="app:"))
    auth.get_token()
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    keys = [k.decode() for k in client.keys("*")]
    assert keys == ["app:" + key_for(emulator)]
    for secret in (emulator.password, emulator.client_secret, emulator.username):
        assert str(secret) not in keys[0]
    assert 0 < client.ttl(keys[0]) <= 30 * 24 * 3600
    client.close()


@pytest.mark.redis
async def test_redis_async_client(emulator: OAuth2Emulator, redis_server: Any) -> None:
    """redis.asyncio with httpx.AsyncClient: several objects, many tasks, one token call."""
    caches = [redis_cache(redis_server, asynchronous=True) for _ in range(4)]
    auths = [password_auth(emulator, cache=cache) for cache in caches]
    async with httpx.AsyncClient() as client:
        responses = await asyncio.gather(
            *(client.get(emulator.api_url(), auth=auths[i % 4]) for i in range(200))
        )
    for cache in caches:
        await cache._client.aclose()
    assert {r.status_code for r in responses} == {200}
    assert emulator.token_calls.total() == 1


@pytest.mark.redis
async def test_redis_sync_client_serves_async_callers(
    emulator: OAuth2Emulator, redis_server: Any
) -> None:
    """A sync redis.Redis also serves httpx.AsyncClient (from a worker thread)."""
    auths = [password_auth(emulator, cache=redis_cache(redis_server)) for _ in range(3)]
    async with httpx.AsyncClient() as client:
        responses = await asyncio.gather(
            *(client.get(emulator.api_url(), auth=auths[i % 3]) for i in range(60))
        )
    assert {r.status_code for r in responses} == {200}
    assert emulator.token_calls.total() == 1


@pytest.mark.redis
def test_async_redis_client_in_sync_code_falls_back(
    emulator: OAuth2Emulator, redis_server: Any, authlog: pytest.LogCaptureFixture
) -> None:
    """An async Redis client under requests: one clear warning, the request still works."""
    auth = password_auth(emulator, cache=redis_cache(redis_server, asynchronous=True))
    with httpx.Client(auth=auth) as client:
        assert client.get(emulator.api_url()).status_code == 200
    assert "redis.asyncio client serves async requests only" in authlog.text


@pytest.mark.redis
def test_redis_down_and_back(
    emulator: OAuth2Emulator, redis_server: Any, authlog: pytest.LogCaptureFixture
) -> None:
    """Redis stopped mid-run: requests keep succeeding; sharing resumes once it is back."""
    first = password_auth(emulator, cache=redis_cache(redis_server))
    client = httpx.Client(auth=first)
    assert client.get(emulator.api_url()).status_code == 200
    redis_server.stop()
    emulator.revoke_all()
    for _ in range(3):
        assert client.get(emulator.api_url()).status_code == 200
    emulator.revoke_all()
    assert client.get(emulator.api_url()).status_code == 200
    unavailable = [r for r in authlog.records if "token cache is unavailable" in r.getMessage()]
    assert len(unavailable) == 1
    assert emulator.token_calls == {"password": 1, "refresh_token": 2}
    redis_server.start()  # same port, empty
    emulator.revoke_all()
    assert client.get(emulator.api_url()).status_code == 200  # renews and shares again
    assert "token cache is reachable again" in authlog.text
    second = password_auth(emulator, cache=redis_cache(redis_server))
    with httpx.Client(auth=second) as other:
        assert other.get(emulator.api_url()).status_code == 200
    assert emulator.token_calls == {"password": 1, "refresh_token": 3}
    client.close()


@pytest.mark.redis
def test_crashed_lock_holder_does_not_stall(emulator: OAuth2Emulator, redis_server: Any) -> None:
    """A lock left by a crashed process expires (lock_timeout); renewal then goes on."""
    import redis

    cache = redis_cache(redis_server, lock_timeout=1.0, wait_timeout=30.0)
    key = key_for(emulator)
    other = redis.Redis(host="127.0.0.1", port=redis_server.port)
    stale = other.lock("authplug:" + key + ":lock", timeout=1.0)
    assert stale.acquire(blocking=False)  # and never released: the holder "crashed"
    auth = password_auth(emulator, cache=cache)
    assert auth.get_token().access_token
    assert emulator.token_calls.total() == 1
    other.close()


def test_cache_error_is_what_backends_raise(tmp_path: Path) -> None:
    """Unavailability is reported as CacheError (which the manager absorbs)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    cache = FileTokenCache(blocker / "tokens.json")
    with pytest.raises(CacheError, match="cannot lock"):
        cache.set("k", Token(access_token="x"))
    with pytest.raises(CacheError, match="Not a directory"):
        cache.get("k")


def test_auth_requires_a_cache_object() -> None:
    from authplug import ConfigurationError

    with pytest.raises(ConfigurationError, match="cache"):
        OAuth2PasswordAuth(
            token_url="https://x.example/t",
            username="u",
            password="p",
            cache="redis",  # type: ignore[arg-type]
        )
