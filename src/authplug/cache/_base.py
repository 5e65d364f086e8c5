"""The cache interface: get, set, and a lock around renewal."""

from __future__ import annotations

import hashlib
import json
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Protocol, runtime_checkable

from ..token import Token

__all__ = ["CacheError", "TokenCache", "cache_key"]


class CacheError(Exception):
    """A cache could not be used (Redis down, file unwritable, lock timed out).

    The manager catches it, logs one warning, and goes on with this process's own
    token: no request is lost because a cache is down.
    """


@runtime_checkable
class TokenCache(Protocol):
    """Stores one token per key and serialises renewal of a key.

    ``lock`` is held by the one caller (thread, task or, for shared caches, process)
    that renews a key; in-process single flight happens before it, so an in-memory
    cache needs no real lock. Sync methods serve requests and ``httpx.Client``; the
    ``a``-prefixed ones serve ``httpx.AsyncClient`` and must not block the event loop.
    """

    def get(self, key: str) -> Token | None:
        """The stored token, or None; raises CacheError when the store is unavailable."""

    def set(self, key: str, token: Token) -> None:
        """Store a token."""

    def lock(self, key: str) -> AbstractContextManager[object]:
        """Hold renewal of ``key`` for the duration of the block."""

    async def aget(self, key: str) -> Token | None:
        """Async :meth:`get`."""

    async def aset(self, key: str, token: Token) -> None:
        """Async :meth:`set`."""

    def alock(self, key: str) -> AbstractAsyncContextManager[object]:
        """Async :meth:`lock`."""


def cache_key(
    *,
    provider: str,
    token_url: str,
    client_id: str | None,
    username: str | None,
    scope: str | None,
) -> str:
    """A stable key from what identifies a token, hashed so it carries no identity."""
    material = json.dumps([provider, token_url, client_id, username, scope])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()
