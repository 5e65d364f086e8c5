"""The cache interface: get, set, and a lock around renewal."""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..spec import read_json

if TYPE_CHECKING:
    from ..token import Token

__all__ = ["CacheError", "TokenCache", "cache_key", "token_from_entry"]

log = logging.getLogger("authplug")


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

    Every method ends within a bounded time (raising CacheError when it cannot), so
    that a cache that stops answering never holds a renewal. A cache may say how long
    at most by a ``max_wait`` attribute (seconds); authplug's waiters allow for it.
    An entry that does not read as a valid token reads as None.

    A cache may also have ``delete(key)`` and ``async adelete(key)``, which
    ``revoke()`` uses to drop a revoked token; without them the entry stays (with a
    warning) until the next renewal overwrites it. They are not part of the protocol,
    so caches written before them still are token caches.

    A cache whose ``takes_hold`` attribute is true takes ``hold=`` (seconds) on ``lock``
    and ``alock``: how long the holder may need the lock (a person logging in, up to
    ``login_timeout``); the others then wait that long, and a lock that expires on its
    own lasts that long. Without it, a login that outlasts the lock's timeout may let
    a second process ask its person too.
    """

    def get(self, key: str) -> Token | None:
        """The stored token, or None; raises CacheError when the store is unavailable.

        Args:
            key: the token's key (see :func:`~authplug.cache.cache_key`).

        Returns:
            The token stored under ``key``, or None (an entry that is not a valid
            token reads as None).

        Raises:
            CacheError: the store is unavailable.
        """

    def set(self, key: str, token: Token) -> None:
        """Store a token.

        Args:
            key: the token's key.
            token: the token, replacing any stored under ``key``.

        Raises:
            CacheError: the store is unavailable.
        """

    def lock(self, key: str) -> AbstractContextManager[object]:
        """Hold renewal of ``key`` for the duration of the block.

        Args:
            key: the token's key.

        Returns:
            A context manager that holds the lock while its block runs.

        Raises:
            CacheError: the lock could not be taken in time, or the store is
                unavailable.
        """

    async def aget(self, key: str) -> Token | None:
        """Async :meth:`get`.

        Args:
            key: the token's key.

        Returns:
            The token stored under ``key``, or None.

        Raises:
            CacheError: the store is unavailable.
        """

    async def aset(self, key: str, token: Token) -> None:
        """Async :meth:`set`.

        Args:
            key: the token's key.
            token: the token, replacing any stored under ``key``.

        Raises:
            CacheError: the store is unavailable.
        """

    def alock(self, key: str) -> AbstractAsyncContextManager[object]:
        """Async :meth:`lock`.

        Args:
            key: the token's key.

        Returns:
            An async context manager that holds the lock while its block runs.

        Raises:
            CacheError: the lock could not be taken in time, or the store is
                unavailable.
        """


def cache_key(
    *,
    provider: str,
    token_url: str,
    client_id: str | None,
    username: str | None,
    scope: str | None,
    resource: tuple[str, ...] = (),
    audience: str | None = None,
    dpop_jkt: str | None = None,
) -> str:
    """A stable key from what identifies a token, hashed so it carries no identity.

    Resource indicators, the audience and the DPoP key's thumbprint count only when
    given, so that the keys of tokens stored before they existed stay the same. No
    secret is part of it.

    Args:
        provider: the provider's name.
        token_url: the token endpoint (``"issuer:"`` + the issuer with discovery).
        client_id: the client's identifier, or None.
        username: the resource owner's user name, or None.
        scope: the scope asked for, or None.
        resource: the resource indicators asked for.
        audience: the audience asked for, or None.
        dpop_jkt: the thumbprint of the DPoP key tokens are bound to, or None.

    Returns:
        The SHA-256 of these, in hex.
    """
    fields: list[object] = [provider, token_url, client_id, username, scope]
    if resource or audience is not None:
        fields += [sorted(resource), audience]
    if dpop_jkt is not None:
        # Each DPoP key its own entry: a token bound to one key is useless to another.
        fields += ["dpop", dpop_jkt]
    material = json.dumps(fields)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def token_from_entry(raw: Any, where: str) -> Token | None:
    """A stored entry as a Token; anything else reads as empty, with one WARNING.

    ``raw`` is the entry's JSON text (bytes or str) or its decoded object. Whatever it
    holds (a truncated write, deep nesting, a 400-digit number, another program's
    data), the answer is a token or None, never an exception: the next renewal
    overwrites it.
    """
    if raw is None:
        return None
    data = (
        read_json(raw if isinstance(raw, bytes) else raw.encode())
        if isinstance(raw, (bytes, str))
        else raw
    )
    try:
        if isinstance(data, dict):
            from ..token import Token

            return Token.from_dict(data)
    except ValueError as exc:
        reason = f"not a valid token ({exc})"
    except Exception as exc:  # never let a bad entry break renewals
        reason = f"not a valid token ({type(exc).__name__})"
    else:
        reason = "not a token object"
    log.warning(
        "the token cache entry in %s is %s; treating it as empty (the next renewal overwrites it)",
        where,
        reason,
    )
    return None
