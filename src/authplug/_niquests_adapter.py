"""niquests' AsyncSession: async hooks, so that a token call never blocks the loop.

niquests calls an auth object as requests does, ``auth(prepared_request)``, from its
sync ``Session`` and its ``AsyncSession`` alike; it awaits the auth only when its
``__call__`` is a coroutine function, which one object serving requests cannot be. So
the call looks at who prepares the request: inside ``AsyncSession.request`` (the
nearest coroutine up the stack is niquests'), the token is set by an async
``pre_request`` hook and a refusal is answered by an async ``response`` hook, both
awaited by niquests (as its own ``AsyncHTTPDigestAuth`` does). Anywhere else, the sync
path of :mod:`._requests_adapter` serves.

A request an application prepares itself and hands to ``AsyncSession.send`` gets the
sync path: it works, but a token call then runs on the loop's thread.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from collections.abc import Collection
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._challenge import scope_refusal
from ._redact import safe_url
from .token import Token, bearer

if TYPE_CHECKING:
    from ._manager import TokenManager
    from ._net import PlainHttpWarner

__all__ = ["apply", "in_async_session"]

log = logging.getLogger("authplug")

_COROUTINE = inspect.CO_COROUTINE


def in_async_session() -> bool:
    """Whether niquests' AsyncSession is preparing the request being authenticated."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_flags & _COROUTINE:
            return str(frame.f_globals.get("__name__", "")).startswith("niquests.")
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
    body: object = request.body
    position: int | None = None
    tell = getattr(body, "tell", None)
    # A file with a sync tell is rewound for a replay; an async file is not (a one-shot).
    if (
        tell is not None
        and not isinstance(body, (bytes, str))
        and not inspect.iscoroutinefunction(tell)
    ):
        try:
            told = tell()
        except OSError:
            told = None
        position = told if isinstance(told, int) else None
    sent: list[Token] = []

    def attach(prepared: Any, token: Token) -> Any:
        url = prepared.url or ""
        if url.startswith("http://"):
            parts = urlsplit(url)
            warner.check("http", parts.hostname or "", parts.port)
        prepared.headers["Authorization"] = bearer(token)
        sent.append(token)
        return prepared

    async def attach_later(prepared: Any, **kwargs: Any) -> Any:
        if sent:  # a redirect hop: niquests kept or stripped the header as it should
            return prepared
        return attach(prepared, await manager.aget())

    async def handle(response: Any, **kwargs: Any) -> Any:
        if not sent:
            return response
        return await _handle(manager, codes, sent[-1], body, position, response, **kwargs)

    token = manager.ready()
    if token is not None:  # the usual case: no hook to await before sending
        attach(request, token)
    else:
        request.register_hook("pre_request", attach_later)
    request.register_hook("response", handle)
    return request


async def _handle(
    manager: TokenManager,
    codes: Collection[int],
    token: Token,
    body: object,
    position: int | None,
    response: Any,
    **kwargs: Any,
) -> Any:
    request = response.request
    if response.status_code not in codes or request.headers.get("Authorization") != bearer(token):
        return response
    where = safe_url(request.url or "")
    challenge = response.headers.get("WWW-Authenticate")
    if scope_refusal([challenge] if challenge else [], where):
        return response
    try:
        fresh = await manager.arenew_rejected(token)
    except BaseException:
        await _release(response)
        raise
    if fresh is None:
        return response
    if not (body is None or isinstance(body, (bytes, str)) or position is not None):
        log.warning(
            "%s: the API answered %d; the token was renewed but the request was not "
            "sent again because its body is a one-shot stream; retry it",
            where,
            response.status_code,
        )
        return response
    if position is not None:
        body.seek(position)  # type: ignore[attr-defined]
    cookies = importlib.import_module("niquests.cookies")
    await _release(response)
    replay = request.copy()
    jar = replay._cookies
    cookies.extract_cookies_to_jar(jar, request, response.raw)
    replay.prepare_cookies(jar)
    replay.headers["Authorization"] = bearer(fresh)
    response.request = request.copy()
    request.headers["Authorization"] = bearer(fresh)
    log.info(
        "%s: the API answered %d; replaying the request with a renewed token",
        where,
        response.status_code,
    )
    second = await response.connection.send(replay, **kwargs)
    second.history.append(response)
    second.request = replay
    if second.status_code in codes:
        manager.replay_refused(fresh)
    return second
