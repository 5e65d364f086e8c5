"""requests (and niquests' Session): the Bearer header, a response hook, rewind, replay once.

Modelled on ``requests.auth.HTTPDigestAuth.handle_401``: remember where the body
started, and on a refusal seek back, consume and close the refused response, copy the
request, carry its cookies, send the copy on the same connection adapter and put the
refused response in the history. The copy is sent with the adapter directly, so the
hook does not run for it: one replay at most.

niquests' Session has the same objects and the same hook; only its cookie helpers live in
its own package, found from the request's type.

A redirect hop is a copy of the request before it, made after the hooks ran, with no
call to the auth: so with DPoP the hook of a redirect gives the request to be copied the
next hop's own proof (:func:`._prepared.before_redirect`). niquests runs its
``pre_request`` hooks for every hop: there, each hop gets its proof as it leaves
(:func:`._prepared.refresh_hop`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from .._challenge import log_not_replayed
from .._redact import safe_url
from .sessions import (
    attach,
    before_redirect,
    nonce_replay,
    position_of,
    refresh_hop,
    renewable,
    replay_of,
    replayable,
)

if TYPE_CHECKING:
    import requests

    from .._net import PlainHttpWarner
    from .._renew.manager import TokenManager
    from ..token import Token

__all__ = ["apply"]


def apply(
    manager: TokenManager,
    codes: Collection[int],
    warner: PlainHttpWarner,
    request: requests.PreparedRequest,
) -> requests.PreparedRequest:
    token = manager.get()
    dpop = manager.dpop
    attach(warner, request, token, dpop)
    position = position_of(request.body)
    per_hop = dpop is not None and "pre_request" in request.hooks  # niquests

    def handle(response: requests.Response, **kwargs: Any) -> requests.Response:
        sent = response.request  # the object a redirect is copied from
        answer = _handle(manager, codes, token, position, response, **kwargs)
        if dpop is not None and not per_hop:
            before_redirect(dpop, answer, sent)
        return answer

    def before_hop(prepared: Any, **kwargs: Any) -> Any:
        if prepared is not request:
            refresh_hop(dpop, prepared)
        return prepared

    request.register_hook("response", handle)  # type: ignore[no-untyped-call]
    if per_hop:
        request.register_hook("pre_request", before_hop)  # type: ignore[no-untyped-call]
    return request


def _handle(
    manager: TokenManager,
    codes: Collection[int],
    sent: Token,
    position: int | None,
    response: requests.Response,
    **kwargs: Any,
) -> requests.Response:
    again = nonce_replay(manager.dpop, response, sent, position)
    if again is not None:
        _release(response)
        response = _resend(response, again, **kwargs)
    if not renewable(codes, sent, response):
        return response
    body: Any = response.request.body
    try:
        fresh = manager.renew_rejected(sent)
    except BaseException:
        _release(response)
        raise
    if fresh is None:  # refusals go unanswered for now (a renewed token was refused too)
        return response
    where = safe_url(response.request.url or "")
    if not replayable(body, position):
        log_not_replayed(where, response.status_code)
        return response
    if position is not None:
        body.seek(position)
    _release(response)
    replay = replay_of(response, fresh, manager.dpop)
    manager.replaying(where, response.status_code)
    second = _resend(response, replay, **kwargs)
    if second.status_code in codes:
        manager.replay_refused(fresh)
    return second


def _resend(
    response: requests.Response, replay: requests.PreparedRequest, **kwargs: Any
) -> requests.Response:
    """Send ``replay`` on the refused response's adapter; the refusal goes to history."""
    second: requests.Response = response.connection.send(replay, **kwargs)
    second.history.append(response)
    second.request = replay
    return second


def _release(response: requests.Response) -> None:
    """Consume and close a refused response so its connection goes back to the pool."""
    response.content  # noqa: B018 - reading is the point
    response.close()
