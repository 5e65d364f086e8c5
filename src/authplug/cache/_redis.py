"""Tokens in Redis, renewal single-flight across processes and hosts.

A Redis lock with a timeout guards renewal, so a crashed holder cannot stall the
others for longer than ``lock_timeout``. The client is ``redis.Redis`` (sync requests
and ``httpx.Client``; async callers use it from a worker thread) or
``redis.asyncio.Redis`` (``httpx.AsyncClient``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..token import Token
from ._base import CacheError

__all__ = ["RedisTokenCache"]

log = logging.getLogger("authplug")

_MAX_TTL = 30 * 24 * 3600


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
    """

    def __init__(
        self,
        client: Any,
        prefix: str = "authplug:",
        *,
        lock_timeout: float = 60.0,
        wait_timeout: float = 60.0,
    ) -> None:
        import redis  # the optional extra: pip install authplug[redis]
        import redis.asyncio

        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._client = client
        self._async = isinstance(client, (redis.asyncio.Redis, redis.asyncio.RedisCluster))
        self.prefix = prefix
        self._lock_timeout = lock_timeout
        self._wait_timeout = wait_timeout

    def __repr__(self) -> str:
        return f"RedisTokenCache(prefix={self.prefix!r}, async={self._async})"

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

    @staticmethod
    def _decode(raw: Any) -> Token | None:
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return Token.from_dict(data) if isinstance(data, dict) else None
        except (ValueError, UnicodeDecodeError):
            return None

    @staticmethod
    def _encode(token: Token) -> str:
        return json.dumps(token.to_dict())

    # -- sync --------------------------------------------------------------------

    def get(self, key: str) -> Token | None:
        self._sync_only()
        try:
            return self._decode(self._client.get(self._name(key)))
        except self._errors as exc:
            raise self._fail("read", exc) from exc

    def set(self, key: str, token: Token) -> None:
        self._sync_only()
        try:
            self._client.set(self._name(key), self._encode(token), ex=_ttl(token, _now()))
        except self._errors as exc:
            raise self._fail("write", exc) from exc

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        self._sync_only()
        # thread_local=False: an async caller acquires in one worker thread and may
        # release in another.
        lock = self._client.lock(
            self._name(key) + ":lock",
            timeout=self._lock_timeout,
            blocking_timeout=self._wait_timeout,
            thread_local=False,
        )
        try:
            acquired = lock.acquire()
        except self._errors as exc:
            raise self._fail("lock", exc) from exc
        if not acquired:
            raise CacheError(f"timed out after {self._wait_timeout:.0f}s waiting for the lock")
        try:
            yield
        finally:
            try:
                lock.release()
            except self._errors as exc:  # expired meanwhile, or Redis went away
                log.debug("releasing the Redis renewal lock failed: %s", type(exc).__name__)

    # -- async -------------------------------------------------------------------

    async def aget(self, key: str) -> Token | None:
        if not self._async:
            return await asyncio.to_thread(self.get, key)
        try:
            return self._decode(await self._client.get(self._name(key)))
        except self._errors as exc:
            raise self._fail("read", exc) from exc

    async def aset(self, key: str, token: Token) -> None:
        if not self._async:
            await asyncio.to_thread(self.set, key, token)
            return
        try:
            await self._client.set(self._name(key), self._encode(token), ex=_ttl(token, _now()))
        except self._errors as exc:
            raise self._fail("write", exc) from exc

    @contextlib.asynccontextmanager
    async def alock(self, key: str) -> AsyncIterator[None]:
        if not self._async:
            locked = self.lock(key)
            await asyncio.to_thread(locked.__enter__)
            try:
                yield
            finally:
                await asyncio.to_thread(locked.__exit__, None, None, None)
            return
        lock = self._client.lock(
            self._name(key) + ":lock",
            timeout=self._lock_timeout,
            blocking_timeout=self._wait_timeout,
        )
        try:
            acquired = await lock.acquire()
        except self._errors as exc:
            raise self._fail("lock", exc) from exc
        if not acquired:
            raise CacheError(f"timed out after {self._wait_timeout:.0f}s waiting for the lock")
        try:
            yield
        finally:
            try:
                await lock.release()
            except self._errors as exc:
                log.debug("releasing the Redis renewal lock failed: %s", type(exc).__name__)


def _now() -> float:
    import time

    return time.time()
