"""Client authentication without a shared secret on the wire, discovery and revocation,
proven on node oidc-provider 9 (OpenID certified) and on the Mogoplus TLS emulator.

- ``private_key_jwt`` with RSA, EC and Ed25519 keys, ``client_secret_jwt``, and a
  federated assertion (a file rewritten between calls, an async callable): oidc-provider
  verifies each assertion's signature, ``aud``, ``exp`` and refuses a reused ``jti``.
- ``issuer=``: the token and revocation endpoints come from the metadata; an issuer that
  does not match is refused before any credential is sent (the server counts no call).
- ``revoke()``: the revoked token is inactive at introspection, gone from the cache.
- ``tls_client_auth`` (RFC 8705 §2): the Mogoplus emulator in that mode accepts the
  certificate alone and refuses a secret and another client's certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from authplug import (
    CredentialsRejectedError,
    FileTokenCache,
    IssuerMismatchError,
    MogoplusAuth,
    OAuth2ClientCredentialsAuth,
    TokenEndpointError,
)
from authplug.testing import MogoplusEmulator

from ..conftest import Driver, make_driver
from .conftest import ONE_CLIENT

joserfc_jwk = pytest.importorskip("joserfc.jwk")
SecurityWarning = pytest.importorskip("joserfc.errors").SecurityWarning

HMAC_SECRET = "hmac-secret-" + "k" * 40  # client_secret_jwt: at least 32 bytes for HS256
_serial = itertools.count()


def _keys() -> dict[str, Any]:
    jwk = joserfc_jwk
    return {
        "rsa": jwk.RSAKey.generate_key(2048),
        "ec": jwk.ECKey.generate_key("P-256"),
        "ed25519": jwk.OKPKey.generate_key("Ed25519"),
        "federated": jwk.ECKey.generate_key("P-256"),
    }


def _client(client_id: str, method: str, **metadata: Any) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "token_endpoint_auth_method": method,
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
        **metadata,
    }


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return _keys()


@pytest.fixture(scope="module")
def oidc(keys: dict[str, Any]) -> Iterator[Any]:
    from ..servers.oidc_provider import OidcProviderServer

    clients = [
        _client(f"pk-{name}", "private_key_jwt", jwks={"keys": [key.as_dict(private=False)]})
        for name, key in keys.items()
    ]
    clients.append(_client("cs-jwt", "client_secret_jwt", client_secret=HMAC_SECRET))
    with OidcProviderServer(extra_clients=clients) as server:
        yield server


def _pem(key: Any) -> str:
    return str(key.as_pem(private=True).decode("ascii"))


def _federated_assertion(server: Any, key: Any) -> str:
    """What a workload identity platform would hand the client: a signed JWT."""
    import time

    from joserfc import jwt

    now = int(time.time())
    claims = {
        "iss": "pk-federated",
        "sub": "pk-federated",
        "aud": server.token_url,
        "jti": f"federated-{next(_serial)}",
        "iat": now,
        "exp": now + 60,
    }
    return str(jwt.encode({"alg": "ES256"}, claims, key))


# -- private_key_jwt and client_secret_jwt -----------------------------------------------


def test_private_key_jwt_signs_each_grant(oidc: Any, keys: dict[str, Any], driver: Driver) -> None:
    """An RSA key given as PEM text signs each grant; the API accepts the token."""
    oidc.reset_counts()
    auth = OAuth2ClientCredentialsAuth(
        token_url=oidc.token_url, client_id="pk-rsa", private_key=_pem(keys["rsa"])
    )
    assert auth.options.client_auth == "private_key_jwt"
    result = driver.send(auth, "GET", oidc.api_url)
    assert result.status == 200
    assert result.data["client_id"] == "pk-rsa"
    assert oidc.token_calls() == {"client_credentials": 1}


@pytest.mark.parametrize(
    ("name", "given", "alg"),
    [
        ("rsa", "jwk", "PS256"),
        ("ec", "jwk", None),
        ("ec", "pem-file", "ES256"),
        ("ed25519", "jwk", "EdDSA"),
        ("ed25519", "pem", "Ed25519"),
    ],
)
def test_private_key_jwt_keys_and_algorithms(
    oidc: Any, keys: dict[str, Any], tmp_path: Path, name: str, given: str, alg: str | None
) -> None:
    key = keys[name]
    private_key: Any = key.as_dict(private=True)
    if given == "pem":
        private_key = _pem(key)
    elif given == "pem-file":
        path = tmp_path / "client.key"
        path.write_text(_pem(key))
        private_key = path
    auth = OAuth2ClientCredentialsAuth(
        issuer=oidc.issuer, client_id=f"pk-{name}", private_key=private_key, signing_alg=alg
    )
    warns: Any = contextlib.nullcontext()
    if alg == "EdDSA":  # RFC 9864 deprecates the name; joserfc says so, once per call site
        warns = pytest.warns(SecurityWarning, match="EdDSA is deprecated")
    with requests.Session() as session, warns:
        session.auth = auth
        first = session.get(oidc.api_url, timeout=10)
        assert first.status_code == 200
        # A second grant needs a new assertion: oidc-provider refuses a jti it has seen.
        auth.revoke()
        second = session.get(oidc.api_url, timeout=10)
    assert second.status_code == 200
    assert second.json()["client_id"] == f"pk-{name}"


def test_private_key_jwt_with_the_wrong_key_is_refused(oidc: Any, keys: dict[str, Any]) -> None:
    auth = OAuth2ClientCredentialsAuth(
        token_url=oidc.token_url, client_id="pk-ec", private_key=keys["federated"].as_dict(True)
    )
    with pytest.raises(CredentialsRejectedError) as caught:
        auth.get_token()
    assert caught.value.error == "invalid_client"


def test_client_secret_jwt(oidc: Any) -> None:
    auth = OAuth2ClientCredentialsAuth(
        token_url=oidc.token_url,
        client_id="cs-jwt",
        client_secret=HMAC_SECRET,
        client_auth="client_secret_jwt",
    )
    with httpx.Client(auth=auth) as http:
        assert http.get(oidc.api_url).json()["client_id"] == "cs-jwt"
    wrong = OAuth2ClientCredentialsAuth(
        token_url=oidc.token_url,
        client_id="cs-jwt",
        client_secret=HMAC_SECRET + "x",
        client_auth="client_secret_jwt",
    )
    with pytest.raises(CredentialsRejectedError):
        wrong.get_token()


def test_assertion_audience_may_be_the_issuer(oidc: Any, keys: dict[str, Any]) -> None:
    auth = OAuth2ClientCredentialsAuth(
        token_url=oidc.token_url,
        client_id="pk-rsa",
        private_key=keys["rsa"].as_dict(private=True),
        assertion_audience=oidc.issuer,
    )
    assert auth.get_token().access_token


# -- federated assertions ---------------------------------------------------------------


def test_federated_assertion_file_is_read_at_each_token_call(
    oidc: Any, keys: dict[str, Any], tmp_path: Path
) -> None:
    """The file is rewritten between calls (as Kubernetes rotates a projected token);
    a stale read would resend a used jti, which oidc-provider refuses."""
    path = tmp_path / "token"
    path.write_text(_federated_assertion(oidc, keys["federated"]) + "\n")
    auth = OAuth2ClientCredentialsAuth(
        token_url=oidc.token_url,
        revocation_url=oidc.revocation_url,
        client_id="pk-federated",
        client_assertion=path,
    )
    first = auth.get_token().access_token
    path.write_text(_federated_assertion(oidc, keys["federated"]))
    auth.revoke()  # the revocation authenticates with an assertion too
    path.write_text(_federated_assertion(oidc, keys["federated"]))
    second = auth.get_token().access_token
    assert first != second

    # The same file again: the server refuses the replayed assertion, and a refused
    # revocation forgets nothing.
    with pytest.raises(CredentialsRejectedError):
        auth.revoke()
    assert auth.token is not None
    assert auth.token.access_token == second


def test_federated_assertion_from_an_async_callable(oidc: Any, keys: dict[str, Any]) -> None:
    made: list[str] = []

    async def assertion() -> str:
        await asyncio.sleep(0)
        made.append(_federated_assertion(oidc, keys["federated"]))
        return made[-1]

    auth = OAuth2ClientCredentialsAuth(
        issuer=oidc.issuer, client_id="pk-federated", client_assertion=assertion
    )

    async def main() -> None:
        async with httpx.AsyncClient(auth=auth) as http:
            assert (await http.get(oidc.api_url)).json()["client_id"] == "pk-federated"
            assert await auth.arevoke() is True
            assert (await http.get(oidc.api_url)).status_code == 200

    asyncio.run(main())
    assert len(made) == 3  # two grants and the revocation, each with a fresh assertion

    # A sync client cannot await it: a clear error, not a hang or a coroutine warning.
    fresh = OAuth2ClientCredentialsAuth(
        issuer=oidc.issuer, client_id="pk-federated", client_assertion=assertion
    )
    with pytest.raises(TokenEndpointError, match="async function"):
        requests.get(oidc.api_url, auth=fresh, timeout=10)


# -- discovery ------------------------------------------------------------------------


def test_discovery_finds_the_endpoints(oidc: Any, keys: dict[str, Any], driver: Driver) -> None:
    """``issuer=`` alone: the token and revocation endpoints come from the metadata."""
    auth = OAuth2ClientCredentialsAuth(
        issuer=oidc.issuer, client_id="pk-ec", private_key=keys["ec"].as_dict(private=True)
    )
    assert auth.token_url is None
    assert driver.send(auth, "GET", oidc.api_url).status == 200
    assert auth._client.discovery is not None
    metadata = auth._client.discovery.current
    assert metadata is not None
    assert metadata.token_endpoint == oidc.token_url
    assert metadata.revocation_endpoint == oidc.revocation_url


def test_an_issuer_mismatch_sends_no_credential(oidc: Any) -> None:
    """The metadata at ``{issuer}/.well-known/...`` names the issuer without the slash."""
    oidc.reset_counts()
    client = oidc.client("client_credentials", "client_secret_post")
    auth = OAuth2ClientCredentialsAuth(
        issuer=oidc.issuer + "/", client_id=client.client_id, client_secret=client.client_secret
    )
    with pytest.raises(IssuerMismatchError) as caught:
        requests.get(oidc.api_url, auth=auth, timeout=10)
    assert isinstance(caught.value, ValueError)  # a ConfigurationError too
    assert f"issuer={oidc.issuer!r}" in str(caught.value)
    assert client.client_secret not in str(caught.value)
    assert oidc.token_calls() == {}


# -- revocation -----------------------------------------------------------------------


def test_revoke_ends_the_token_and_clears_the_cache(oidc: Any, tmp_path: Path) -> None:
    client = oidc.client("client_credentials", "client_secret_basic")
    cache = FileTokenCache(tmp_path / "tokens.json")
    auth = OAuth2ClientCredentialsAuth(
        issuer=oidc.issuer,
        client_id=client.client_id,
        client_secret=client.client_secret,
        client_auth="client_secret_basic",
        cache=cache,
    )
    token = auth.get_token().access_token
    assert oidc.introspect(token)["active"] is True
    key = auth._manager._key
    assert cache.get(key) is not None

    assert auth.revoke() is True
    assert oidc.introspect(token) == {"active": False}
    assert auth.token is None
    assert cache.get(key) is None
    assert auth.revoke() is False  # nothing left to revoke

    # The object goes on working: the next request gets a new token.
    with httpx.Client(auth=auth) as http:
        assert http.get(oidc.api_url).status_code == 200
    assert auth.token is not None
    assert auth.token.access_token != token


def test_revoke_on_close(oidc: Any) -> None:
    client = oidc.client("client_credentials", "client_secret_post")
    with OAuth2ClientCredentialsAuth(
        token_url=oidc.token_url,
        revocation_url=oidc.revocation_url,
        client_id=client.client_id,
        client_secret=client.client_secret,
        revoke_on_close=True,
    ) as auth:
        token = auth.get_token().access_token
    assert oidc.introspect(token) == {"active": False}

    async def main() -> str:
        async with OAuth2ClientCredentialsAuth(
            issuer=oidc.issuer,
            client_id=client.client_id,
            client_secret=client.client_secret,
            revoke_on_close=True,
        ) as auth:
            return (await auth.aget_token()).access_token

    assert oidc.introspect(asyncio.run(main())) == {"active": False}


# -- tls_client_auth ------------------------------------------------------------------


@pytest.fixture
def mtls() -> Iterator[MogoplusEmulator]:
    with MogoplusEmulator(tls_client_auth=True) as emulator:
        yield emulator


def test_tls_client_auth_the_certificate_alone(mtls: MogoplusEmulator) -> None:
    """tls_client_auth: the client certificate alone authenticates; no secret is sent."""
    auth = MogoplusAuth(**mtls.auth_kwargs())
    assert auth.options.client_auth == "tls_client_auth"
    assert auth.options.client_secret is None
    driver = make_driver(ONE_CLIENT, mtls.ca_file)
    try:
        assert driver.send(auth, "GET", mtls.api_url()).status == 200
    finally:
        driver.close()
    (sent,) = mtls.token_requests
    assert sent.form() == {"client_id": "mogoplus-client"}
    assert "authorization" not in sent.headers


def test_tls_client_auth_refuses_another_clients_certificate(mtls: MogoplusEmulator) -> None:
    kwargs = mtls.auth_kwargs()
    kwargs["cert"] = mtls.issue_client_cert("someone-else@example.com")
    with pytest.raises(CredentialsRejectedError, match="not this client's"):
        MogoplusAuth(**kwargs).get_token()


def test_tls_client_auth_emulator_refuses_a_secret(mtls: MogoplusEmulator) -> None:
    """The emulator's own check: a client that still sends its secret is refused."""
    kwargs = mtls.auth_kwargs()
    del kwargs["client_auth"]
    kwargs["client_secret"] = "left-over-secret"
    with pytest.raises(CredentialsRejectedError, match="a client secret was sent"):
        MogoplusAuth(**kwargs).get_token()
