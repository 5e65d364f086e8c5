"""``WWW-Authenticate`` challenges read as RFC 7235, RFC 6750 and RFC 9449 write them."""

from __future__ import annotations

import dataclasses

import pytest

from authplug._challenge import NO_CHALLENGE, Challenge


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (['Bearer error="insufficient_scope", scope="reports:read"'], "reports:read"),
        (['Bearer realm="api", error="insufficient_scope"'], ""),
        (["Bearer error=insufficient_scope, scope=admin"], "admin"),
        (['BEARER ERROR="insufficient_scope", SCOPE="a b"'], "a b"),
        (['Basic realm="x", Bearer error="insufficient_scope", scope="s"'], "s"),
        (['Negotiate abc123==, Bearer error="insufficient_scope"'], ""),
        (["Basic realm=x", 'Bearer error="insufficient_scope", scope="q\\"uoted"'], 'q"uoted'),
        (['DPoP algs="ES256", Bearer error="insufficient_scope", scope="s"'], "s"),
        (['DPoP algs="ES256", error="insufficient_scope", scope="d"'], "d"),
        (['Bearer, DPoP error="insufficient_scope"'], ""),  # a bare Bearer says nothing
    ],
)
def test_insufficient_scope_is_read(headers: list[str], expected: str) -> None:
    """A refusal for lack of scope is read, with the scope asked for ("" for none)."""
    challenge = Challenge.parse(headers)
    assert challenge.insufficient_scope
    assert (challenge.scope or "") == expected


@pytest.mark.parametrize(
    "headers",
    [
        [],
        ["Bearer"],
        ['Bearer realm="api"'],
        ['Bearer error="invalid_token", error_description="expired"'],
        ['Basic realm="insufficient_scope"'],
        ['Basic error="insufficient_scope"'],  # not a Bearer challenge
        ['garbage ,,, = "unterminated'],
        ["Bearer " + "x" * 10_000 + '="insufficient_scope"'],
        ['Bearer error="insufficient_scope'],  # unterminated quote
        ['Bearer error="invalid_token", DPoP error="insufficient_scope"'],
    ],
)
def test_anything_else_means_renew(headers: list[str]) -> None:
    """Any other challenge, or none, leaves the token possibly stale: renew."""
    assert not Challenge.parse(headers).insufficient_scope


def test_the_first_bearer_challenge_counts() -> None:
    """Of two Bearer challenges, the first one's parameters say what the refusal is about."""
    challenge = Challenge.parse(['Bearer realm="a", error="invalid_token"', 'Bearer error="x"'])
    assert challenge.error == "invalid_token"
    assert challenge.schemes == ("bearer", "bearer")


@pytest.mark.parametrize(
    ("headers", "asks"),
    [
        (['DPoP error="use_dpop_nonce", error_description="Resource server requires nonce"'], True),
        (['Bearer realm="api", DPoP algs="ES256", error="use_dpop_nonce"'], True),
        (['Bearer error="invalid_token"', 'DPoP error="use_dpop_nonce"'], True),
        (['Bearer error="use_dpop_nonce"'], False),  # only a DPoP challenge asks for it
        (['DPoP error="invalid_token"'], False),
        (['DPoP algs="ES256"', 'DPoP error="use_dpop_nonce"'], False),  # the first DPoP counts
        ([], False),
    ],
)
def test_a_nonce_is_asked_for_by_a_dpop_challenge(headers: list[str], asks: bool) -> None:
    """``use_dpop_nonce`` in the first DPoP challenge asks for a nonce (RFC 9449 §9)."""
    assert Challenge.parse(headers).asks_for_nonce is asks


def test_an_answer_without_a_challenge_is_read_as_the_shared_empty_one() -> None:
    """No header, or none that can be read, costs no object: the one empty challenge."""
    assert Challenge.parse([]) is NO_CHALLENGE
    assert Challenge.parse(["x" * 9000]) is NO_CHALLENGE
    assert Challenge() == NO_CHALLENGE
    assert NO_CHALLENGE.error is None
    assert not NO_CHALLENGE.asks_for_nonce


def test_schemes_are_listed_in_order_in_lower_case() -> None:
    """Every scheme offered, across header values, lower case, in the order given."""
    challenge = Challenge.parse(['Basic realm="x", NEGOTIATE', 'DPoP algs="ES256"'])
    assert challenge.schemes == ("basic", "negotiate", "dpop")


def test_a_challenge_is_a_frozen_value() -> None:
    """Read once, then handed on: nobody can change it on the way."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        Challenge.parse(['Bearer error="x"']).error = "y"  # type: ignore[misc]
