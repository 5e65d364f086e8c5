"""``WWW-Authenticate`` challenges read as RFC 7235 and RFC 6750 write them."""

from __future__ import annotations

import pytest

from authplug._challenge import bearer_params, insufficient_scope


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
    ],
)
def test_insufficient_scope_is_read(headers: list[str], expected: str) -> None:
    assert insufficient_scope(headers) == expected


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
    ],
)
def test_anything_else_means_renew(headers: list[str]) -> None:
    assert insufficient_scope(headers) is None


def test_the_first_bearer_challenge_counts() -> None:
    params = bearer_params(['Bearer realm="a", error="invalid_token"', 'Bearer error="x"'])
    assert params == {"realm": "a", "error": "invalid_token"}
