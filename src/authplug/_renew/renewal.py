"""A renewal as one plan: cache effects around token calls, run by two drivers.

The manager writes a renewal once, as a generator (``TokenManager._renewal``): it
yields :class:`CacheLock`, :class:`CacheGet` and :class:`CacheSet` around the token
call plans of :mod:`authplug._call.plan` (``Send``/``Sleep``, ``yield from``-ed), and gets
each effect's result back. A cache that fails comes back into the plan as the
:class:`~authplug.cache.CacheError` raised at that ``yield`` (``throw``), and so does a
send that got no answer (``TransportFailure``), so the plan decides what either means.

:func:`drive` performs the effects with blocking calls, :func:`adrive` with awaits;
both hold the cache lock (once taken) until the plan ends, and close the plan in a
``finally``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .._call import plan as plans
from .._call.messages import RawResponse, TransportFailure
from .._call.plan import Effect
from ..cache import CacheError
from ..token import Token

if TYPE_CHECKING:
    from .._redact import Secret
    from ..cache import TokenCache

__all__ = [
    "CacheDelete",
    "CacheGet",
    "CacheLock",
    "CacheSet",
    "Renewal",
    "Stepper",
    "adrive",
    "drive",
]

T = TypeVar("T")

log = logging.getLogger("authplug")


@dataclass(frozen=True, slots=True)
class CacheLock:
    """Take the cache's renewal lock, held until the plan ends; None comes back."""


@dataclass(frozen=True, slots=True)
class CacheGet:
    """Read the shared token; the Token (or None) comes back."""


@dataclass(frozen=True, slots=True)
class CacheSet:
    """Store a token for the others; None comes back."""

    token: Token


@dataclass(frozen=True, slots=True)
class CacheDelete:
    """Remove the shared token (after a revocation); None comes back.

    A cache without ``delete``/``adelete`` (one written before they existed) keeps the
    entry, with a warning: the next renewal anywhere overwrites it.
    """


RenewalEffect = CacheLock | CacheGet | CacheSet | CacheDelete | Effect


def _no_delete(cache: TokenCache) -> None:
    log.warning(
        "%r has no delete(): the revoked token stays in it until the next renewal "
        "overwrites it (refused by the server meanwhile, then renewed)",
        cache,
    )


Renewal = Generator[RenewalEffect, Any, T]


class Stepper(Protocol):
    """Performs the token-call effects (``Send``/``Sleep``) of a plan."""

    def step(self, effect: Effect) -> RawResponse | Secret | None: ...
    async def astep(self, effect: Effect) -> RawResponse | Secret | None: ...


_FAILURES = (CacheError, TransportFailure)


def drive(plan: Renewal[T], cache: TokenCache, key: str, stepper: Stepper) -> T:
    """Run a renewal plan with blocking calls."""
    with contextlib.ExitStack() as held:

        def act(effect: RenewalEffect) -> Any:
            if isinstance(effect, CacheLock):
                return held.enter_context(cache.lock(key))
            if isinstance(effect, CacheGet):
                return cache.get(key)
            if isinstance(effect, CacheSet):
                return cache.set(key, effect.token)
            if isinstance(effect, CacheDelete):
                delete = getattr(cache, "delete", None)
                return delete(key) if delete is not None else _no_delete(cache)
            return stepper.step(effect)

        return plans.drive(plan, act, _FAILURES)


async def adrive(plan: Renewal[T], cache: TokenCache, key: str, stepper: Stepper) -> T:
    """Run a renewal plan without blocking the event loop."""
    async with contextlib.AsyncExitStack() as held:

        async def act(effect: RenewalEffect) -> Any:
            if isinstance(effect, CacheLock):
                return await held.enter_async_context(cache.alock(key))
            if isinstance(effect, CacheGet):
                return await cache.aget(key)
            if isinstance(effect, CacheSet):
                return await cache.aset(key, effect.token)
            if isinstance(effect, CacheDelete):
                adelete = getattr(cache, "adelete", None)
                return await adelete(key) if adelete is not None else _no_delete(cache)
            return await stepper.astep(effect)

        return await plans.adrive(plan, act, _FAILURES)
