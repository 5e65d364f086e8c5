"""aiohttp (3.12+): a client middleware, ``middleware(request, handler)``.

Modelled on aiohttp's own ``DigestAuthMiddleware``: set the header, call the handler,
and on a refusal call it once more with the same request. aiohttp runs the middlewares
again for every redirect hop (a new ``ClientRequest`` each time), and strips the
caller's Authorization header when a redirect leaves the origin; a middleware that
added the token to every hop would undo that. So the token goes to the origin of the
first hop of each request only, and only until a hop leaves it (A → B → A: the hop
back on A gets no token), as requests and httpx do. Each hop that carries the token
carries a proof of its own (DPoP). The hops of one request share aiohttp's list of
traces, which identifies the chain; without it (a future aiohttp), the first origin
this auth object served stands for all, as in ``DigestAuthMiddleware``.

A body aiohttp cannot send again (an async iterator, a consumed stream) is not
replayed: the refusal is handed back, with the token renewed for the caller's retry.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any

from .._challenge import log_not_replayed, renewal_useless
from .._dpop import present
from ..token import Token, authorization

if TYPE_CHECKING:
    import aiohttp

    from .._net import PlainHttpWarner
    from .._renew.manager import TokenManager

    Handler = Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]

__all__ = ["Anchor", "middleware", "off_origin"]

# The chain of hops the current task is sending: (aiohttp's traces list, first hop's
# URL, whether a hop has left that origin).
_chain: contextvars.ContextVar[tuple[object, Any, bool] | None] = contextvars.ContextVar(
    "authplug_aiohttp_chain", default=None
)


class Anchor:
    """Where an auth object's token may go when aiohttp gives no chain (fallback)."""

    __slots__ = ("origin",)

    def __init__(self) -> None:
        self.origin: str | None = None


def _origin(url: Any) -> str:
    return str(url.origin())


def off_origin(anchor: Anchor, request: aiohttp.ClientRequest) -> bool:
    """Whether ``request`` is a redirect hop that left its first hop's origin, or
    follows one that did.

    The first hop costs a lookup and no URL work: origins are compared on later hops
    only.
    """
    traces = getattr(request, "_traces", None)
    if traces is None:
        here = _origin(request.url)
        if anchor.origin is None:
            anchor.origin = here
        return here != anchor.origin
    current = _chain.get()
    if current is not None and current[0] is traces:
        if current[2]:
            return True
        if _origin(request.url) == _origin(current[1]):
            return False
        _chain.set((traces, current[1], True))  # left: no later hop gets the token
        return True
    _chain.set((traces, request.url, False))
    return False


def _where(request: aiohttp.ClientRequest) -> str:
    url = request.url
    return f"{url.scheme}://{url.host}{url.path}"


async def middleware(
    manager: TokenManager,
    codes: Collection[int],
    warner: PlainHttpWarner,
    anchor: Anchor,
    request: aiohttp.ClientRequest,
    handler: Handler,
) -> aiohttp.ClientResponse:
    if off_origin(anchor, request):
        return await handler(request)  # a redirect to another origin: not for our token
    token = await manager.aget()
    url = request.url
    if url.scheme == "http":
        warner.check("http", url.host or "", url.port)
    present(request.headers, token, manager.dpop, request.method, url)
    response = await handler(request)
    dpop = manager.dpop
    if dpop is not None and dpop.retry_for_nonce(
        str(url),
        response.status,
        response.headers.getall("WWW-Authenticate", []),
        response.headers.get("DPoP-Nonce"),
    ):
        if getattr(request.body, "consumed", False):
            return response
        response.release()  # once more, the same token with a proof carrying the nonce
        present(request.headers, token, dpop, request.method, url)
        response = await handler(request)
    if not _stale_token_refused(codes, request, response, token):
        return response
    try:
        fresh = await manager.arenew_rejected(token)
    except BaseException:
        response.release()
        raise
    if fresh is None:  # refusals go unanswered for now (a renewed token was refused too)
        return response
    body: Any = request.body
    if getattr(body, "consumed", False):
        log_not_replayed(_where(request), response.status)
        return response
    response.release()
    manager.replaying(_where(request), response.status)
    present(request.headers, fresh, manager.dpop, request.method, request.url)
    second = await handler(request)
    if second.status in codes and request.headers.get("Authorization") == authorization(fresh):
        manager.replay_refused(fresh)
    return second


def _stale_token_refused(
    codes: Collection[int],
    request: aiohttp.ClientRequest,
    response: aiohttp.ClientResponse,
    sent: Token,
) -> bool:
    """Our token was refused, and not for lack of scope: renewing may help."""
    if response.status not in codes or request.headers.get("Authorization") != authorization(sent):
        return False
    return not renewal_useless(response.headers.getall("WWW-Authenticate", []), _where(request))
