"""The test kit's client assertion check (``authplug.testing._assertion``), without a server."""

from __future__ import annotations

import time
from typing import Any

import pytest

from authplug.testing._assertion import AssertionVerifier

jwk = pytest.importorskip("joserfc.jwk")
jwt = pytest.importorskip("joserfc.jwt")

SECRET = "s" * 32
AUD = "https://as.example/token"


def _assertion(secret: str = SECRET, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": "c", "sub": "c", "aud": AUD, "jti": "j1", "exp": now + 60, **claims}
    return jwt.encode({"alg": "HS256"}, body, jwk.OctKey.import_key(secret))


def _check(verifier: AssertionVerifier, assertion: str, client_id: str | None = "c") -> bool:
    return verifier.check(
        assertion, client_id=client_id, client_secret=SECRET, client_key=None, audiences={AUD}
    )


def test_a_valid_assertion_passes_once() -> None:
    """A validly signed assertion with the right claims passes, and its jti never again."""
    verifier = AssertionVerifier()
    assert _check(verifier, _assertion())
    assert not _check(verifier, _assertion())


def test_a_refused_but_validly_signed_assertion_spends_its_jti() -> None:
    """A validly signed assertion refused for its claims still spends its jti."""
    verifier = AssertionVerifier()
    assert not _check(verifier, _assertion(aud="https://elsewhere.example/token"))
    assert not _check(verifier, _assertion())


def test_a_badly_signed_assertion_spends_nothing() -> None:
    """An assertion signed with another key is refused and leaves its jti unspent."""
    verifier = AssertionVerifier()
    assert not _check(verifier, _assertion(secret="x" * 32))
    assert _check(verifier, _assertion())


@pytest.mark.parametrize(
    "claims",
    [{"sub": "other"}, {"exp": 0}, {"exp": int(time.time()) + 3600}, {"jti": 7}],
)
def test_wrong_claims_are_refused(claims: dict[str, Any]) -> None:
    """Another subject, an expired or too distant exp, or a non-string jti is refused."""
    assert not _check(AssertionVerifier(), _assertion(**claims))


def test_no_client_id_refuses_every_assertion() -> None:
    """A server that knows no client id accepts no assertion."""
    assert not _check(AssertionVerifier(), _assertion(), client_id=None)


def test_not_a_jwt_is_refused() -> None:
    """A string that is no JWT is refused, not an error."""
    assert not _check(AssertionVerifier(), "not-a-jwt")
