"""The per-request rule driven by hand: Answers in, effects out, no client and no server.

As httpx's ``tests/test_auth.py`` drives ``DigestAuth.auth_flow``: each test sends the
plan the results its effects would get (a token, an :class:`Answer`) and checks what it
asks for next.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Collection, Generator, Sequence
from typing import Any

import pytest

from authplug import Token
from authplug._adapters.exchange import (
    Answer,
    Renew,
    SendAgain,
    acarry_out,
    carry_out,
    exchange,
    refused,
    settled,
)
from authplug._dpop import DPoP
from authplug.token import authorization

OLD = Token("old-token")
NEW = Token("new-token")
URL = "https://api.example:8443/v1/things?secret=1"
CODES = (401,)
NONCE_CHALLENGE = ['DPoP error="use_dpop_nonce", error_description="nonce"']


class Manager:
    """Stands for the token manager: records what the plan tells it."""

    def __init__(self, dpop: DPoP | None = None) -> None:
        self.dpop = dpop
        self.replays: list[tuple[str, int]] = []
        self.refused: list[Token] = []

    def replaying(self, where: str, status: int) -> None:
        self.replays.append((where, status))

    def replay_refused(self, token: Token) -> None:
        self.refused.append(token)


def answer(
    status: int,
    sent: Token | None = OLD,
    *,
    challenges: Sequence[str] = (),
    replayable: bool = True,
    nonce: str | None = None,
    copied_proof: bool = False,
) -> Answer:
    """The answer to a request that carried ``sent`` (None: no Authorization header)."""
    headers = {"www-authenticate": list(challenges), "dpop-nonce": [nonce] if nonce else []}
    return Answer(
        status=status,
        replayable=replayable,
        url=URL,
        sent={"Authorization": authorization(sent)} if sent is not None else {},
        header=lambda name: headers.get(name.lower(), []),
        copied_proof=copied_proof,
    )


def started(
    manager: Manager, first: Answer, codes: Collection[int] = CODES, sent: Token = OLD
) -> Generator[Any, Any, None]:
    """The plan for a request sent with ``sent`` (``OLD``), from its ``first`` answer."""
    return exchange(manager, codes, sent, first)


def finished(plan: Generator[Any, Any, None], result: object = None) -> bool:
    """Whether the plan ends when sent ``result`` (None: when started)."""
    try:
        plan.send(result)
    except StopIteration:
        return True
    return False


def test_an_accepted_request_ends_the_exchange() -> None:
    """An answer that is no refusal ends the exchange, and drivers may tell it by status."""
    manager = Manager()
    assert settled(manager, CODES, 200)
    assert finished(started(manager, answer(200)))
    assert manager.replays == []


def test_with_dpop_every_answer_is_looked_at() -> None:
    """With DPoP, an accepted answer may carry a nonce to keep: not settled by status."""
    assert not settled(Manager(DPoP.generated()), CODES, 200)
    assert not settled(Manager(), CODES, 401)


def test_our_refused_token_is_renewed_and_the_request_replayed_once() -> None:
    """A refusal of our token renews it and sends the request once more with the new one."""
    manager = Manager()
    plan = started(manager, answer(401))
    assert next(plan) == Renew(OLD)
    assert plan.send(NEW) == SendAgain(NEW)
    assert finished(plan, answer(200, NEW))
    assert manager.replays == [("https://api.example:8443/v1/things", 401)]
    assert manager.refused == []


def test_a_replay_refused_again_is_not_replayed_twice() -> None:
    """A refusal of the renewed token ends the plan and tells the manager, no second replay."""
    manager = Manager()
    plan = started(manager, answer(401))
    next(plan)
    plan.send(NEW)
    assert finished(plan, answer(401, NEW))
    assert manager.refused == [NEW]


def test_a_refusal_of_a_request_without_our_token_is_not_renewed() -> None:
    """A refused request that no longer carried our token (a redirect elsewhere) is not ours."""
    manager = Manager()
    assert finished(started(manager, answer(401, None)))
    assert finished(started(manager, answer(401, NEW)))  # another token than the one sent


def test_a_status_outside_the_refresh_codes_is_handed_back() -> None:
    """Only the statuses of ``refresh_status_codes`` renew: 403 is the caller's by default,
    and renews when it is one of the codes."""
    manager = Manager()
    assert finished(started(manager, answer(403)))
    assert next(started(manager, answer(403), (401, 403))) == Renew(OLD)


def test_a_one_shot_body_gets_the_refusal_back_with_the_token_renewed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A body that cannot be sent twice: the token is renewed, the refusal handed back."""
    manager = Manager()
    plan = started(manager, answer(401, replayable=False))
    assert next(plan) == Renew(OLD)
    with caplog.at_level(logging.WARNING, logger="authplug"):
        assert finished(plan, NEW)
    assert "one-shot stream" in caplog.text
    assert "secret" not in caplog.text  # the URL's query never reaches a log
    assert manager.replays == []


def test_a_quiet_manager_means_no_replay() -> None:
    """While refusals go unanswered, the renewal gives None and the refusal is handed back."""
    manager = Manager()
    plan = started(manager, answer(401))
    assert next(plan) == Renew(OLD)
    assert finished(plan, None)
    assert manager.replays == []


def test_insufficient_scope_is_not_renewed(caplog: pytest.LogCaptureFixture) -> None:
    """A refusal for lack of scope is about the permission: no renewal, one INFO line."""
    scoped = ['Bearer error="insufficient_scope", scope="reports:write"']
    with caplog.at_level(logging.INFO, logger="authplug"):
        assert finished(started(Manager(), answer(401, challenges=scoped)))
    assert "lack of scope" in caplog.text
    assert "'reports:write'" in caplog.text


def test_invalid_token_is_renewed() -> None:
    """``invalid_token`` says the token may be stale: renew."""
    stale = ['Bearer error="invalid_token"']
    assert next(started(Manager(), answer(401, challenges=stale))) == Renew(OLD)


def test_a_nonce_is_answered_by_one_retry_with_the_same_token() -> None:
    """A 401 asking for a DPoP nonce it gives: the same token once more, with a proof that
    carries the nonce; no renewal."""
    dpop = DPoP.generated()
    bound = Token("bound-token", dpop_jkt=dpop.jkt)
    manager = Manager(dpop)
    refusal = answer(401, bound, challenges=NONCE_CHALLENGE, nonce="n-1")
    plan = started(manager, refusal, sent=bound)
    assert next(plan) == SendAgain(bound)
    assert '"nonce":"n-1"' in _claims(dpop.proof("GET", URL, bound.access_token))
    assert finished(plan, answer(200, bound))
    assert manager.replays == []


def test_a_nonce_asked_again_after_the_retry_is_handed_back() -> None:
    """The retry with the nonce refused for a nonce again: no second retry, no renewal."""
    dpop = DPoP.generated()
    bound = Token("bound-token", dpop_jkt=dpop.jkt)
    refusal = answer(401, bound, challenges=NONCE_CHALLENGE, nonce="a")
    plan = started(Manager(dpop), refusal, sent=bound)
    assert next(plan) == SendAgain(bound)
    assert finished(plan, answer(401, bound, challenges=NONCE_CHALLENGE, nonce="b"))


def test_a_nonce_already_known_is_not_retried() -> None:
    """A nonce the proof already carried was not the problem: no retry for it."""
    dpop = DPoP.generated()
    dpop.observe(URL, "same")
    bound = Token("bound-token", dpop_jkt=dpop.jkt)
    refusal = answer(401, bound, challenges=NONCE_CHALLENGE, nonce="same")
    assert finished(started(Manager(dpop), refusal, sent=bound))


def test_a_nonce_with_a_one_shot_body_is_not_retried() -> None:
    """A body that cannot be sent twice is not sent again for a nonce either."""
    dpop = DPoP.generated()
    bound = Token("bound-token", dpop_jkt=dpop.jkt)
    refusal = answer(401, bound, challenges=NONCE_CHALLENGE, nonce="n", replayable=False)
    assert finished(started(Manager(dpop), refusal, sent=bound))
    assert dpop.observe(URL, "n") is False  # kept all the same, for the caller's retry


def test_a_nonce_on_an_accepted_answer_is_kept() -> None:
    """An API may hand out its next nonce on any answer: it is kept, nothing is resent."""
    dpop = DPoP.generated()
    bound = Token("bound-token", dpop_jkt=dpop.jkt)
    assert finished(started(Manager(dpop), answer(200, bound, nonce="next"), sent=bound))
    assert dpop.observe(URL, "next") is False


def test_a_hop_refused_for_a_copied_proof_is_sent_again_with_its_own() -> None:
    """A redirect hop that went with the first hop's proof and was refused: once more with
    the same token (and its own proof), before any renewal."""
    dpop = DPoP.generated()
    bound = Token("bound-token", dpop_jkt=dpop.jkt)
    plan = started(Manager(dpop), answer(401, bound, copied_proof=True), sent=bound)
    assert next(plan) == SendAgain(bound)
    assert plan.send(answer(401, bound)) == Renew(bound)


def test_a_copied_proof_matters_only_for_a_bound_token() -> None:
    """A Bearer token carries no proof: a refused redirect hop is renewed as usual."""
    plan = started(Manager(DPoP.generated()), answer(401, copied_proof=True))
    assert next(plan) == Renew(OLD)


def test_refused_is_the_one_our_token_test() -> None:
    """Ours: a refresh status on a request that carried exactly this token's header."""
    assert refused(CODES, OLD, answer(401))
    assert not refused(CODES, OLD, answer(200))
    assert not refused(CODES, OLD, answer(401, None))
    assert not refused(CODES, OLD, answer(401, NEW))


def test_carry_out_performs_each_effect_until_the_plan_ends() -> None:
    """The blocking runner sends each effect's result back, and the async one awaits it."""
    manager = Manager()

    def act(effect: object) -> object:
        return NEW if isinstance(effect, Renew) else answer(200, NEW)

    carry_out(started(manager, answer(401)), act)
    assert len(manager.replays) == 1

    async def aact(effect: object) -> object:
        return act(effect)

    asyncio.run(acarry_out(started(manager, answer(401)), aact))
    assert len(manager.replays) == 2


def _claims(proof: str) -> str:
    payload = proof.split(".")[1]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
