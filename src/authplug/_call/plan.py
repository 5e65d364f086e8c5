"""Token calls as plans: generators that name the I/O they need, run by two drivers.

A plan yields effects (:class:`Send` a request, :class:`Sleep` a while, :class:`Call` a
user's function for a value such as a client assertion) and receives
their results; its return value is the outcome. :func:`drive` performs the effects
with blocking calls, :func:`adrive` with awaits (:func:`perform`/:func:`aperform` for
those of a token call; the renewal plans of :mod:`._renewal` add cache effects). Every
decision (retry or not, how long to wait, how to read an answer) is written once, in the
plan, the way httpx writes an auth flow once and runs it from a sync and an async client.

Reading a plan needs two things of generators: ``raw = yield Send(request)`` hands the
request to the driver and receives the answer, and a send that got no answer comes back
into the plan as a :class:`~authplug._call.transport.TransportFailure` raised at that
``yield`` (``plan.throw``). Each driver closes the plan in a ``finally``, so a
cancelled task leaves nothing half-run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .._redact import Secret
from .messages import RawResponse, TokenRequest

if TYPE_CHECKING:
    from .._clock import Clock
    from .transport import TokenTransport

__all__ = [
    "Call",
    "Effect",
    "Plan",
    "Send",
    "Sleep",
    "adrive",
    "aperform",
    "drive",
    "perform",
    "watched",
]

T = TypeVar("T")
E = TypeVar("E")
Failures = tuple[type[BaseException], ...]


@dataclass(frozen=True, slots=True)
class Send:
    """Send this request; the answer (a RawResponse) comes back."""

    request: TokenRequest


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait this many seconds; None comes back."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Call:
    """Get a secret from outside (a client assertion): ``sync()`` under the blocking
    driver, ``await asynchronous()`` under the async one; the secret comes back."""

    sync: Callable[[], Secret]
    asynchronous: Callable[[], Awaitable[Secret]]


Effect = Send | Sleep | Call
Plan = Generator[Effect, Any, T]


def perform(effect: Effect, transport: TokenTransport, clock: Clock) -> RawResponse | Secret | None:
    """One effect with blocking I/O: the answer of a Send (TransportFailure raised when
    there is none), None after a Sleep, the secret of a Call."""
    if isinstance(effect, Send):
        return transport.send(effect.request)
    if isinstance(effect, Call):
        return effect.sync()
    clock.sleep(effect.seconds)
    return None


async def aperform(
    effect: Effect, transport: TokenTransport, clock: Clock
) -> RawResponse | Secret | None:
    """:func:`perform` without blocking the event loop."""
    if isinstance(effect, Send):
        return await transport.asend(effect.request)
    if isinstance(effect, Call):
        return await effect.asynchronous()
    await clock.asleep(effect.seconds)
    return None


def drive(plan: Generator[E, Any, T], act: Callable[[E], Any], failures: Failures) -> T:
    """Run any plan with blocking calls: ``act(effect)`` performs each effect; an
    exception of ``failures`` goes back into the plan at its ``yield``."""
    try:
        effect = next(plan)
        while True:
            try:
                result = act(effect)
            except failures as failure:
                effect = plan.throw(failure)
            else:
                effect = plan.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        plan.close()


async def adrive(
    plan: Generator[E, Any, T], act: Callable[[E], Awaitable[Any]], failures: Failures
) -> T:
    """:func:`drive` without blocking the event loop: ``act`` is awaited."""
    try:
        effect = next(plan)
        while True:
            try:
                result = await act(effect)
            except failures as failure:
                effect = plan.throw(failure)
            else:
                effect = plan.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        plan.close()


def watched(plan: Plan[T], watch: Callable[[Effect, object], None]) -> Plan[T]:
    """``plan`` as it is, with ``watch(effect, outcome)`` told how each effect ended: its
    result, or the exception that went back into the plan (for the events of a token
    call: how many requests were sent, what the last answer said)."""
    try:
        effect = next(plan)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    while True:
        try:
            result = yield effect
        except GeneratorExit:
            plan.close()
            raise
        except BaseException as failure:
            watch(effect, failure)
            try:
                effect = plan.throw(failure)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        else:
            watch(effect, result)
            try:
                effect = plan.send(result)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
