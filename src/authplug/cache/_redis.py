"""Tokens in Redis, renewal single-flight across processes and hosts.

A Redis lock with a timeout guards renewal, so a crashed holder cannot stall the
others for longer than ``lock_timeout``. The client is ``redis.Redis`` (sync requests
and ``httpx.Client``; async callers use it from a worker thread) or
``redis.asyncio.Redis`` (``httpx.AsyncClient``).

Every Redis call is bounded by ``timeout``, whatever the client's own settings (a
client built without ``socket_timeout`` waits forever on a Redis that accepts
connections and never answers). A sync call runs in a helper thread that is given up
after ``timeout``; while it is still stuck, later calls fail at once instead of piling
up threads. An async call is cancelled after ``timeout``, except a lock try: Redis
runs a command it has read even if its connection is dropped, so that one goes on, and
while it does later lock tries fail at once. A lock try that Redis grants after it was
given up, sync or async, is released when the answer arrives, or it would hold off
every other renewal for ``lock_timeout``. A call that times out is an outage like any
other: requests go on with the process's own token.

Any redis-py client of the right kind serves: ``redis.cluster.RedisCluster`` (each
command touches one key, so an entry and its lock may sit in different slots) and a
Sentinel's ``master_for`` client (a failover is an outage until the new master answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from .. import _aio
from .._fork import reset_after_fork
from ..token import Token
from ._base import CacheError, token_from_entry

__all__ = ["RedisTokenCache"]

log = logging.getLogger("authplug")

T = TypeVar("T")

_MAX_TTL = 30 * 24 * 3600
_LOCK_POLL = 0.1  # seconds between two tries of a held renewal lock


def _ttl(token: Token, now: float) -> int | None:
    """Keep a token while its access or refresh token may still be of use."""
    ends = [t for t in (token.expires_at, token.refresh_expires_at) if t is not None]
    if not ends or (token.refresh_token and token.refresh_expires_at is None):
        return _MAX_TTL
    return max(1, min(_MAX_TTL, int(max(ends) - now) + 1))


class RedisTokenCache:
    """Tokens in Redis under ``prefix`` + a hashed key.

    Args:
        client: a ``redis.Redis`` or ``redis.asyncio.Redis`` client.
        prefix: prepended to every key.
        lock_timeout: seconds after which a renewal lock expires on its own (a crashed
            holder releases it that way).
        wait_timeout: seconds to wait for another renewal before going on without the
            lock (a warning is logged).
        timeout: seconds each Redis call may take before Redis counts as unavailable.

    Attributes:
        prefix: prepended to every key.
        timeout: seconds each Redis call may take.
    """

    def __init__(
        self,
        client: Any,
        prefix: str = "authplug:",
        *,
        lock_timeout: float = 60.0,
        wait_timeout: float = 60.0,
        timeout: float = 5.0,
    ) -> None:
        import redis  # the optional extra: pip install authplug[redis]
        import redis.asyncio

        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._release_errors: tuple[type[BaseException], ...] = (*self._errors, CacheError)
        self._client = client
        self._async = isinstance(client, (redis.asyncio.Redis, redis.asyncio.RedisCluster))
        self.prefix = prefix
        self._lock_timeout = lock_timeout
        self._wait_timeout = wait_timeout
        self.timeout = timeout
        self._guard = threading.Lock()
        self._stuck = 0
        self._late: set[asyncio.Future[Any]] = set()  # async tries left running, their undoing
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"RedisTokenCache(prefix={self.prefix!r}, async={self._async})"

    @property
    def serves_sync(self) -> bool:
        """Whether the blocking methods work (not with a redis.asyncio client): authplug
        then renews in threads; otherwise on the async caller's event loop."""
        return not self._async

    @property
    def max_wait(self) -> float:
        """The longest one renewal may spend in the cache (the lock, then a few calls)."""
        return self._wait_timeout + 4 * self.timeout

    def _after_fork(self) -> None:
        self._guard = threading.Lock()
        self._stuck = 0  # the stuck helper threads were not forked
        self._late = set()  # nor the parent's event loop

    def _bounded(
        self,
        what: str,
        call: Callable[[], T],
        timeout: float | None = None,
        *,
        undo: Callable[[T], object] | None = None,
    ) -> T:
        """``call()`` in a helper thread, given up after ``timeout`` seconds.

        ``undo(result)`` runs in that thread when the call succeeds after it was given
        up: nobody will use what it got (a lock granted late), so it is given back.
        Until then the call counts as stuck.
        """
        limit = self.timeout if timeout is None else timeout
        with self._guard:
            if self._stuck:
                raise CacheError("Redis has not answered an earlier call yet")
        done = threading.Event()
        late = False
        outcome: list[tuple[bool, Any]] = []

        def target() -> None:
            try:
                outcome.append((True, call()))
            except BaseException as exc:
                outcome.append((False, exc))
            with self._guard:
                done.set()
                given_up = late
            if not given_up:
                return
            if undo is not None and outcome[0][0]:
                try:
                    undo(outcome[0][1])
                except self._release_errors as exc:  # Redis away again: the lock expires
                    log.debug("giving back a late Redis answer failed: %s", type(exc).__name__)
            with self._guard:
                self._stuck -= 1

        try:
            threading.Thread(target=target, name="authplug-redis", daemon=True).start()
        except RuntimeError:
            # The interpreter is exiting (Python 3.12 starts no thread then) while the exit
            # handler waits for a renewal to reach the cache: the call runs in this thread,
            # bounded by the client's socket timeout and by how long exit waits.
            return call()
        if not done.wait(limit):
            with self._guard:
                if not done.is_set():
                    late = True
                    self._stuck += 1
                    raise CacheError(f"Redis did not answer the {what} within {limit:g}s")
        ok, value = outcome[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    async def _abounded(
        self,
        what: str,
        call: Awaitable[T],
        timeout: float | None = None,
        *,
        undo: Callable[[T], Awaitable[object] | None] | None = None,
    ) -> T:
        """``await call``, given up after ``timeout`` seconds.

        Without ``undo`` the call is cancelled then. With it, the call goes on: once
        sent, a command may run in Redis though its connection is dropped, so a
        result that comes after we stopped waiting (a timeout, our caller cancelled)
        is handed to ``undo``. Until then, later such calls fail at once.
        """
        limit = self.timeout if timeout is None else timeout
        if _aio.on_trio():  # redis.asyncio's connections are asyncio's: an outage, not a crash
            _discard(call)
            raise CacheError(
                "a redis.asyncio client runs on asyncio only; under trio, give a redis.Redis "
                "client (its calls then run in worker threads)"
            )
        if undo is None:
            try:
                return await asyncio.wait_for(call, limit)
            except asyncio.TimeoutError:
                raise CacheError(f"Redis did not answer the {what} within {limit:g}s") from None
        if self._still_late():
            _discard(call)
            raise CacheError("Redis has not answered an earlier call yet")
        task = asyncio.ensure_future(call)
        try:
            return await asyncio.wait_for(asyncio.shield(task), limit)
        except asyncio.TimeoutError:
            if task.done():  # it ended as the time ran out: its own outcome
                return task.result()
            self._undo_late(task, undo)
            raise CacheError(f"Redis did not answer the {what} within {limit:g}s") from None
        except BaseException:
            if not task.done():  # our caller was cancelled; the call goes on
                self._undo_late(task, undo)
            raise

    def _still_late(self) -> bool:
        """Whether a call left running (or its undoing) may still end."""
        self._late = {f for f in self._late if not f.get_loop().is_closed()}
        return bool(self._late)

    def _undo_late(
        self, task: asyncio.Future[T], undo: Callable[[T], Awaitable[object] | None]
    ) -> None:
        """Hand ``task``'s result to ``undo`` when it comes; keep both until they end."""
        self._late.add(task)

        def settled(future: asyncio.Future[Any]) -> None:
            self._late.discard(future)
            if not future.cancelled() and future.exception() is not None:
                log.debug("a late Redis call failed: %s", type(future.exception()).__name__)

        def answered(future: asyncio.Future[T]) -> None:
            settled(future)
            if future.cancelled() or future.exception() is not None:
                return
            try:
                undoing = undo(future.result())
            except self._release_errors as exc:
                log.debug("giving back a late Redis answer failed: %s", type(exc).__name__)
                return
            if undoing is not None:
                follow = asyncio.ensure_future(undoing, loop=future.get_loop())
                self._late.add(follow)
                follow.add_done_callback(settled)

        task.add_done_callback(answered)

    def _name(self, key: str) -> str:
        return self.prefix + key

    def _fail(self, what: str, exc: BaseException) -> CacheError:
        return CacheError(f"Redis {what} failed ({type(exc).__name__}: {exc})")

    def _sync_only(self) -> None:
        if self._async:
            raise CacheError(
                "a redis.asyncio client serves async requests only; give a redis.Redis "
                "client for requests and httpx.Client"
            )

    def _decode(self, raw: Any, key: str) -> Token | None:
        return token_from_entry(raw, f"Redis key {self.prefix}{key[:8]}…")

    @staticmethod
    def _encode(token: Token) -> str:
        return json.dumps(token.to_dict())

    # -- sync --------------------------------------------------------------------

    def get(self, key: str) -> Token | None:
        """The token stored under ``key``, or None (an entry that is not a valid token
        reads as None, with one WARNING).

        Raises:
            CacheError: Redis failed or did not answer within ``timeout``, or the
                client is a ``redis.asyncio`` one.
        """
        self._sync_only()
        try:
            raw = self._bounded("read", lambda: self._client.get(self._name(key)))
        except self._errors as exc:
            raise self._fail("read", exc) from exc
        return self._decode(raw, key)

    def set(self, key: str, token: Token) -> None:
        """Store ``token`` under ``key``, kept while its access or refresh token may
        still be of use (30 days at most).

        Raises:
            CacheError: as :meth:`get`.
        """
        self._sync_only()
        value, ttl = self._encode(token), _ttl(token, _now())
        try:
            self._bounded("write", lambda: self._client.set(self._name(key), value, ex=ttl))
        except self._errors as exc:
            raise self._fail("write", exc) from exc

    def delete(self, key: str) -> None:
        """Remove the entry of ``key`` (after a revocation); nothing if there is none.

        Raises:
            CacheError: as :meth:`get`.
        """
        self._sync_only()
        try:
            self._bounded("delete", lambda: self._client.delete(self._name(key)))
        except self._errors as exc:
            raise self._fail("delete", exc) from exc

    #: :meth:`lock` takes ``hold=``: authplug asks for a lock a person's login may hold.
    takes_hold = True

    @contextlib.contextmanager
    def lock(self, key: str, hold: float | None = None) -> Iterator[None]:
        """Hold the key's Redis lock for the block; it expires on its own after
        ``lock_timeout`` seconds.

        Args:
            key: the token's key.
            hold: how long the holder may need the lock (a person logging in): the lock
                lasts, and the others wait, that long when it is longer.

        Raises:
            CacheError: another process held it for ``wait_timeout`` seconds (or
                ``hold``), or Redis failed.
        """
        self._sync_only()
        lease, wait = self._lock_times(hold)
        # thread_local=False: an async caller acquires in one worker thread and may
        # release in another.
        lock = self._client.lock(
            self._name(key) + ":lock", timeout=lease, blocking_timeout=wait, thread_local=False
        )
        try:
            acquired = self._acquire(lock, wait)
        except self._errors as exc:
            raise self._fail("lock", exc) from exc
        if not acquired:
            raise CacheError(f"timed out after {wait:.0f}s waiting for the lock")
        try:
            yield
        finally:
            try:
                self._bounded("unlock", lock.release)
            except self._release_errors as exc:  # expired meanwhile, or Redis away
                log.debug("releasing the Redis renewal lock failed: %s", type(exc).__name__)

    def _lock_times(self, hold: float | None) -> tuple[float, float]:
        """``(lease, wait)`` of a lock: a person's login may hold it longer."""
        extra = hold or 0.0
        return max(self._lock_timeout, extra), max(self._wait_timeout, extra)

    def _acquire(self, lock: Any, wait: float) -> bool:
        """Try the lock for ``wait`` seconds, each try bounded by ``timeout``.

        One blocking ``acquire`` in a helper thread could not be given up cleanly: it
        goes on trying after we stopped waiting. A non-blocking try is one command;
        when Redis grants it after we gave up on it, the lock would belong to nobody
        and stall every other renewal for ``lock_timeout``: ``undo`` releases it.
        """
        deadline = time.monotonic() + wait
        while True:
            if self._bounded(
                "lock", lambda: lock.acquire(blocking=False), undo=_undo_lock_try(lock)
            ):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_LOCK_POLL)

    # -- async -------------------------------------------------------------------

    async def aget(self, key: str) -> Token | None:
        """Async :meth:`get` (a sync client's call runs in a worker thread)."""
        if not self._async:
            return await _aio.to_thread(self.get, key)
        try:
            raw = await self._abounded("read", self._client.get(self._name(key)))
        except self._errors as exc:
            raise self._fail("read", exc) from exc
        return self._decode(raw, key)

    async def aset(self, key: str, token: Token) -> None:
        """Async :meth:`set`."""
        if not self._async:
            await _aio.to_thread(self.set, key, token)
            return
        write = self._client.set(self._name(key), self._encode(token), ex=_ttl(token, _now()))
        try:
            await self._abounded("write", write)
        except self._errors as exc:
            raise self._fail("write", exc) from exc

    async def adelete(self, key: str) -> None:
        """Async :meth:`delete`."""
        if not self._async:
            await _aio.to_thread(self.delete, key)
            return
        try:
            await self._abounded("delete", self._client.delete(self._name(key)))
        except self._errors as exc:
            raise self._fail("delete", exc) from exc

    async def _aacquire(self, lock: Any, wait: float) -> bool:
        """Async :meth:`_acquire`: non-blocking tries, each bounded by ``timeout``."""
        deadline = time.monotonic() + wait
        while True:
            if await self._abounded("lock", lock.acquire(blocking=False), undo=_arelease(lock)):
                return True
            if time.monotonic() >= deadline:
                return False
            await _aio.sleep(_LOCK_POLL)

    @contextlib.asynccontextmanager
    async def alock(self, key: str, hold: float | None = None) -> AsyncIterator[None]:
        """Async :meth:`lock`."""
        if not self._async:
            locked = self.lock(key, hold)
            await _aio.to_thread(locked.__enter__)
            try:
                yield
            finally:
                await _aio.to_thread(locked.__exit__, None, None, None)
            return
        lease, wait = self._lock_times(hold)
        lock = self._client.lock(self._name(key) + ":lock", timeout=lease, blocking_timeout=wait)
        try:
            acquired = await self._aacquire(lock, wait)
        except self._errors as exc:
            raise self._fail("lock", exc) from exc
        if not acquired:
            raise CacheError(f"timed out after {wait:.0f}s waiting for the lock")
        try:
            yield
        finally:
            try:
                await self._abounded("unlock", lock.release())
            except self._release_errors as exc:
                log.debug("releasing the Redis renewal lock failed: %s", type(exc).__name__)


def _undo_lock_try(lock: Any) -> Callable[[bool], None]:
    """What undoes one try of ``lock``: a release when it was granted."""

    def undo(acquired: bool) -> None:
        if acquired:
            lock.release()

    return undo


def _discard(call: Awaitable[Any]) -> None:
    """Close a coroutine that will never be awaited (so that nothing warns about it)."""
    if inspect.iscoroutine(call):
        call.close()


def _arelease(lock: Any) -> Callable[[bool], Awaitable[object] | None]:
    """What undoes one try of a ``redis.asyncio`` lock: a release when it was granted."""

    def undo(acquired: bool) -> Awaitable[object] | None:
        return lock.release() if acquired else None

    return undo


def _now() -> float:
    return time.time()
