"""The django-oauth-toolkit harness itself, proven with plain httpx calls.

Nothing from authplug here: these tests pin down what the real server does, so that
the shared suite can trust it.
"""

from __future__ import annotations

import base64
import string
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.servers import AUTH_METHODS, PASSWORD, TRICKY_SECRET, USERNAME, Client
from tests.servers.django_oauth import DjangoOAuthServer, basic_credentials


@pytest.fixture(scope="module")
def server() -> Iterator[DjangoOAuthServer]:
    with DjangoOAuthServer() as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def token_request(
    http: httpx.Client, server: DjangoOAuthServer, client: Client, **params: str
) -> httpx.Response:
    """A token request authenticated the way ``client`` says."""
    if "refresh_token" in params:
        data = {"grant_type": "refresh_token"}
    elif client.grant == "password":
        data = {"grant_type": "password", "username": USERNAME, "password": PASSWORD}
    else:
        data = {"grant_type": client.grant}
    data |= params
    headers = {}
    if client.auth_method == "client_secret_basic":
        headers["Authorization"] = basic_credentials(client.client_id, client.client_secret)
    else:
        data |= {"client_id": client.client_id, "client_secret": client.client_secret}
    return http.post(server.token_url, data=data, headers=headers)


def percent_encode(text: str) -> str:
    """Every UTF-8 byte outside ``A-Za-z0-9-._~`` as ``%XX`` (so a space is ``%20``)."""
    unreserved = set(string.ascii_letters + string.digits + "-._~")
    return "".join(chr(b) if chr(b) in unreserved else f"%{b:02X}" for b in text.encode())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def password_token(http: httpx.Client, server: DjangoOAuthServer) -> dict[str, Any]:
    response = token_request(http, server, server.client("password", "client_secret_post"))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_password_grant_with_client_secret_post(
    http: httpx.Client, server: DjangoOAuthServer
) -> None:
    body = password_token(http, server)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 120
    assert body["access_token"]
    assert body["refresh_token"]


@pytest.mark.parametrize("tricky", [False, True], ids=["plain", "tricky"])
@pytest.mark.parametrize("auth_method", AUTH_METHODS)
@pytest.mark.parametrize("grant", ["client_credentials", "password"])
def test_every_registered_client_gets_a_token(
    http: httpx.Client, server: DjangoOAuthServer, grant: str, auth_method: str, tricky: bool
) -> None:
    client = server.client(grant, auth_method, tricky=tricky)
    assert client.client_id == f"{grant}-{auth_method}-{'tricky' if tricky else 'plain'}"
    response = token_request(http, server, client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert ("refresh_token" in body) == (grant == "password")

    me = http.get(server.api_url, headers=bearer(body["access_token"]))
    assert me.status_code == 200
    expected_user = USERNAME if grant == "password" else None
    assert me.json() == {"ok": True, "user": expected_user, "client_id": client.client_id}


def test_refresh_rotates_and_refuses_the_old_refresh_token(
    http: httpx.Client, server: DjangoOAuthServer
) -> None:
    client = server.client("password", "client_secret_post")
    first = password_token(http, server)

    refreshed = token_request(http, server, client, refresh_token=first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]

    replay = token_request(http, server, client, refresh_token=first["refresh_token"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    # The rotated one still works.
    again = token_request(http, server, client, refresh_token=second["refresh_token"])
    assert again.status_code == 200, again.text


@pytest.mark.parametrize("auth_method", AUTH_METHODS)
def test_wrong_secret_is_invalid_client(
    http: httpx.Client, server: DjangoOAuthServer, auth_method: str
) -> None:
    good = server.client("client_credentials", auth_method)
    wrong = Client(good.client_id, "not-the-secret", good.auth_method, good.grant)
    response = token_request(http, server, wrong)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_wrong_password_is_invalid_grant(http: httpx.Client, server: DjangoOAuthServer) -> None:
    client = server.client("password", "client_secret_post")
    response = token_request(http, server, client, username=USERNAME, password="wrong")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_api_me_answers_rfc6750(http: httpx.Client, server: DjangoOAuthServer) -> None:
    token = password_token(http, server)["access_token"]
    ok = http.get(server.api_url, headers=bearer(token))
    assert ok.status_code == 200
    assert ok.json()["user"] == USERNAME

    bad = http.get(server.api_url, headers=bearer("not-a-token"))
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')

    none = http.get(server.api_url)
    assert none.status_code == 401
    assert none.headers["WWW-Authenticate"] == "Bearer"


def test_default_dot_view_answers_403_to_a_refused_token(
    http: httpx.Client, server: DjangoOAuthServer
) -> None:
    token = password_token(http, server)["access_token"]
    assert http.get(server.default_view_url, headers=bearer(token)).status_code == 200
    refused = http.get(server.default_view_url, headers=bearer("not-a-token"))
    assert refused.status_code == 403
    assert "WWW-Authenticate" not in refused.headers


@pytest.mark.parametrize("auth_method", AUTH_METHODS)
def test_revoke_makes_the_api_answer_401(
    http: httpx.Client, server: DjangoOAuthServer, auth_method: str
) -> None:
    client = server.client("password", auth_method, tricky=True)
    response = token_request(http, server, client)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert http.get(server.api_url, headers=bearer(token)).status_code == 200

    server.revoke(token, client)
    revoked = http.get(server.api_url, headers=bearer(token))
    assert revoked.status_code == 401
    assert 'error="invalid_token"' in revoked.headers["WWW-Authenticate"]


def test_token_calls_are_counted_server_side_and_reset(
    http: httpx.Client, server: DjangoOAuthServer
) -> None:
    server.reset_counts()
    assert server.token_calls() == Counter()

    first = password_token(http, server)
    client = server.client("password", "client_secret_post")
    token_request(http, server, client, refresh_token=first["refresh_token"])
    token_request(http, server, server.client("client_credentials", "client_secret_basic"))
    wrong = Client(client.client_id, "wrong", client.auth_method, client.grant)
    assert token_request(http, server, wrong).status_code == 401  # refused calls count too
    assert server.token_calls() == Counter(
        {"password": 2, "refresh_token": 1, "client_credentials": 1}
    )

    server.reset_counts()
    assert server.token_calls() == Counter()


def test_tricky_secret_in_basic_must_be_form_encoded(
    http: httpx.Client, server: DjangoOAuthServer
) -> None:
    client = server.client("client_credentials", "client_secret_basic", tricky=True)
    assert client.client_secret == TRICKY_SECRET
    data = {"grant_type": "client_credentials"}

    # (a) RFC 6749 §2.3.1: id and secret each percent-encoded (UTF-8, space as %20,
    # every byte outside A-Za-z0-9-._~ escaped), then joined and base64-encoded.
    pair = f"{percent_encode(client.client_id)}:{percent_encode(client.client_secret)}"
    for escape in ("%2B", "%20", "%25"):  # "+", " ", "%": what form-decoding changes
        assert escape in pair
    encoded = "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")
    assert basic_credentials(client.client_id, client.client_secret) == encoded
    accepted = http.post(server.token_url, data=data, headers={"Authorization": encoded})
    assert accepted.status_code == 200, accepted.text

    # (b) The raw secret, base64-encoded as it is: DOT form-decodes it ("+" becomes a
    # space, "%41" an "A") and the secret no longer matches.
    raw_pair = f"{client.client_id}:{client.client_secret}".encode()
    raw = "Basic " + base64.b64encode(raw_pair).decode("ascii")
    refused = http.post(server.token_url, data=data, headers={"Authorization": raw})
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


def test_without_migrations_the_server_starts_faster_and_works(http: httpx.Client) -> None:
    with DjangoOAuthServer(run_migrations=False, access_token_lifetime=30) as fast:
        client = fast.client("password", "client_secret_basic", tricky=True)
        response = token_request(http, fast, client)
        assert response.status_code == 200, response.text
        assert response.json()["expires_in"] == 30
        assert fast.token_calls() == Counter({"password": 1})
