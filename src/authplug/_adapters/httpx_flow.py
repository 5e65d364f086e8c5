"""httpx (and httpx2): sync and async auth flows, replay by yielding the request again.

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

from collections.abc import AsyncGenerator, Collection, Generator
from typing import TYPE_CHECKING, Any

from .._challenge import log_not_replayed, renewal_useless
from .._dpop import present
from ..token import Token, authorization
from .httpx_hops import follow_hops, traced

if TYPE_CHECKING:
    import httpx

    from .._net import PlainHttpWarner
    from .._renew.manager import TokenManager

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


def _our_token_refused(codes: Collection[int], response: httpx.Response, sent: Token) -> bool:
    # Only a request that carried this token: after a redirect to another origin,
    # httpx has stripped the header and the refusal is not ours to answer.
    return response.status_code in codes and response.request.headers.get(
        "Authorization"
    ) == authorization(sent)


def _stale_token_refused(codes: Collection[int], response: httpx.Response, sent: Token) -> bool:
    """Our token was refused, and not for lack of scope: renewing may help."""
    if not _our_token_refused(codes, response, sent):
        return False
    return not renewal_useless(
        response.headers.get_list("www-authenticate"), _where(response.request)
    )


def _where(request: httpx.Request) -> str:
    url = request.url
    return f"{url.scheme}://{url.host}{url.path}"


def _prepare(
    manager: TokenManager,
    warner: PlainHttpWarner,
    request: httpx.Request,
    token: Token,
    is_async: bool,
) -> _Rewind:
    url = request.url
    if url.scheme == "http":
        warner.check("http", url.host, url.port)
    rewind = _Rewind(request)
    _present(manager, request, token, is_async)
    return rewind


def _present(manager: TokenManager, request: httpx.Request, token: Token, is_async: bool) -> None:
    dpop = manager.dpop
    present(request.headers, token, dpop, request.method, request.url)
    if dpop is not None and token.dpop_jkt is not None:
        # httpx copies this hop's headers to its redirect hops: each gets its own proof
        follow_hops(request, dpop, is_async=is_async).presented(token)


def _proof_retry(
    manager: TokenManager,
    codes: Collection[int],
    request: httpx.Request,
    response: httpx.Response,
    rewind: _Rewind,
    token: Token,
) -> bool:
    """Send the refused hop once more, with the same token and a new proof: the API
    asked for a DPoP nonce, or refused a redirect hop that went with the first hop's
    proof."""
    dpop = manager.dpop
    if dpop is None:
        return False
    asked = dpop.retry_for_nonce(
        str(response.request.url),
        response.status_code,
        response.headers.get_list("www-authenticate"),
        response.headers.get("dpop-nonce"),
    )
    stale = (  # a hop that went with the first hop's proof: no trace gave it its own
        response.request is not request
        and token.dpop_jkt is not None
        and not traced(request)
        and _our_token_refused(codes, response, token)
    )
    if not (asked or stale) or not rewind.replayable:
        return False
    rewind.rewind()
    return True


def sync_flow(
    manager: TokenManager,
    codes: Collection[int],
    warner: PlainHttpWarner,
    request: httpx.Request,
) -> Generator[httpx.Request, httpx.Response]:
    token = manager.get()
    rewind = _prepare(manager, warner, request, token, False)
    response = yield request
    hop = response.request  # the last hop: httpx may have followed redirects
    if _proof_retry(manager, codes, request, response, rewind, token):
        _present(manager, hop, token, False)
        response = yield hop
    if not _stale_token_refused(codes, response, token):
        return
    fresh = manager.renew_rejected(token)
    if fresh is None:  # refusals go unanswered for now (a renewed token was refused too)
        return
    if not rewind.replayable:
        log_not_replayed(_where(hop), response.status_code)
        return
    rewind.rewind()
    manager.replaying(_where(hop), response.status_code)
    _present(manager, hop, fresh, False)
    response = yield hop
    if _our_token_refused(codes, response, fresh):
        manager.replay_refused(fresh)


async def async_flow(
    manager: TokenManager,
    codes: Collection[int],
    warner: PlainHttpWarner,
    request: httpx.Request,
) -> AsyncGenerator[httpx.Request, httpx.Response]:
    token = await manager.aget()
    rewind = _prepare(manager, warner, request, token, True)
    response = yield request
    hop = response.request  # the last hop: httpx may have followed redirects
    if _proof_retry(manager, codes, request, response, rewind, token):
        _present(manager, hop, token, True)
        response = yield hop
    if not _stale_token_refused(codes, response, token):
        return
    fresh = await manager.arenew_rejected(token)
    if fresh is None:
        return
    if not rewind.replayable:
        log_not_replayed(_where(hop), response.status_code)
        return
    rewind.rewind()
    manager.replaying(_where(hop), response.status_code)
    _present(manager, hop, fresh, True)
    response = yield hop
    if _our_token_refused(codes, response, fresh):
        manager.replay_refused(fresh)
