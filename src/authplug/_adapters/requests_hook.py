"""requests (and niquests' Session): a driver of the per-request rule (:mod:`.exchange`).

The token goes on the request before it leaves; each answer goes through a response
hook, which runs the rule from there and performs its effects.

Modelled on ``requests.auth.HTTPDigestAuth.handle_401``: remember where the body
started, and on a refusal seek back, consume and close the refused response, copy the
request, carry its cookies, send the copy on the same connection adapter and put the
refused response in the history. The copy is sent with the adapter directly, so the
hook does not run for it: one replay at most.

niquests' Session has the same objects and the same hook; only its cookie helpers live in
its own package, found from the request's type.

A redirect hop is a copy of the request before it, made after the hooks ran, with no
call to the auth: so with DPoP the hook of a redirect gives the request to be copied the
next hop's own proof (:func:`.sessions.before_redirect`). niquests runs its
``pre_request`` hooks for every hop: there, each hop gets its proof as it leaves
(:func:`.sessions.refresh_hop`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exchange import Effect, Renew, carry_out, exchange, settled
from .sessions import (
    answer_of,
    attach,
    before_redirect,
    position_of,
    refresh_hop,
    replay_of,
    seek_back,
)

if TYPE_CHECKING:
    import requests

    from ..token import Token
    from .binding import Binding

__all__ = ["apply"]


def apply(binding: Binding, request: requests.PreparedRequest) -> requests.PreparedRequest:
    token = binding.manager.get()
    dpop = binding.manager.dpop
    attach(binding.warner, request, token, dpop)
    position = position_of(request.body)
    per_hop = dpop is not None and "pre_request" in request.hooks  # niquests

    def handle(response: requests.Response, **kwargs: Any) -> requests.Response:
        sent = response.request  # the object a redirect is copied from
        last = _handle(binding, token, position, response, **kwargs)
        if dpop is not None and not per_hop:
            before_redirect(dpop, last, sent)
        return last

    def before_hop(prepared: Any, **kwargs: Any) -> Any:
        if prepared is not request:
            refresh_hop(dpop, prepared)
        return prepared

    request.register_hook("response", handle)  # type: ignore[no-untyped-call]
    if per_hop:
        request.register_hook("pre_request", before_hop)  # type: ignore[no-untyped-call]
    return request


def _handle(
    binding: Binding,
    sent: Token,
    position: int | None,
    response: requests.Response,
    **kwargs: Any,
) -> requests.Response:
    """The per-request rule from ``response`` (each hop's answer) on; the last answer."""
    manager = binding.manager
    if settled(manager, binding.codes, response.status_code):
        return response

    def act(effect: Effect) -> Any:
        nonlocal response
        if isinstance(effect, Renew):
            return manager.renew_rejected(effect.rejected)
        seek_back(response.request.body, position)
        _release(response)
        replay = replay_of(response, effect.token, manager.dpop)
        response = _resend(response, replay, **kwargs)
        return answer_of(response, position)

    try:
        carry_out(exchange(manager, binding.codes, sent, answer_of(response, position)), act)
    except BaseException:
        _release(response)  # a renewal that failed: the refusal's connection goes back
        raise
    return response


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
