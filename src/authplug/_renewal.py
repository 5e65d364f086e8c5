"""A renewal as one plan: cache effects around token calls, run by two drivers.

The manager writes a renewal once, as a generator (``TokenManager._renewal``): it
yields :class:`CacheLock`, :class:`CacheGet` and :class:`CacheSet` around the token
call plans of :mod:`authplug._plan` (``Send``/``Sleep``, ``yield from``-ed), and gets
each effect's result back. A cache that fails comes back into the plan as the
:class:`~authplug.cache.CacheError` raised at that ``yield`` (``throw``), and so does a
send that got no answer (``TransportFailure``), so the plan decides what either means.

:func:`drive` performs the effects with blocking calls, :func:`adrive` with awaits;
both hold the cache lock (once taken) until the plan ends, and close the plan in a
``finally``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from . import _plan as plans
from ._plan import Effect
from ._wire import RawResponse, TransportFailure
from .cache import CacheError
from .token import Token

if TYPE_CHECKING:
    from .cache import TokenCache

__all__ = ["CacheGet", "CacheLock", "CacheSet", "Renewal", "Stepper", "adrive", "drive"]

T = TypeVar("T")


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


RenewalEffect = CacheLock | CacheGet | CacheSet | Effect
Renewal = Generator[RenewalEffect, Any, T]


class Stepper(Protocol):
    """Performs the token-call effects (``Send``/``Sleep``) of a plan."""

    def step(self, effect: Effect) -> RawResponse | None: ...
    async def astep(self, effect: Effect) -> RawResponse | None: ...


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
            return await stepper.astep(effect)

        return await plans.adrive(plan, act, _FAILURES)
