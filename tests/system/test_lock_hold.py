"""A person's login may hold a cache's renewal lock as long as the person takes: the
package's caches take ``hold=`` (``takes_hold``), and the others wait that long; a lock
that expires on its own (Redis) lasts that long."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from authplug import CacheError, FileTokenCache, RedisTokenCache


def _held_for_a_while(
    cache: FileTokenCache, hold: float | None, release: threading.Event
) -> threading.Event:
    """Hold ``cache``'s lock in a thread until ``release`` is set; returns "taken"."""
    taken = threading.Event()

    def hold_it() -> None:
        with cache.lock("key", hold=hold):
            taken.set()
            release.wait(30)

    threading.Thread(target=hold_it, daemon=True).start()
    assert taken.wait(10)
    return taken


def test_a_file_lock_waiter_with_hold_outwaits_lock_timeout(tmp_path: Path) -> None:
    """Without hold a waiter gives up after lock_timeout (CacheError); with hold it waits
    for the holder (a login) and gets the lock."""
    path = tmp_path / "tokens"
    release = threading.Event()
    _held_for_a_while(FileTokenCache(path, lock_timeout=0.2), 60, release)
    with pytest.raises(CacheError), FileTokenCache(path, lock_timeout=0.2).lock("key"):
        pass  # the default wait, lock_timeout, ends in a CacheError
    got = threading.Event()

    def wait_with_hold() -> None:
        with FileTokenCache(path, lock_timeout=0.2).lock("key", hold=30):
            got.set()

    waiter = threading.Thread(target=wait_with_hold)
    waiter.start()
    waiter.join(1.0)  # well past lock_timeout: still waiting, not failed
    assert waiter.is_alive()
    release.set()
    waiter.join(30)
    assert got.is_set()


def test_the_caches_say_they_take_hold() -> None:
    assert FileTokenCache.takes_hold is True
    assert RedisTokenCache.takes_hold is True


def test_a_redis_lock_with_hold_lasts_as_long(redis_server: Any) -> None:
    """The lock's own expiry (lock_timeout) grows to hold, so that no other process takes
    it while the person logs in."""
    import redis

    cache = RedisTokenCache(redis.Redis(host="127.0.0.1", port=redis_server.port), lock_timeout=5)
    admin = redis_server.client()
    with cache.lock("key", hold=300):
        (name,) = [n for n in admin.keys("*") if str(n).endswith(":lock")]
        assert admin.pttl(name) > 200_000
    with cache.lock("key"):
        (name,) = [n for n in admin.keys("*") if str(n).endswith(":lock")]
        assert admin.pttl(name) <= 5_000
