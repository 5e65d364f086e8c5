"""DPoP (RFC 9449) at the API on every client: each request and each replay carries a proof
of its own, proven on node oidc-provider 9 whose API verifies proofs itself, and nonces the
API asks for are answered on the emulators' strict DPoP mode. DPoP at the token endpoint
is in tests/endpoint/test_dpop.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from authplug.testing import OAuth2Emulator
from authplug.testing._dpop import DPoPCheck

from ..conftest import Driver, dpop_client_credentials, password_auth

pytest.importorskip("joserfc")


def _dpop_stats(server: Any) -> dict[str, int]:
    return dict(httpx.get(server.test_url + "/dpop").json())


def test_bound_tokens_on_every_client(oidc: Any, driver: Driver) -> None:
    """The token is bound to the key (cnf.jkt at introspection is its thumbprint), the
    API verifies a proof on each request, and a replay after a refusal has a new one."""
    auth = dpop_client_credentials(oidc, dpop=True)
    assert auth.options.dpop is not None
    jkt = auth.options.dpop.jkt
    before = _dpop_stats(oidc)["accepted"]
    first = driver.send(auth, "GET", oidc.api_url)
    assert first.status == 200
    assert first.data["jkt"] == jkt
    token = auth.token
    assert token is not None
    assert token.token_type == "DPoP"
    assert token.dpop_jkt == jkt
    assert oidc.introspect(token.access_token)["cnf"] == {"jkt": jkt}
    assert driver.send(auth, "GET", oidc.api_url).status == 200

    oidc.revoke(token.access_token, oidc.client("client_credentials", "client_secret_post"))
    again = driver.send(auth, "GET", oidc.api_url)
    assert again.status == 200
    assert again.history == 1  # refused, renewed, replayed with a new proof
    assert _dpop_stats(oidc)["accepted"] - before == 3


@pytest.fixture
def dpop_emulator() -> Iterator[OAuth2Emulator]:
    with OAuth2Emulator() as emulator:
        emulator.dpop = True
        yield emulator


def test_the_api_asks_for_a_nonce_on_every_client(
    dpop_emulator: OAuth2Emulator, driver: Driver
) -> None:
    """A 401 asking for a nonce is answered by one retry with it (a new proof, the same
    token): no token call. A server that keeps asking gets no second retry and no
    renewal: the refusal is handed back."""
    auth = password_auth(dpop_emulator, dpop=True)
    url = dpop_emulator.api_url()
    assert driver.send(auth, "GET", url).status == 200
    calls = dpop_emulator.api_calls
    for nonce in ("rs-nonce-1", "rs-nonce-2"):
        dpop_emulator.dpop_verifier.nonce = nonce
        result = driver.send(auth, "POST", url, content=b"payload")
        assert result.status == 200
        assert result.data["body_length"] == 7
        assert dpop_emulator.api_calls - calls == 2
        calls = dpop_emulator.api_calls
    assert dpop_emulator.token_calls == {"password": 1}

    # A server that asks for a new nonce at every request, whatever the proof holds.
    verifier = dpop_emulator.dpop_verifier
    serial = itertools.count()

    def never_satisfied(*args: Any, **kwargs: Any) -> DPoPCheck:
        verifier.nonce = f"n-{next(serial)}"
        return DPoPCheck(None, "use_dpop_nonce", "a nonce is required")

    verifier.check = never_satisfied  # type: ignore[method-assign]
    result = driver.send(auth, "GET", url)
    assert result.status == 401
    assert dpop_emulator.api_calls - calls == 2  # the request and one retry
    assert dpop_emulator.token_calls == {"password": 1}  # and no renewal
