"""The oidc-provider harness itself, checked with plain httpx calls (no authplug)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.servers import AUTH_METHODS, PLAIN_SECRET, TRICKY_SECRET, Client
from tests.servers.oidc_provider import OidcProviderServer

#: Not a VSCHAR secret: RFC 6749 Appendix A.2 allows printable ASCII only.
NON_ASCII_SECRET = TRICKY_SECRET + "ü"


@pytest.fixture(scope="module")
def server() -> Iterator[OidcProviderServer]:
    with OidcProviderServer() as running:
        yield running
    assert not running.running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client


def basic(client_id: str, secret: str, *, encode: bool) -> dict[str, str]:
    """An ``Authorization: Basic`` header, with RFC 6749 §2.3.1's encoding or without it."""
    if encode:
        # quote(safe="") escapes every byte outside A-Za-z0-9-._~ (UTF-8), a space as %20.
        client_id, secret = quote(client_id, safe=""), quote(secret, safe="")
    pair = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def cc_token(
    server: OidcProviderServer, http: httpx.Client, client: Client, **extra: str
) -> httpx.Response:
    """A client_credentials request the way ``client`` is registered to authenticate."""
    data = {"grant_type": "client_credentials", **extra}
    if client.auth_method == "client_secret_basic":
        headers = basic(client.client_id, client.client_secret, encode=True)
        return http.post(server.token_url, data=data, headers=headers)
    data |= {"client_id": client.client_id, "client_secret": client.client_secret}
    return http.post(server.token_url, data=data)


def access_token(server: OidcProviderServer, http: httpx.Client) -> str:
    response = cc_token(server, http, server.client("client_credentials", "client_secret_post"))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_client_credentials_with_client_secret_post(
    server: OidcProviderServer, http: httpx.Client
) -> None:
    client = server.client("client_credentials", "client_secret_post")
    response = http.post(
        server.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600  # ttl.ClientCredentials
    assert body["access_token"].count(".") == 0  # opaque, not a JWT
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("tricky", [False, True], ids=["plain", "tricky"])
@pytest.mark.parametrize("auth_method", AUTH_METHODS)
def test_every_registered_client_gets_a_token(
    server: OidcProviderServer, http: httpx.Client, auth_method: str, tricky: bool
) -> None:
    client = server.client("client_credentials", auth_method, tricky=tricky)
    assert client.client_id == f"cc-{auth_method}-{'tricky' if tricky else 'plain'}"
    assert client.client_secret == (TRICKY_SECRET if tricky else PLAIN_SECRET)
    response = cc_token(server, http, client)
    assert response.status_code == 200, response.text


def test_discovery_names_the_issuer_and_the_endpoints(
    server: OidcProviderServer, http: httpx.Client
) -> None:
    response = http.get(f"{server.issuer}/.well-known/openid-configuration")
    assert response.status_code == 200
    meta = response.json()
    assert server.issuer.startswith("http://127.0.0.1:")
    assert meta["issuer"] == server.issuer
    assert meta["token_endpoint"] == server.token_url == f"{server.issuer}/token"
    assert meta["revocation_endpoint"] == server.revocation_url
    assert meta["introspection_endpoint"] == server.introspection_url
    assert "client_credentials" in meta["grant_types_supported"]
    assert set(AUTH_METHODS) <= set(meta["token_endpoint_auth_methods_supported"])
    assert server.version.startswith("9.")


def test_api_accepts_the_token_and_answers_rfc6750_401_otherwise(
    server: OidcProviderServer, http: httpx.Client
) -> None:
    token = access_token(server, http)
    ok = http.get(server.api_url, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    assert ok.json()["ok"] is True
    assert ok.json()["client_id"] == "cc-client_secret_post-plain"
    assert ok.json()["sub"] is None  # a client_credentials token has no end-user

    bad = http.get(server.api_url, headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401
    challenge = bad.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge

    # RFC 6750 §3.1: a request without a token gets a challenge with no error code.
    missing = http.get(server.api_url)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer ")
    assert "error=" not in missing.headers["www-authenticate"]


def test_revoked_token_is_refused_by_the_api(
    server: OidcProviderServer, http: httpx.Client
) -> None:
    client = server.client("client_credentials", "client_secret_basic", tricky=True)
    response = cc_token(server, http, client)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert http.get(server.api_url, headers=headers).status_code == 200

    server.revoke(token, client)

    refused = http.get(server.api_url, headers=headers)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]


def test_revoking_another_clients_token_is_refused(
    server: OidcProviderServer, http: httpx.Client
) -> None:
    token = access_token(server, http)
    other = server.client("client_credentials", "client_secret_basic")
    with pytest.raises(RuntimeError, match="invalid_request"):
        server.revoke(token, other)
    ok = http.get(server.api_url, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200


@pytest.mark.parametrize("auth_method", AUTH_METHODS)
def test_wrong_secret_is_401_invalid_client(
    server: OidcProviderServer, http: httpx.Client, auth_method: str
) -> None:
    right = server.client("client_credentials", auth_method)
    wrong = Client(right.client_id, "wrong-secret", auth_method, right.grant)
    response = cc_token(server, http, wrong)
    assert response.status_code == 401
    # oidc-provider hides the reason ("invalid secret provided") behind a generic description.
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }
    if auth_method == "client_secret_basic":
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith(f'Basic realm="{server.issuer}"')
        assert 'error="invalid_client"' in challenge
    else:
        assert "www-authenticate" not in response.headers


def test_token_calls_are_counted_by_the_server_and_reset(
    server: OidcProviderServer, http: httpx.Client
) -> None:
    server.reset_counts()
    assert server.token_calls() == {}
    access_token(server, http)
    access_token(server, http)
    bad = Client("cc-client_secret_post-plain", "nope", "client_secret_post", "client_credentials")
    assert cc_token(server, http, bad).status_code == 401  # refused calls count too
    http.post(server.token_url, data={"client_id": "x"})  # no grant_type: counted as "?"
    assert server.token_calls() == {"client_credentials": 3, "?": 1}
    # Calls elsewhere are not token calls.
    http.get(server.api_url)
    http.get(f"{server.issuer}/.well-known/openid-configuration")
    assert server.token_calls() == {"client_credentials": 3, "?": 1}
    server.reset_counts()
    assert server.token_calls() == {}


def test_basic_needs_the_form_encoding_of_rfc6749(
    server: OidcProviderServer, http: httpx.Client
) -> None:
    client = server.client("client_credentials", "client_secret_basic", tricky=True)
    data = {"grant_type": "client_credentials"}

    # (a) id and secret each percent-encoded before base64: accepted.
    encoded = basic(client.client_id, client.client_secret, encode=True)
    assert "%2B" in quote(client.client_secret, safe="")
    accepted = http.post(server.token_url, data=data, headers=encoded)
    assert accepted.status_code == 200, accepted.text

    # (b) the raw secret base64-encoded: oidc-provider decodes "+" as a space and "%41" as
    # "A", so the secret no longer matches.
    raw = basic(client.client_id, client.client_secret, encode=False)
    refused = http.post(server.token_url, data=data, headers=raw)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


def test_non_ascii_secret_in_basic_is_400_invalid_request(
    server: OidcProviderServer, http: httpx.Client
) -> None:
    """A secret with "ü" (no VSCHAR): decoding the header fails outright."""
    client = server.client("client_credentials", "client_secret_basic", tricky=True)
    for encode in (True, False):
        headers = basic(client.client_id, NON_ASCII_SECRET, encode=encode)
        response = http.post(
            server.token_url, data={"grant_type": "client_credentials"}, headers=headers
        )
        assert response.status_code == 400
        assert response.json() == {
            "error": "invalid_request",
            "error_description": (
                "client_id and client_secret in the authorization header are not properly encoded"
            ),
        }


def test_non_ascii_secret_cannot_be_registered() -> None:
    secret = {
        "client_id": "non-ascii",
        "client_secret": NON_ASCII_SECRET,
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
    }
    refused = OidcProviderServer(extra_clients=[secret])
    with pytest.raises(
        RuntimeError, match=r'refused client "non-ascii".*invalid client_secret value'
    ):
        refused.start()
    assert not refused.running


def test_resource_indicators(server: OidcProviderServer, http: httpx.Client) -> None:
    """No resource: no audience. The API's resource: its audience. Others: invalid_target."""
    client = server.client("client_credentials", "client_secret_post")
    introspect = {
        "client_id": server.resource_server.client_id,
        "client_secret": server.resource_server.client_secret,
    }

    plain = cc_token(server, http, client, scope="api:read").json()
    info = http.post(server.introspection_url, data={"token": plain["access_token"], **introspect})
    assert info.json()["active"] is True
    assert "aud" not in info.json()
    assert "scope" not in plain  # a scope of no resource server is dropped silently

    bound = cc_token(server, http, client, resource=server.resource, scope="api:read other")
    assert bound.status_code == 200, bound.text
    assert bound.json()["scope"] == "api:read"
    token = bound.json()["access_token"]
    info = http.post(server.introspection_url, data={"token": token, **introspect})
    assert info.json()["aud"] == server.resource
    me = http.get(server.api_url, headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["aud"] == server.resource

    unknown = cc_token(server, http, client, resource="https://elsewhere.invalid/")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_target"


def test_extra_clients_and_config_reach_the_provider(http: httpx.Client) -> None:
    """``default_resource`` binds resource-less requests to the API; ``ttl`` sets lifetimes."""
    extra = Client("extra-client", "extra-secret-0123", "client_secret_post", "client_credentials")
    config = {"default_resource": "api", "ttl": {"ClientCredentials": 5}}
    with OidcProviderServer(extra_clients=[extra], extra_config=config) as server:
        response = cc_token(server, http, extra)
        assert response.status_code == 200, response.text
        assert response.json()["expires_in"] == 5
        token = response.json()["access_token"]
        me = http.get(server.api_url, headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["client_id"] == "extra-client"
        assert me.json()["aud"] == server.resource
        assert server.token_calls() == {"client_credentials": 1}
    assert not server.running
