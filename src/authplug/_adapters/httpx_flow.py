"""httpx (and httpx2): sync and async auth flows, replay by yielding the request again.

Both flows are drivers of the per-request rule (:mod:`.exchange`): they send the
request with the token, and hand any answer that is not settled by its status to the
plan, performing its effects (a renewal; the request yielded once more).

The flows override ``sync_auth_flow``/``async_auth_flow`` because getting a token does
I/O and waits on other callers. ``requires_request_body`` stays off, so a user's
streamed body stays a stream; such a one-shot body cannot be sent twice, so a refusal
of it is handed back (with the token renewed for the caller's own retry).

httpx applies the auth once, then follows redirects itself, copying the first hop's
headers (``Client._build_redirect_request``): the flow sees the last hop's answer only.
So a retry (a nonce, a renewal) goes to the hop that was refused, not back to the first
one. With DPoP, each redirect hop gets a proof of its own, or none off the token's
origin, from httpcore's trace (:mod:`authplug._adapters.httpx_hops`); through a transport that
does not call it, a hop refused for the first hop's proof is sent once more with its
own (the same token, no token call).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Any

from .._dpop import present
from .exchange import Answer, Renew, exchange, next_effect, settled
from .httpx_hops import follow_hops, traced

if TYPE_CHECKING:
    import httpx

    from ..token import Token
    from .binding import Binding

__all__ = ["async_flow", "sync_flow"]

# Streams httpx can send again as they are: bytes, str, form, JSON and multipart
# bodies. The names are shared by httpx and httpx2.
_REPLAYABLE_STREAMS = frozenset({"ByteStream", "MultipartStream"})


class _Rewind:
    """How to send a request's body again, decided before it is first sent."""

    __slots__ = ("_file", "_position", "replayable")

    def __init__(self, request: httpx.Request) -> None:
        stream: Any = request.stream
        self._file: Any = None
        self._position = 0
        self.replayable = type(stream).__name__ in _REPLAYABLE_STREAMS
        if not self.replayable:
            # A file handed in as content= is read from where it stands: note that
            # place and seek back to it before the replay.
            inner = getattr(stream, "_stream", None)
            if isinstance(inner, (list, tuple)):  # chunks httpx can iterate again
                self.replayable = True
            elif inner is not None and hasattr(inner, "seek") and hasattr(inner, "tell"):
                try:
                    self._position = inner.tell()
                except OSError:
                    return
                self._file = inner
                self.replayable = True

    def rewind(self) -> None:
        if self._file is not None:
            self._file.seek(self._position)


def _answer(request: httpx.Request, response: httpx.Response, rewind: _Rewind) -> Answer:
    """What the per-request rule needs of ``response`` to the flow's ``request``."""
    answered = response.request  # the last hop: httpx may have followed redirects
    copied = answered is not request and not traced(request)
    read = response.headers.get_list
    return Answer(
        response.status_code, rewind.replayable, answered.url, answered.headers, read, copied
    )


def _prepare(binding: Binding, request: httpx.Request, token: Token, is_async: bool) -> _Rewind:
    """Ready ``request`` to go with ``token`` (one WARNING per origin over plain http);
    how to send its body again, decided before it is first sent."""
    url = request.url
    if url.scheme == "http":
        binding.warner.check("http", url.host, url.port)
    rewind = _Rewind(request)
    _present(binding, request, token, is_async)
    return rewind


def _present(binding: Binding, hop: httpx.Request, token: Token, is_async: bool) -> None:
    dpop = binding.manager.dpop
    present(hop.headers, token, dpop, hop.method, hop.url)
    if dpop is not None and token.dpop_jkt is not None:
        # httpx copies this hop's headers to its redirect hops: each gets its own proof
        follow_hops(hop, dpop, is_async=is_async).presented(token)


def sync_flow(binding: Binding, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
    manager = binding.manager
    token = manager.get()
    rewind = _prepare(binding, request, token, False)
    response = yield request
    if settled(manager, binding.codes, response.status_code):
        return
    hop = response.request  # the last hop: a retry goes to the hop that was refused
    plan = exchange(manager, binding.codes, token, _answer(request, response, rewind))
    try:
        effect = next_effect(plan, None)
        while effect is not None:
            if isinstance(effect, Renew):
                result: Token | Answer | None = manager.renew_rejected(effect.rejected)
            else:
                rewind.rewind()
                _present(binding, hop, effect.token, False)
                result = _answer(request, (yield hop), rewind)
            effect = next_effect(plan, result)
    finally:
        plan.close()


async def async_flow(
    binding: Binding, request: httpx.Request
) -> AsyncGenerator[httpx.Request, httpx.Response]:
    manager = binding.manager
    token = await manager.aget()
    rewind = _prepare(binding, request, token, True)
    response = yield request
    if settled(manager, binding.codes, response.status_code):
        return
    hop = response.request  # the last hop: a retry goes to the hop that was refused
    plan = exchange(manager, binding.codes, token, _answer(request, response, rewind))
    try:
        effect = next_effect(plan, None)
        while effect is not None:
            if isinstance(effect, Renew):
                result: Token | Answer | None = await manager.arenew_rejected(effect.rejected)
            else:
                rewind.rewind()
                _present(binding, hop, effect.token, True)
                result = _answer(request, (yield hop), rewind)
            effect = next_effect(plan, result)
    finally:
        plan.close()
