"""One request's exchange with an API, written once as a plan every client drives.

The rule: each driver presents the token and sends the request; an answer that is no
refusal and carries no DPoP news ends the exchange at once (:func:`settled`). From any
other first answer on, the plan (:func:`exchange`) decides: an answer that asks for a
DPoP nonce (or, with httpx, a redirect hop refused for the first hop's proof) is sent
once more with the same token and a new proof; a refusal of *our* token (a status of
``refresh_status_codes``, on a request that carried it: :func:`refused`) that is not
about the scope or the nonce renews the token (no token while refusals go unanswered);
a request whose body can be sent again is then sent once more with the new token, and a
refusal of that one too tells the manager to leave refusals unanswered for a while. A
body that cannot be sent twice gets the refusal handed back, with the token renewed for
the caller's own retry.

As in httpx's ``Auth.auth_flow`` (and authplug's own token calls, ``_call/plan.py``),
the plan does no I/O: it yields effects, :class:`Renew` and :class:`SendAgain`, and is
sent their results: a :class:`~authplug.token.Token` (or None while refusals go
unanswered), and a neutral :class:`Answer`. Each client's driver (``requests_hook``,
``niquests_hook``, ``httpx_flow``, ``aiohttp_middleware``) translates its own request
and response objects and performs the effects: with :func:`carry_out` and
:func:`acarry_out`, or, where the driver is itself a generator (httpx), step by step
with :func:`next_effect`. The rules get pure tests (``tests/unit/test_exchange.py``).

The plan starts at the first answer, not before the first send: requests runs an auth
before sending and its response hooks after, once per redirect hop, so no plan could
span the send there; and the first send of every request, with nothing to decide, stays
as cheap as a header set by hand.

Also here: what the drivers say about a refusal (one INFO line when renewing would not
help, one WARNING when a renewed request could not be sent again).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from .._challenge import Challenge
from .._redact import safe_url
from ..token import Token, authorization

if TYPE_CHECKING:
    from .._dpop import DPoP

__all__ = [
    "Answer",
    "Effect",
    "Renew",
    "SendAgain",
    "acarry_out",
    "carry_out",
    "exchange",
    "next_effect",
    "refused",
    "settled",
]

log = logging.getLogger("authplug")

E = TypeVar("E")


# The effects and the answer are named tuples: a few are made per refused request, and
# a frozen dataclass costs several times as much to build.


class Renew(NamedTuple):
    """The API refused ``rejected``: the renewed token comes back, or None while
    refusals go unanswered (:meth:`TokenManager.renew_rejected`)."""

    rejected: Token


class SendAgain(NamedTuple):
    """Release the answer, rewind the request's body (the plan asks only when it can be
    sent again), present ``token`` with a fresh DPoP proof and send the request once
    more; its :class:`Answer` comes back."""

    token: Token


Effect = Renew | SendAgain


class Answer(NamedTuple):
    """What the plan needs of one answer, from any client's response.

    Headers are read by the plan when it needs them, not before: most answers end the
    exchange on their status alone.

    Attributes:
        status: the HTTP status.
        replayable: the request's body can be sent again.
        url: the answered request's URL (any object whose ``str`` is the URL: made a
            string only when needed).
        sent: the headers the answered request carried (its ``Authorization``: a
            redirect to another origin drops it).
        header: the values of one of the answer's headers, by name in any case.
        copied_proof: the answered request is a redirect hop that went with the first
            hop's headers as they were (httpx through a transport that does not call
            httpcore's trace): a DPoP proof made for another URL.
    """

    status: int
    replayable: bool
    url: object
    sent: Mapping[str, str]
    header: Callable[[str], Sequence[str]]
    copied_proof: bool = False


class Replays(Protocol):
    """What the plan tells the token manager (:class:`TokenManager` is one)."""

    @property
    def dpop(self) -> DPoP | None: ...

    def replaying(self, where: str, status: int) -> None: ...

    def replay_refused(self, token: Token) -> None: ...


def refused(codes: Collection[int], sent: Token, answer: Answer) -> bool:
    """The API refused the token ``sent``: a status of ``codes`` on a request that
    carried it (after a redirect to another origin, the client dropped the header and the
    refusal is not ours to answer). The one "was it our token" test of every client."""
    return answer.status in codes and answer.sent.get("Authorization") == authorization(sent)


def settled(manager: Replays, codes: Collection[int], status: int) -> bool:
    """Most answers end the exchange on their status alone: no DPoP nonce to keep, no
    refusal to weigh. A driver asks before it reads anything more of the answer."""
    return manager.dpop is None and status not in codes


def exchange(
    manager: Replays, codes: Collection[int], token: Token, answer: Answer
) -> Generator[Effect, Any, None]:
    """The rule for one request sent with ``token``, from its first ``answer`` on."""
    if settled(manager, codes, answer.status):
        return
    dpop = manager.dpop
    challenge = Challenge.parse(answer.header("WWW-Authenticate"))
    if dpop is not None and _new_proof_helps(dpop, codes, token, answer, challenge):
        answer = yield SendAgain(token)
        challenge = Challenge.parse(answer.header("WWW-Authenticate"))
    if not refused(codes, token, answer) or _renewal_useless(challenge, answer):
        return
    fresh: Token | None = yield Renew(token)
    if fresh is None:  # refusals go unanswered for now (a renewed token was refused too)
        return
    where = safe_url(str(answer.url))
    if not answer.replayable:
        log.warning(
            "%s: the API answered %d; the token was renewed but the request was not "
            "sent again because its body is a one-shot stream; retry it",
            where,
            answer.status,
        )
        return
    manager.replaying(where, answer.status)
    answer = yield SendAgain(fresh)
    if refused(codes, fresh, answer):
        manager.replay_refused(fresh)


def _new_proof_helps(
    dpop: DPoP, codes: Collection[int], token: Token, answer: Answer, challenge: Challenge
) -> bool:
    """Send once more with the same token and a new proof: the API asked for a DPoP
    nonce (its nonce is kept either way), or refused a redirect hop that went with the
    first hop's proof. Only a body that can be sent again."""
    nonce = ", ".join(answer.header("DPoP-Nonce")) or None  # as the clients join repeats
    asked = dpop.retry_for_nonce(str(answer.url), answer.status, challenge, nonce)
    copied = answer.copied_proof and token.dpop_jkt is not None and refused(codes, token, answer)
    return (asked or copied) and answer.replayable


def _renewal_useless(challenge: Challenge, answer: Answer) -> bool:
    """True, with one INFO line, when a refusal is not about the token: it asks for more
    scope, or (after the one nonce retry) for a DPoP nonce again. Do not renew."""
    if challenge.insufficient_scope:
        scope = challenge.scope or ""
        log.info(
            "%s: the API refused the request for lack of scope (it asks for %s); a new "
            "token would not help, so none is fetched",
            safe_url(str(answer.url)),
            repr(scope[:200]) if scope else "no particular scope",
        )
        return True
    if challenge.asks_for_nonce:
        log.info(
            "%s: the API asks for a DPoP nonce again after the retry with its nonce; the "
            "refusal is handed back",
            safe_url(str(answer.url)),
        )
        return True
    return False


def next_effect(plan: Generator[E, Any, None], result: object) -> E | None:
    """The effect ``plan`` asks for once sent ``result`` (None to start it), or None
    when it has ended."""
    try:
        return plan.send(result)
    except StopIteration:
        return None


def carry_out(plan: Generator[E, Any, None], act: Callable[[E], Any]) -> None:
    """Run ``plan`` to its end, ``act(effect)`` performing each effect (blocking)."""
    try:
        effect = next_effect(plan, None)
        while effect is not None:
            effect = next_effect(plan, act(effect))
    finally:
        plan.close()


async def acarry_out(plan: Generator[E, Any, None], act: Callable[[E], Awaitable[Any]]) -> None:
    """:func:`carry_out` with ``act`` awaited."""
    try:
        effect = next_effect(plan, None)
        while effect is not None:
            effect = next_effect(plan, await act(effect))
    finally:
        plan.close()
