"""A DPoP proof of its own for every redirect hop httpx sends, through httpcore's trace.

httpx applies an auth once, then follows redirects itself, copying the first hop's
headers to each hop (``Client._build_redirect_request``; ``Authorization`` is dropped
when the origin changes, ``DPoP`` is not). A proof names one method and URL and is
single-use, so a copied proof is refused by a strict API, and one that follows to
another origin is shown to a server it was never meant for.

The request's ``trace`` extension is carried to every hop (the redirect request gets
the same ``extensions``) and httpcore calls it just before it writes a request's
headers, with the very header list it writes. There the proof follows the token: a hop
that carries our ``Authorization`` gets a fresh proof for its own method and URL (and
that API's nonce); a hop without it gets no proof. The first send after the flow
presented the token keeps the proof the flow made. A user's own ``trace`` is called
after, as before. A transport that does not go through httpcore never calls the trace:
there the flow's fallback answers a refused hop by sending it once more with its own
proof (:mod:`authplug._adapters.httpx_flow`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..token import Token, authorization

if TYPE_CHECKING:
    import httpx

    from .._dpop import DPoP

__all__ = ["follow_hops", "traced"]

# httpcore's events just before the headers of a request are written (HTTP/1.1, HTTP/2).
_HEADERS_SENT = frozenset(
    {"http11.send_request_headers.started", "http2.send_request_headers.started"}
)


class _Hops:
    """The proof rule of one request's hops; the trace hook httpcore calls (sync)."""

    __slots__ = ("_authorization", "_dpop", "_presented", "_token", "traced", "user")

    def __init__(self, dpop: DPoP, user: Callable[[str, dict[str, Any]], Any] | None) -> None:
        self._dpop = dpop
        self.user = user
        self._token: Token | None = None
        self._authorization = b""
        self._presented = False
        #: httpcore called the hook for a hop: the hops' proofs are their own.
        self.traced = False

    def presented(self, token: Token) -> None:
        """The flow put ``token`` and a proof on the request it is about to send."""
        self._token = token
        self._authorization = authorization(token).encode("latin-1")
        self._presented = True

    def rewrite(self, name: str, info: dict[str, Any]) -> None:
        if name not in _HEADERS_SENT:
            return
        self.traced = True
        if self._presented:  # the flow's own send: its proof is this hop's
            self._presented = False
            return
        request: Any = info.get("request")
        headers = getattr(request, "headers", None)
        token = self._token
        if not isinstance(headers, list) or token is None:
            return
        kept = [(key, value) for key, value in headers if key.lower() != b"dpop"]
        if any(
            key.lower() == b"authorization" and value == self._authorization for key, value in kept
        ):
            method = request.method.decode("ascii")
            proof = self._dpop.proof(method, _url(request.url), token.access_token)
            kept.append((b"DPoP", proof.encode("ascii")))
        headers[:] = kept  # the list httpcore is about to write

    def __call__(self, name: str, info: dict[str, Any]) -> None:
        self.rewrite(name, info)
        if self.user is not None:
            self.user(name, info)


class _AsyncHops(_Hops):
    """The same, for async transports (httpcore awaits an async trace)."""

    __slots__ = ()

    async def __call__(self, name: str, info: dict[str, Any]) -> None:  # type: ignore[override]
        self.rewrite(name, info)
        if self.user is not None:
            result: Awaitable[None] = self.user(name, info)
            await result


def _url(url: Any) -> str:
    """An httpcore URL (bytes parts) as a string, for ``htu``."""
    host = url.host.decode("ascii")
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme.decode('ascii')}://{host}{port}{url.target.decode('ascii')}"


def follow_hops(request: httpx.Request, dpop: DPoP, *, is_async: bool) -> _Hops:
    """The hook that gives ``request``'s redirect hops their own proofs, installed as its
    ``trace`` extension (once: a request sent again keeps it)."""
    current = request.extensions.get("trace")
    if isinstance(current, _Hops):
        return current
    hops = (_AsyncHops if is_async else _Hops)(dpop, current)
    request.extensions["trace"] = hops
    return hops


def traced(request: httpx.Request) -> bool:
    """Whether httpcore's trace gave ``request``'s hops their own proofs (False through
    a transport that never calls it)."""
    hops = request.extensions.get("trace")
    return isinstance(hops, _Hops) and hops.traced
