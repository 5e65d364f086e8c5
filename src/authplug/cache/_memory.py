"""The default cache: this process's memory."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..token import Token

__all__ = ["MemoryTokenCache"]


class MemoryTokenCache:
    """Tokens in a dict. Renewal needs no lock here: the manager single-flights it.

    The default cache of every auth object: one per object, so nothing is shared.
    Implements :class:`~authplug.TokenCache`; its methods never raise.
    """

    __slots__ = ("_lock", "_tokens")

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryTokenCache(keys={len(self._tokens)})"

    def get(self, key: str) -> Token | None:
        """The token stored under ``key``, or None."""
        return self._tokens.get(key)

    def set(self, key: str, token: Token) -> None:
        """Store ``token`` under ``key``."""
        with self._lock:
            self._tokens[key] = token

    def delete(self, key: str) -> None:
        """Remove the entry of ``key`` (after a revocation); nothing if there is none."""
        with self._lock:
            self._tokens.pop(key, None)

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """No lock: the auth object's own single flight is enough in one process."""
        yield

    async def aget(self, key: str) -> Token | None:
        """Async :meth:`get`."""
        return self.get(key)

    async def aset(self, key: str, token: Token) -> None:
        """Async :meth:`set`."""
        self.set(key, token)

    async def adelete(self, key: str) -> None:
        """Async :meth:`delete`."""
        self.delete(key)

    @contextlib.asynccontextmanager
    async def alock(self, key: str) -> AsyncIterator[None]:
        """Async :meth:`lock`: no lock either."""
        yield
