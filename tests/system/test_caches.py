"""Token caches shared by processes: a file on one host, Redis across a fleet.

Also what a cache must survive: a Redis that accepts connections and never answers, bad
entries (read as empty and overwritten), and token files others may write or own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from authplug import (
    CacheError,
    FileTokenCache,
    OAuth2PasswordAuth,
    RedisTokenCache,
    Token,
    TokenCache,
)
from authplug.testing import (
    FakeClock,
    OAuth2Emulator,
)

from ..conftest import Driver, key_for, password_auth
from ..forked import run_together

#: Enough to contend across processes and within each (more proves nothing more).
PROCESSES = 3
THREADS = 4


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
    """PROCESSES worker processes of THREADS threads each, released together."""
    args = [cache_spec, emulator.token_url, emulator.api_url(), str(THREADS)]
    return run_together("tests.system.fleet_worker", args, PROCESSES)


# -- the file cache ---------------------------------------------------------------------


@pytest.mark.fleet
def test_file_fleet_single_flight(slow_emulator: OAuth2Emulator, tmp_path: Path) -> None:
    """Processes and their threads find the shared token expired: one token call in all."""
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
@pytest.mark.fleet
def test_redis_fleet_single_flight(slow_emulator: OAuth2Emulator, redis_server: Any) -> None:
    """Processes and their threads on one Redis find the token expired: one token call."""
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


def authplug_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The WARNING records of the authplug logger."""
    return [r for r in caplog.records if r.name == "authplug" and r.levelno == logging.WARNING]


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def silent_redis() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


#: Far beyond what the requests need with bounded Redis calls (about one second); a
#: client left waiting on the silent server would wait forever.
HANG = 20.0


def finish_or_fail(work: Callable[[], Any]) -> Any:
    """``work()`` in a thread; a clean test failure if it is still stuck after HANG."""
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG)
    if not outcome:
        pytest.fail("requests hang on the silent Redis: its calls are not bounded", pytrace=False)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


@pytest.mark.redis
def test_unresponsive_redis_sync_client_loses_no_request(
    driver: Driver,
    emulator: OAuth2Emulator,
    silent_redis: SilentServer,
    authlog: pytest.LogCaptureFixture,
) -> None:
    """A redis.Redis built as the README shows (no socket_timeout) on a Redis that
    never answers: every cache call gives up after ``timeout``, requests go on with the
    process's own token (one token call, one warning), for requests, httpx and async."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=silent_redis.port)
    cache = RedisTokenCache(client, timeout=0.5, wait_timeout=0.5, lock_timeout=5)
    try:
        auth = password_auth(emulator, cache=cache)
        statuses = finish_or_fail(
            lambda: [driver.send(auth, "GET", emulator.api_url()).status for _ in range(3)]
        )
        assert statuses == [200, 200, 200]
        assert emulator.token_calls == {"password": 1}
        assert silent_redis.accepted  # the client did reach the silent server
        unavailable = [r for r in authplug_warnings(authlog) if "unavailable" in r.getMessage()]
        assert len(unavailable) == 1
    finally:
        silent_redis.close()  # the stuck helper thread's read ends with the connection
        client.close()


@pytest.mark.redis
async def test_unresponsive_redis_async_client_loses_no_request(
    emulator: OAuth2Emulator, silent_redis: SilentServer, authlog: pytest.LogCaptureFixture
) -> None:
    """The same with a redis.asyncio.Redis under httpx.AsyncClient: each call is
    cancelled after ``timeout``; the requests succeed with one token call."""
    import redis.asyncio

    client = redis.asyncio.Redis(host="127.0.0.1", port=silent_redis.port)
    cache = RedisTokenCache(client, timeout=0.5, wait_timeout=0.5, lock_timeout=5)
    auth = password_auth(emulator, cache=cache)

    async def send() -> list[int]:
        async with httpx.AsyncClient(auth=auth, timeout=10) as http:
            return [(await http.get(emulator.api_url())).status_code for _ in range(3)]

    try:
        try:
            statuses = await asyncio.wait_for(send(), HANG)
        except asyncio.TimeoutError:
            pytest.fail("requests hang on the silent Redis: its calls are not bounded")
        assert statuses == [200, 200, 200]
        assert emulator.token_calls == {"password": 1}
        assert silent_redis.accepted
        unavailable = [r for r in authplug_warnings(authlog) if "unavailable" in r.getMessage()]
        assert len(unavailable) == 1
    finally:
        silent_redis.close()
        await client.aclose()


BAD_ENTRIES = {
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
    "expires_at-1e400": b'{"access_token": "x", "expires_at": 1e400}',
    "expires_at-400-digits": b'{"access_token": "x", "expires_at": ' + b"9" * 400 + b"}",
    "400-digit-number": b"7" * 400,
    "json-array": b'[{"access_token": "x"}]',
    "not-json": b"\xff\xfe\x00 not json at all",
    "no-access-token": b'{"token_type": "bearer", "expires_in": 3600}',
}


def check_renewed_over_bad_entry(
    emulator: OAuth2Emulator,
    cache: TokenCache,
    stored: Callable[[], dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One request through ``cache`` holding a bad entry: it succeeds, one warning, and
    the entry afterwards is the new token."""
    auth = password_auth(emulator, cache=cache)
    with httpx.Client(auth=auth, timeout=10) as client:
        try:
            response = client.get(emulator.api_url())
        except Exception as exc:  # reported by kind: a RecursionError's trace is huge
            pytest.fail(f"the bad entry broke the request: {exc!r:.200}", pytrace=False)
    assert response.status_code == 200
    assert not response.history  # the bad entry was never sent as a token
    assert emulator.token_calls == {"password": 1}
    assert auth.token is not None
    assert emulator.api_log[-1].authorization == f"Bearer {auth.token.access_token}"
    entry = stored()
    assert entry["access_token"] == auth.token.access_token
    assert Token.from_dict(entry).expires_at == auth.token.expires_at
    warnings = authplug_warnings(caplog)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "treating it as empty" in warnings[0].getMessage()


@pytest.mark.parametrize("entry", list(BAD_ENTRIES.values()), ids=list(BAD_ENTRIES))
def test_bad_file_entry_is_empty_and_overwritten(
    emulator: OAuth2Emulator, tmp_path: Path, authlog: pytest.LogCaptureFixture, entry: bytes
) -> None:
    """A token file whose entry is deep nesting, an infinite or 400-digit number, an
    array, not JSON, or a dict without access_token reads as empty (one WARNING) and the
    renewal overwrites it."""
    import json

    path = tmp_path / "tokens.json"
    key = key_for(emulator)
    path.write_bytes(b'{"' + key.encode() + b'": ' + entry + b"}")
    path.chmod(0o600)
    check_renewed_over_bad_entry(
        emulator, FileTokenCache(path), lambda: json.loads(path.read_bytes())[key], authlog
    )


@pytest.mark.redis
@pytest.mark.parametrize("entry", list(BAD_ENTRIES.values()), ids=list(BAD_ENTRIES))
def test_bad_redis_entry_is_empty_and_overwritten(
    emulator: OAuth2Emulator, redis_server: Any, authlog: pytest.LogCaptureFixture, entry: bytes
) -> None:
    """The same bad values stored under the Redis key read as empty (one WARNING)
    and the renewal overwrites them."""
    import json

    import redis

    name = "authplug:" + key_for(emulator)
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=5)

    def stored() -> dict[str, Any]:
        raw = client.get(name)
        assert isinstance(raw, bytes)
        return dict(json.loads(raw))

    try:
        client.set(name, entry)
        check_renewed_over_bad_entry(emulator, RedisTokenCache(client), stored, authlog)
    finally:
        client.close()


def plant_token_file(emulator: OAuth2Emulator, path: Path) -> Token:
    """A real, fresh token stored in ``path`` under the key of ``password_auth``."""
    token = password_auth(emulator).get_token()
    FileTokenCache(path).set(key_for(emulator), token)
    emulator.reset_counters()
    return token


@pytest.mark.parametrize(
    ("mode", "uid"),
    [(0o664, None), (0o606, None), (0o600, 65534)],
    ids=["group-writable", "others-writable", "other-owner"],
)
def test_foreign_token_file_is_refused(
    emulator: OAuth2Emulator,
    tmp_path: Path,
    authlog: pytest.LogCaptureFixture,
    mode: int,
    uid: int | None,
) -> None:
    """A token file group/others may write, or owned by another user, is never read
    (its fresh token is not adopted) and never overwritten; one WARNING, and the request
    succeeds with the process's own token."""
    path = tmp_path / "tokens.json"
    planted = plant_token_file(emulator, path)
    path.chmod(mode)
    if uid is not None:
        if os.geteuid() != 0:
            pytest.skip("giving a file to another user needs root")
        os.chown(path, uid, uid)
    before = path.read_bytes()
    info = path.stat()
    auth = password_auth(emulator, cache=FileTokenCache(path))
    with requests.Session() as session:
        session.auth = auth
        assert session.get(emulator.api_url(), timeout=10).status_code == 200
        assert session.get(emulator.api_url(), timeout=10).status_code == 200
    assert emulator.token_calls == {"password": 1}  # the planted token was not read
    assert auth.token is not None
    assert auth.token.access_token != planted.access_token
    assert {hit.authorization for hit in emulator.api_log} == {f"Bearer {auth.token.access_token}"}
    after = path.stat()
    assert path.read_bytes() == before
    assert (after.st_ino, after.st_uid, stat.S_IMODE(after.st_mode)) == (
        info.st_ino,
        info.st_uid,
        stat.S_IMODE(info.st_mode),
    )
    warnings = authplug_warnings(authlog)
    assert len(warnings) == 1
    assert "refusing the token file" in warnings[0].getMessage()


def test_private_token_file_is_used(
    emulator: OAuth2Emulator, tmp_path: Path, authlog: pytest.LogCaptureFixture
) -> None:
    """A 0600 token file owned by this user is read: its fresh token is adopted."""
    path = tmp_path / "tokens.json"
    planted = plant_token_file(emulator, path)
    info = path.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (os.geteuid(), 0o600)
    auth = password_auth(emulator, cache=FileTokenCache(path))
    with requests.Session() as session:
        session.auth = auth
        assert session.get(emulator.api_url(), timeout=10).status_code == 200
    assert emulator.token_calls.total() == 0
    assert emulator.api_log[-1].authorization == f"Bearer {planted.access_token}"
    assert authplug_warnings(authlog) == []
