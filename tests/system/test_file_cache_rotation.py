"""A FileTokenCache keeps rotated refresh tokens safe within one process too.

The lock file is held once per process, so the cache object keeps its threads and tasks
apart itself; and a write never puts back a token issued before the one stored.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from authplug import FileTokenCache, Token


def token(name: str, issued_at: float | None) -> Token:
    return Token(
        access_token=f"access-{name}",
        refresh_token=f"refresh-{name}",
        expires_at=None if issued_at is None else issued_at + 60,
        issued_at=issued_at,
    )


def test_a_late_write_never_replaces_a_token_issued_after_it(tmp_path: Path) -> None:
    """A token issued earlier than the stored one is not written over it."""
    cache = FileTokenCache(tmp_path / "tokens.json")
    now = time.time()
    cache.set("k", token("new", now))
    cache.set("k", token("old", now - 5))
    stored = cache.get("k")
    assert stored is not None
    assert stored.refresh_token == "refresh-new"


def test_a_token_issued_later_or_of_unknown_age_replaces_the_stored_one(tmp_path: Path) -> None:
    """Renewals overwrite as before: a later token, or one without issued_at, is stored."""
    cache = FileTokenCache(tmp_path / "tokens.json")
    now = time.time()
    cache.set("k", token("first", now - 5))
    cache.set("k", token("second", now))
    assert (stored := cache.get("k")) is not None
    assert stored.refresh_token == "refresh-second"
    cache.set("k", token("handed-in", None))
    assert (stored := cache.get("k")) is not None
    assert stored.refresh_token == "refresh-handed-in"


def test_threads_of_one_process_take_the_renewal_lock_in_turn(tmp_path: Path) -> None:
    """While one thread holds the renewal lock, another thread of the process waits."""
    cache = FileTokenCache(tmp_path / "tokens.json", lock_timeout=10)
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def holder() -> None:
        with cache.lock("k"):
            order.append("first in")
            inside.set()
            release.wait(10)
            order.append("first out")

    def second() -> None:
        inside.wait(10)
        with cache.lock("k"):
            order.append("second in")

    threads = [threading.Thread(target=holder), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    inside.wait(10)
    time.sleep(0.2)  # room for the second thread to (wrongly) get in
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["first in", "first out", "second in"]


def test_tasks_on_two_event_loops_take_the_renewal_lock_in_turn(tmp_path: Path) -> None:
    """alock() keeps apart two tasks of one process on different event loops."""
    cache = FileTokenCache(tmp_path / "tokens.json", lock_timeout=10)
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    async def holder() -> None:
        async with cache.alock("k"):
            order.append("first in")
            inside.set()
            await asyncio.to_thread(release.wait, 10)
            order.append("first out")

    async def second() -> None:
        await asyncio.to_thread(inside.wait, 10)
        async with cache.alock("k"):
            order.append("second in")

    threads = [
        threading.Thread(target=asyncio.run, args=(holder(),)),
        threading.Thread(target=asyncio.run, args=(second(),)),
    ]
    for thread in threads:
        thread.start()
    inside.wait(10)
    time.sleep(0.2)
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["first in", "first out", "second in"]


def test_a_write_outside_the_lock_waits_for_a_write_in_progress(tmp_path: Path) -> None:
    """Writes of two keys from two threads both land (no lost update of the file)."""
    cache = FileTokenCache(tmp_path / "tokens.json", lock_timeout=10)
    now = time.time()
    with cache.lock("a"):
        writer = threading.Thread(target=cache.set, args=("b", token("b", now)))
        writer.start()
        cache.set("a", token("a", now))
        writer.join(10)
    assert (a := cache.get("a")) is not None
    assert a.refresh_token == "refresh-a"
    assert (b := cache.get("b")) is not None
    assert b.refresh_token == "refresh-b"
