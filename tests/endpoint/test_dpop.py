"""DPoP (RFC 9449) at the token endpoint and in the cache: bound tokens, nonces the
token endpoint asks for, keys given or made, proven on node oidc-provider 9 (DPoP on,
nonces required in one server) and on the emulators' strict DPoP mode. What each client
sends to the API is in tests/clients/test_dpop.py."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from authplug import ConfigurationError, FileTokenCache, Token
from authplug.testing import OAuth2Emulator

from ..conftest import Driver, dpop_client_credentials, password_auth

pytest.importorskip("joserfc")


@pytest.fixture(scope="module")
def oidc_nonces() -> Iterator[Any]:
    from ..servers.oidc_provider import OidcProviderServer

    with OidcProviderServer(extra_config={"dpop": {"require_nonce": True}}) as server:
        yield server


def test_a_replayed_proof_is_refused(oidc: Any) -> None:
    auth = dpop_client_credentials(oidc, dpop=True)
    with requests.Session() as session:
        session.auth = auth
        sent = session.get(oidc.api_url, timeout=10)
        assert sent.status_code == 200
        headers = {name: sent.request.headers[name] for name in ("Authorization", "DPoP")}
    assert headers["Authorization"].startswith("DPoP ")
    replayed = httpx.get(oidc.api_url, headers=headers)
    assert replayed.status_code == 401
    assert 'error="invalid_dpop_proof"' in replayed.headers["www-authenticate"]
    assert "jti replayed" in replayed.headers["www-authenticate"]
    # And the token is no Bearer token.
    as_bearer = httpx.get(
        oidc.api_url, headers={"Authorization": "Bearer " + auth.token.access_token}
    )  # type: ignore[union-attr]
    assert as_bearer.status_code == 401


def test_the_token_endpoint_asks_for_a_nonce(oidc_nonces: Any, driver: Driver) -> None:
    """One refusal with use_dpop_nonce, one retry with the nonce: two calls, one token."""
    oidc_nonces.reset_counts()
    auth = dpop_client_credentials(oidc_nonces, dpop=True)
    assert driver.send(auth, "GET", oidc_nonces.api_url).status == 200
    assert oidc_nonces.token_calls() == {"client_credentials": 2}
    # The nonce is kept: the next token call needs no retry while it is valid.
    oidc_nonces.reset_counts()
    oidc_nonces.revoke(
        auth.token.access_token, oidc_nonces.client("client_credentials", "client_secret_post")
    )  # type: ignore[union-attr]
    assert driver.send(auth, "GET", oidc_nonces.api_url).status == 200
    assert oidc_nonces.token_calls() == {"client_credentials": 1}


def test_a_given_key(oidc: Any, tmp_path: Path) -> None:
    """``dpop_key=`` (an Ed25519 JWK file); two objects with the key share a cache."""
    jwk = pytest.importorskip("joserfc.jwk")
    key = jwk.OKPKey.generate_key("Ed25519")
    path = tmp_path / "dpop.jwk"
    import json

    path.write_text(json.dumps(key.as_dict(private=True)))
    cache = FileTokenCache(tmp_path / "tokens.json")
    one = dpop_client_credentials(oidc, dpop_key=path, cache=cache)
    two = dpop_client_credentials(oidc, dpop_key=key.as_dict(private=True), cache=cache)
    assert one.options.dpop is not None
    assert two.options.dpop is not None
    assert one.options.dpop.jkt == two.options.dpop.jkt == key.thumbprint()
    oidc.reset_counts()
    with httpx.Client() as http:
        assert http.get(oidc.api_url, auth=one).status_code == 200
        assert http.get(oidc.api_url, auth=two).status_code == 200
    assert oidc.token_calls() == {"client_credentials": 1}


# -- the emulators' DPoP mode ---------------------------------------------------------------


@pytest.fixture
def dpop_emulator() -> Iterator[OAuth2Emulator]:
    with OAuth2Emulator() as emulator:
        emulator.dpop = True
        yield emulator


def test_a_server_without_dpop_gets_bearer_requests(
    emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture
) -> None:
    """dpop=True is safe everywhere: a Bearer answer means Bearer requests (and INFO)."""
    auth = password_auth(emulator, dpop=True)
    with httpx.Client(auth=auth) as http:
        assert http.get(emulator.api_url()).status_code == 200
        assert http.get(emulator.api_url()).status_code == 200
    assert "dpop" in emulator.token_requests[0].headers
    hit = emulator.api_log[-1]
    assert hit.authorization is not None
    assert hit.authorization.startswith("Bearer ")
    assert auth.token is not None
    assert auth.token.dpop_jkt is None
    assert authlog.text.count("sent as a Bearer token") == 1
    assert any(r.levelno == logging.INFO for r in authlog.records if "Bearer token" in r.message)


def test_keys_never_mix_in_a_shared_cache(dpop_emulator: OAuth2Emulator, tmp_path: Path) -> None:
    """Fresh keys: each object its own cache entry, so a token bound to one key is never
    sent with another's proof (the emulator would refuse it)."""
    cache_path = tmp_path / "tokens.json"
    one = password_auth(dpop_emulator, dpop=True, cache=FileTokenCache(cache_path))
    two = password_auth(dpop_emulator, dpop=True, cache=FileTokenCache(cache_path))
    with httpx.Client() as http:
        assert http.get(dpop_emulator.api_url(), auth=one).status_code == 200
        assert http.get(dpop_emulator.api_url(), auth=two).status_code == 200
    assert dpop_emulator.token_calls == {"password": 2}
    assert one.token is not None
    assert two.token is not None
    assert one.token.dpop_jkt != two.token.dpop_jkt


def test_a_token_bound_to_another_key_is_refused_at_construction(
    dpop_emulator: OAuth2Emulator,
) -> None:
    bound = Token(access_token="x" * 20, token_type="DPoP", dpop_jkt="another-key-thumbprint")
    with pytest.raises(ConfigurationError, match="bound to a DPoP key"):
        password_auth(dpop_emulator, dpop=True, token=bound)
    with pytest.raises(ConfigurationError, match="bound to a DPoP key"):
        password_auth(dpop_emulator, token=bound)


def test_the_emulator_checks_proofs_strictly(dpop_emulator: OAuth2Emulator) -> None:
    """A proof for another URL, another method, a reused one, one without ``ath``: 401."""
    auth = password_auth(dpop_emulator, dpop=True)
    dpop = auth.options.dpop
    assert dpop is not None
    token = auth.get_token()
    url = dpop_emulator.api_url()

    def status(proof: str, method: str = "GET") -> int:
        headers = {"Authorization": f"DPoP {token.access_token}", "DPoP": proof}
        return httpx.request(method, url, headers=headers).status_code

    good = dpop.proof("GET", url, token.access_token)
    assert status(good) == 200
    assert status(good) == 401  # replayed
    assert status(dpop.proof("GET", url + "x", token.access_token)) == 401  # htu
    assert status(dpop.proof("POST", url, token.access_token)) == 401  # htm
    assert status(dpop.proof("GET", url)) == 401  # no ath
    assert status(dpop.proof("GET", url, token.access_token), "POST") == 401
    other = password_auth(dpop_emulator, dpop=True).options.dpop
    assert other is not None
    assert status(other.proof("GET", url, token.access_token)) == 401  # another key
    bearer = httpx.get(url, headers={"Authorization": f"Bearer {token.access_token}"})
    assert bearer.status_code == 401


def test_the_key_never_shows(
    dpop_emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture
) -> None:
    jwk = pytest.importorskip("joserfc.jwk")
    key = jwk.ECKey.generate_key("P-256")
    private = key.as_dict(private=True)
    auth = password_auth(dpop_emulator, dpop_key=private)
    with httpx.Client(auth=auth) as http:
        assert http.get(dpop_emulator.api_url()).status_code == 200
    dpop = auth.options.dpop
    assert dpop is not None
    assert repr(dpop) == f"DPoP(alg='ES256', jkt={key.thumbprint()!r})"
    for text in (repr(auth), repr(auth.options), repr(auth.token), authlog.text):
        assert private["d"] not in text
    with pytest.raises(TypeError):
        pickle.dumps(dpop)


@pytest.mark.redis
def test_one_key_shares_tokens_through_redis(
    dpop_emulator: OAuth2Emulator, redis_server: Any
) -> None:
    """The same ``dpop_key=`` in two objects (two processes, say) on one Redis: one
    token call, the entry carries the key's thumbprint and never the key."""
    from ..system.test_caches import redis_cache

    jwk = pytest.importorskip("joserfc.jwk")
    key = jwk.ECKey.generate_key("P-256").as_dict(private=True)
    auths = [
        password_auth(dpop_emulator, dpop_key=key, cache=redis_cache(redis_server)) for _ in "ab"
    ]
    with httpx.Client() as http:
        for auth in auths:
            assert http.get(dpop_emulator.api_url(), auth=auth).status_code == 200
    assert dpop_emulator.token_calls == {"password": 1}
    cache = auths[0].options.cache
    stored = cache._client.get(cache._name(auths[0]._manager._key))  # type: ignore[attr-defined]
    assert auths[0].options.dpop is not None
    assert auths[0].options.dpop.jkt.encode() in stored
    assert key["d"].encode() not in stored


def test_a_bad_dpop_key_is_named_as_such(emulator: OAuth2Emulator, tmp_path: Path) -> None:
    jwk = pytest.importorskip("joserfc.jwk")
    with pytest.raises(ConfigurationError, match=r"^dpop_key='.*' cannot be read"):
        password_auth(emulator, dpop_key=tmp_path / "missing.pem")
    public = jwk.ECKey.generate_key("P-256").as_dict(private=False)
    with pytest.raises(ConfigurationError, match=r"^dpop_key= is a public key"):
        password_auth(emulator, dpop_key=public)
    p384 = jwk.ECKey.generate_key("P-384").as_dict(private=True)
    with pytest.raises(ConfigurationError, match="ES256 needs a P-256 key"):
        password_auth(emulator, dpop_key=p384)
