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

The middleware is a driver of the per-request rule (:mod:`.exchange`): it performs the
plan's effects with aiohttp's handler, awaited.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._dpop import present
from .exchange import Answer, Effect, Renew, acarry_out, exchange, settled

if TYPE_CHECKING:
    import aiohttp

    from .binding import Binding

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


def _answer(request: aiohttp.ClientRequest, response: aiohttp.ClientResponse) -> Answer:
    """What the per-request rule needs of ``response``."""
    headers = response.headers
    return Answer(
        response.status,
        not getattr(request.body, "consumed", False),  # a stream aiohttp has read
        request.url,
        request.headers,
        lambda name: headers.getall(name, []),
    )


async def middleware(
    binding: Binding, request: aiohttp.ClientRequest, handler: Handler
) -> aiohttp.ClientResponse:
    if off_origin(binding.anchor, request):
        return await handler(request)  # a redirect to another origin: not for our token
    manager = binding.manager
    token = await manager.aget()
    url = request.url
    if url.scheme == "http":
        binding.warner.check("http", url.host or "", url.port)
    present(request.headers, token, manager.dpop, request.method, url)
    response = await handler(request)
    if settled(manager, binding.codes, response.status):
        return response

    async def act(effect: Effect) -> Any:
        nonlocal response
        if isinstance(effect, Renew):
            return await manager.arenew_rejected(effect.rejected)
        response.release()  # once more: the same request, with a new proof or token
        present(request.headers, effect.token, manager.dpop, request.method, url)
        response = await handler(request)
        return _answer(request, response)

    try:
        await acarry_out(exchange(manager, binding.codes, token, _answer(request, response)), act)
    except BaseException:
        response.release()  # a renewal that failed: the refusal's connection goes back
        raise
    return response
