"""niquests' AsyncSession: async hooks, so that a token call never blocks the loop.

niquests calls an auth object as requests does, ``auth(prepared_request)``, from its
sync ``Session`` and its ``AsyncSession`` alike; it awaits the auth only when its
``__call__`` is a coroutine function, which one object serving requests cannot be. So
the call looks at who prepares the request: inside ``AsyncSession.request`` (niquests'
frames right above the call include a coroutine), the token is set by an async
``pre_request`` hook and a refusal is answered by an async ``response`` hook, both
awaited by niquests (as its own ``AsyncHTTPDigestAuth`` does). Anywhere else (a sync
``Session`` too, even one used inside an ``AsyncSession``'s hook), the sync path of
:mod:`._requests_adapter` serves.

niquests runs ``pre_request`` hooks for every redirect hop, after its own
``rebuild_auth``: a hop that kept the token gets a fresh DPoP proof there, one that
lost it loses the proof too (:func:`._prepared.refresh_hop`).

A request an application prepares itself and hands to ``AsyncSession.send`` gets the
sync path: it works, but a token call then runs on the loop's thread.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Collection
from types import FrameType
from typing import TYPE_CHECKING, Any

from .._challenge import log_not_replayed
from .._redact import safe_url
from .sessions import (
    attach,
    nonce_replay,
    position_of,
    refresh_hop,
    renewable,
    replay_of,
    replayable,
)

if TYPE_CHECKING:
    from .._net import PlainHttpWarner
    from .._renew.manager import TokenManager
    from ..token import Token

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


def apply(
    manager: TokenManager, codes: Collection[int], warner: PlainHttpWarner, request: Any
) -> Any:
    position = position_of(request.body)
    sent: list[Token] = []

    async def attach_later(prepared: Any, **kwargs: Any) -> Any:
        if prepared is not request:  # a redirect hop: niquests kept or stripped the token
            refresh_hop(manager.dpop, prepared)
        elif not sent:
            token = await manager.aget()
            attach(warner, prepared, token, manager.dpop)
            sent.append(token)
        return prepared

    async def handle(response: Any, **kwargs: Any) -> Any:
        if not sent:
            return response
        return await _handle(manager, codes, sent[-1], position, response, **kwargs)

    token = manager.ready()
    if token is not None:  # the usual case: no token call to await before sending
        attach(warner, request, token, manager.dpop)
        sent.append(token)
    if token is None or manager.dpop is not None:
        request.register_hook("pre_request", attach_later)
    request.register_hook("response", handle)
    return request


async def _handle(
    manager: TokenManager,
    codes: Collection[int],
    sent: Token,
    position: int | None,
    response: Any,
    **kwargs: Any,
) -> Any:
    again = nonce_replay(manager.dpop, response, sent, position)
    if again is not None:
        await _release(response)
        response = await _resend(response, again, **kwargs)
    if not renewable(codes, sent, response):
        return response
    body: Any = response.request.body
    try:
        fresh = await manager.arenew_rejected(sent)
    except BaseException:
        await _release(response)
        raise
    if fresh is None:
        return response
    where = safe_url(response.request.url or "")
    if not replayable(body, position):
        log_not_replayed(where, response.status_code)
        return response
    if position is not None:
        body.seek(position)
    await _release(response)
    replay = replay_of(response, fresh, manager.dpop)
    manager.replaying(where, response.status_code)
    second = await _resend(response, replay, **kwargs)
    if second.status_code in codes:
        manager.replay_refused(fresh)
    return second


async def _resend(response: Any, replay: Any, **kwargs: Any) -> Any:
    """Send ``replay`` on the refused response's adapter; the refusal goes to history."""
    second = await response.connection.send(replay, **kwargs)
    second.history.append(response)
    second.request = replay
    return second
