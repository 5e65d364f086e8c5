"""RedisTokenCache on Redis as fleets run it: a Redis Cluster, a Sentinel failover, and
a lock that Redis grants after the cache stopped waiting for it.

Each auth object here stands for one process of a fleet: it has its own Redis client
and its own cache object, and shares only the Redis data with the others. The clock is
a FakeClock they share, so that advancing it by the token lifetime is one expiry; the
emulator counts the token calls.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from authplug import BaseAuth, CacheError, RedisTokenCache
from authplug.testing import FakeClock, OAuth2Emulator

from ..conftest import key_for, password_auth
from .redis_server import RedisClusterNodes, SentinelGroup, server_binary, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.fleet]

LIFETIME = 3600  # the emulator's token lifetime: advancing the clock by it is one expiry
PROCESSES = 4


@pytest.fixture(scope="module", params=["redis", "valkey"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisClusterNodes]:
    """Three masters sharing the slots, for the whole module (it takes 2 s to settle)."""
    binary = server_binary(request.param)
    nodes = RedisClusterNodes(tmp_path_factory.mktemp("cluster"), binary=binary).start()
    yield nodes
    nodes.stop()


@pytest.fixture(params=["redis", "valkey"])
def sentinel_group(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SentinelGroup]:
    """A master, a replica and a Sentinel; each test gets its own (it kills the master)."""
    group = SentinelGroup(tmp_path, binary=server_binary(request.param)).start()
    yield group
    group.stop()


@pytest.fixture
def slow_emulator() -> Iterator[OAuth2Emulator]:
    """Token calls that take 0.2 s, so that the renewals of a round overlap."""
    with OAuth2Emulator(token_delay=0.2) as emulator:
        yield emulator


def all_at_once(auths: list[BaseAuth], url: str) -> list[int]:
    """One request per auth object, each from its own thread, released together."""
    barrier = threading.Barrier(len(auths))
    statuses: list[int] = []

    def one(auth: BaseAuth) -> None:
        with httpx.Client(auth=auth) as client:
            barrier.wait()
            statuses.append(client.get(url).status_code)

    threads = [threading.Thread(target=one, args=(auth,)) for auth in auths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


# -- Redis Cluster ----------------------------------------------------------------------


def test_cluster_renews_once_per_expiry(
    cluster: RedisClusterNodes, slow_emulator: OAuth2Emulator
) -> None:
    """Four processes on a three-master Redis Cluster renew together: one token call per
    expiry, the lock and the token each in the slot of its own key."""
    import redis.cluster

    clients = [
        redis.cluster.RedisCluster(host="127.0.0.1", port=cluster.port) for _ in range(PROCESSES)
    ]
    clock = FakeClock()
    auths = [
        password_auth(slow_emulator, cache=RedisTokenCache(client, prefix="sync:"), clock=clock)
        for client in clients
    ]
    statuses: list[int] = []
    for expiry in range(3):
        if expiry:
            clock.advance(LIFETIME)
        statuses += all_at_once(auths, slow_emulator.api_url())
        assert slow_emulator.token_calls.total() == expiry + 1
    assert statuses == [200] * PROCESSES * 3
    assert slow_emulator.token_calls == {"password": 1, "refresh_token": 2}
    # The key names are those of a single Redis: operators' tooling keeps working.
    key = "sync:" + key_for(slow_emulator)
    assert clients[0].get(key) is not None
    assert clients[0].exists(key + ":lock") == 0  # released after each renewal
    for client in clients:
        client.close()


async def test_cluster_asyncio_client(cluster: RedisClusterNodes, emulator: OAuth2Emulator) -> None:
    """redis.asyncio.RedisCluster with httpx.AsyncClient: four processes, many tasks,
    one token call per expiry."""
    import redis.asyncio

    clients = [redis.asyncio.RedisCluster(host="127.0.0.1", port=cluster.port) for _ in range(4)]
    clock = FakeClock()
    auths = [
        password_auth(emulator, cache=RedisTokenCache(client, prefix="async:"), clock=clock)
        for client in clients
    ]
    async with httpx.AsyncClient() as http:
        for expiry in range(2):
            if expiry:
                clock.advance(LIFETIME)
            responses = await asyncio.gather(
                *(http.get(emulator.api_url(), auth=auths[i % 4]) for i in range(40))
            )
            assert {r.status_code for r in responses} == {200}
            assert emulator.token_calls.total() == expiry + 1
    for client in clients:
        await client.aclose()
    assert emulator.token_calls == {"password": 1, "refresh_token": 1}


# -- Sentinel ---------------------------------------------------------------------------


def test_sentinel_failover(
    sentinel_group: SentinelGroup, emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture
) -> None:
    """The master is killed mid-run: every request succeeds, the outage is logged once,
    and one token call per expiry is made before the failover and after it."""
    import redis.sentinel

    opened: list[Any] = []  # every client made, to close at the end

    def sentinel_cache() -> RedisTokenCache:
        """A process's own Sentinel and master client, with redis-py's default settings."""
        sentinel = redis.sentinel.Sentinel([("127.0.0.1", sentinel_group.sentinel_port)])
        client = sentinel.master_for(sentinel_group.service)
        opened.extend([*sentinel.sentinels, client])
        return RedisTokenCache(client)

    clock = FakeClock()
    first = password_auth(emulator, cache=sentinel_cache(), clock=clock)
    second = password_auth(emulator, cache=sentinel_cache(), clock=clock)
    session = requests.Session()
    url = emulator.api_url()
    statuses: list[int] = []
    expiries = 0

    def expire() -> None:
        nonlocal expiries
        clock.advance(LIFETIME)
        expiries += 1

    def request(auth: BaseAuth) -> None:
        statuses.append(session.get(url, auth=auth).status_code)

    # Before: the second process adopts what the first one stored.
    for expiry in range(2):
        if expiry:
            expire()
        request(first)
        request(second)
        assert emulator.token_calls.total() == expiry + 1
    expiries += 1  # the first token counts as one

    old_master = sentinel_group.master.port
    sentinel_group.master.kill()
    # During: the first process renews on its own at each expiry, until the Sentinel
    # has promoted the replica and a renewal finds the cache again.
    outage_rounds = 0

    def reachable_again() -> bool:
        nonlocal outage_rounds
        expire()
        request(first)
        back = "token cache is reachable again" in authlog.text
        outage_rounds += not back
        return back

    wait_for("the cache was not reachable again after the failover", reachable_again)
    assert sentinel_group.master_port() == sentinel_group.replica.port != old_master
    assert outage_rounds >= 1
    assert emulator.token_calls.total() == expiries

    # After: the second process, which never saw the outage, adopts the first one's
    # token from the new master; then both renew once per expiry again.
    request(second)
    assert emulator.token_calls.total() == expiries
    for _ in range(2):
        expire()
        request(second)
        request(first)
        assert emulator.token_calls.total() == expiries

    assert statuses
    assert set(statuses) == {200}
    outages = [r for r in authlog.records if "token cache is unavailable" in r.getMessage()]
    assert len(outages) == 1
    assert outages[0].levelno == logging.WARNING
    back = [r for r in authlog.records if "token cache is reachable again" in r.getMessage()]
    assert len(back) == 1
    session.close()
    for client in opened:
        client.close()


# -- writes paused, as in a coordinated failover ----------------------------------------


def test_a_lock_granted_late_is_given_back(
    redis_server: Any, emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture
) -> None:
    """A lock that Redis grants after the cache stopped waiting for it (writes paused, as
    a coordinated failover does) is released at once, not left to stall the fleet."""
    import redis

    clients: list[Any] = []

    def cache(**options: Any) -> RedisTokenCache:
        clients.append(redis.Redis(host="127.0.0.1", port=redis_server.port))
        return RedisTokenCache(clients[-1], **options)

    clock = FakeClock()
    paused = cache(timeout=0.2)
    first = password_auth(emulator, cache=paused, clock=clock)
    admin = redis_server.client()
    admin.client_pause(1000, all=False)  # writes wait 1 s: the lock's SET NX among them
    with httpx.Client(auth=first) as client:
        assert client.get(emulator.api_url()).status_code == 200

    def answered() -> bool:
        """The paused call has ended: until then, the cache's calls fail at once."""
        try:
            paused.get("probe")
        except CacheError:
            return False
        return True

    wait_for("the paused lock call did not end", answered)
    lock_key = "authplug:" + key_for(emulator) + ":lock"
    assert admin.exists(lock_key) == 0
    second = password_auth(emulator, cache=cache(wait_timeout=0.5), clock=clock)
    with httpx.Client(auth=second) as client:
        assert client.get(emulator.api_url()).status_code == 200
    assert not [r for r in authlog.records if "waiting for the lock" in r.getMessage()]
    for each in (admin, *clients):
        each.close()


# A Lua script that keeps Redis busy for ARGV[1] microseconds: no other client is served.
SLOW_SCRIPT = """
local start = redis.call('TIME')
while true do
    local now = redis.call('TIME')
    if (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > tonumber(ARGV[1]) then
        return 1
    end
end
"""


async def test_an_async_lock_granted_late_is_given_back(
    redis_server: Any, emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture
) -> None:
    """A lock that Redis grants after a redis.asyncio cache stopped waiting for it (the
    server busy with a slow script) is released when the answer comes, not left to stall
    the fleet."""
    import redis
    import redis.asyncio
    import redis.backoff
    import redis.retry

    clients = [redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port) for _ in range(3)]
    assert await clients[0].ping()  # connected: the lock's command itself will wait
    admin = redis_server.client()
    # What happens to the lock key, as Redis tells it in order: "set", then "del" once
    # released (counted, so that nothing depends on when Redis runs the late command)
    admin.config_set("notify-keyspace-events", "Kg$")
    lock_key = "authplug:" + key_for(emulator) + ":lock"
    events = clients[2].pubsub()
    await events.subscribe(f"__keyspace@0__:{lock_key}")
    busy = admin.connection_pool.get_connection()
    busy.send_command("EVAL", SLOW_SCRIPT, 0, 1_000_000)  # its answer is read below

    def server_busy() -> bool:
        """A PING goes unanswered for 50 ms (no retries: they would outwait the script)."""
        probe = redis.Redis(
            host="127.0.0.1",
            port=redis_server.port,
            socket_timeout=0.05,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
        )
        try:
            probe.ping()
        except redis.TimeoutError:
            return True
        finally:
            probe.close()
        return False

    wait_for("the slow script did not start", server_busy)
    first = password_auth(emulator, cache=RedisTokenCache(clients[0], timeout=0.2, lock_timeout=30))
    async with httpx.AsyncClient() as http:
        assert (await http.get(emulator.api_url(), auth=first)).status_code == 200
    assert busy.read_response() == 1  # the script has ended: Redis runs what was queued
    admin.connection_pool.release(busy)
    seen: list[bytes] = []
    for _ in range(50):  # a guard: the late answer is handled on this loop, in turns
        message = await events.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            seen.append(message["data"])
        if b"del" in seen:
            break
    assert [event for event in seen if event != b"expire"] == [b"set", b"del"]  # SET PX: both
    second = password_auth(emulator, cache=RedisTokenCache(clients[1], wait_timeout=0.5))
    async with httpx.AsyncClient() as http:
        assert (await http.get(emulator.api_url(), auth=second)).status_code == 200
    assert not [r for r in authlog.records if "waiting for the lock" in r.getMessage()]
    await events.aclose()
    for client in clients:
        await client.aclose()
    admin.close()
