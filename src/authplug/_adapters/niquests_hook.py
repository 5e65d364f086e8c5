"""niquests' AsyncSession: async hooks, so that a token call never blocks the loop.

A driver of the per-request rule (:mod:`.exchange`), as :mod:`.requests_hook` is, with
its effects awaited.

niquests calls an auth object as requests does, ``auth(prepared_request)``, from its
sync ``Session`` and its ``AsyncSession`` alike; it awaits the auth only when its
``__call__`` is a coroutine function, which one object serving requests cannot be. So
the call looks at who prepares the request: inside ``AsyncSession.request`` (niquests'
frames right above the call include a coroutine), the token is set by an async
``pre_request`` hook and a refusal is answered by an async ``response`` hook, both
awaited by niquests (as its own ``AsyncHTTPDigestAuth`` does). Anywhere else (a sync
``Session`` too, even one used inside an ``AsyncSession``'s hook), the sync path of
:mod:`.requests_hook` serves.

niquests runs ``pre_request`` hooks for every redirect hop, after its own
``rebuild_auth``: a hop that kept the token gets a fresh DPoP proof there, one that
lost it loses the proof too (:func:`.sessions.refresh_hop`).

A request an application prepares itself and hands to ``AsyncSession.send`` gets the
sync path: it works, but a token call then runs on the loop's thread.
"""

from __future__ import annotations

import inspect
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

from .exchange import Effect, Renew, acarry_out, exchange, settled
from .sessions import (
    answer_of,
    attach,
    position_of,
    refresh_hop,
    replay_of,
    seek_back,
)

if TYPE_CHECKING:
    from ..token import Token
    from .binding import Binding

__all__ = ["apply", "in_async_session"]

_COROUTINE = inspect.CO_COROUTINE


def in_async_session() -> bool:
    """Whether niquests' AsyncSession is preparing the request being authenticated.

    Only niquests' own frames right above the auth call count (``prepare_auth``, ...,
    ``AsyncSession.request``): a sync ``Session`` called from a coroutine, or from a
    hook an ``AsyncSession`` runs, is a sync session.
    """
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("niquests."):
        if frame.f_code.co_flags & _COROUTINE:
            return True
        frame = frame.f_back
    return False


async def _release(response: Any) -> None:
    """Consume and close a refused response (its connection goes back to the pool)."""
    content = response.content  # an AsyncResponse's content and close are awaitable
    if inspect.isawaitable(content):
        await content
    closed = response.close()
    if inspect.isawaitable(closed):
        await closed


def apply(binding: Binding, request: Any) -> Any:
    manager = binding.manager
    position = position_of(request.body)
    sent: list[Token] = []

    async def attach_later(prepared: Any, **kwargs: Any) -> Any:
        if prepared is not request:  # a redirect hop: niquests kept or stripped the token
            refresh_hop(manager.dpop, prepared)
        elif not sent:
            token = await manager.aget()
            attach(binding.warner, prepared, token, manager.dpop)
            sent.append(token)
        return prepared

    async def handle(response: Any, **kwargs: Any) -> Any:
        if not sent or settled(manager, binding.codes, response.status_code):
            return response
        return await _handle(binding, sent[-1], position, response, **kwargs)

    token = manager.ready()
    if token is not None:  # the usual case: no token call to await before sending
        attach(binding.warner, request, token, manager.dpop)
        sent.append(token)
    if token is None or manager.dpop is not None:
        request.register_hook("pre_request", attach_later)
    request.register_hook("response", handle)
    return request


async def _handle(
    binding: Binding, sent: Token, position: int | None, response: Any, **kwargs: Any
) -> Any:
    """The per-request rule from ``response`` (a hop's answer that is not
    :func:`.exchange.settled`) on; the last answer."""
    manager = binding.manager

    async def act(effect: Effect) -> Any:
        nonlocal response
        if isinstance(effect, Renew):
            return await manager.arenew_rejected(effect.rejected)
        seek_back(response.request.body, position)
        await _release(response)
        replay = replay_of(response, effect.token, manager.dpop)
        response = await _resend(response, replay, **kwargs)
        return answer_of(response, position)

    try:
        await acarry_out(exchange(manager, binding.codes, sent, answer_of(response, position)), act)
    except BaseException:
        await _release(response)  # a renewal that failed: the refusal's connection goes back
        raise
    return response


async def _resend(response: Any, replay: Any, **kwargs: Any) -> Any:
    """Send ``replay`` on the refused response's adapter; the refusal goes to history."""
    second = await response.connection.send(replay, **kwargs)
    second.history.append(response)
    second.request = replay
    return second
