"""Client authentication and the token lifecycle at three OAuth2 servers nobody here wrote.

Authlib's Flask server, django-oauth-toolkit 3 and node oidc-provider 9 (OpenID
certified), each started once on free loopback ports and counting token calls itself.
The subject is the token endpoint, so one client sends the API requests
(tests/endpoint/conftest.py); what each client does on a refusal is in
tests/clients/test_real_server_replay.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from authplug import CredentialsRejectedError, OAuth2ClientCredentialsAuth, OAuth2PasswordAuth
from authplug.testing import FakeClock

from ..conftest import Driver
from ..servers import AUTH_METHODS, USERNAME, RealServer
from ..servers.running import cc_auth, password_auth


@pytest.mark.parametrize("tricky", [False, True], ids=["plain-secret", "tricky-secret"])
@pytest.mark.parametrize("method", AUTH_METHODS)
def test_client_credentials(server: RealServer, driver: Driver, method: str, tricky: bool) -> None:
    """Both client-auth methods work, with a plain secret and one with ``+ / = %41`` and a space.

    RFC 6749 §2.3.1 form-encodes the id and the secret before Basic: sent raw, the
    tricky secret is refused by all three servers.
    """
    client = server.client("client_credentials", method, tricky=tricky)
    auth = cc_auth(server, client)
    assert driver.send(auth, "GET", server.api_url).status == 200
    assert driver.send(auth, "GET", server.api_url).status == 200
    assert server.token_calls() == {"client_credentials": 1}


@pytest.mark.parametrize("method", AUTH_METHODS)
def test_password_grant_and_refresh_with_rotation(
    password_server: RealServer, driver: Driver, clock: FakeClock, method: str
) -> None:
    """Password grant, then a refresh before expiry; the rotated refresh token is kept."""
    server = password_server
    client = server.client("password", method, tricky=True)
    auth = password_auth(server, client, clock=clock)
    assert driver.send(auth, "GET", server.api_url).status == 200
    first = auth.token
    assert first is not None
    assert first.refresh_token
    assert first.lifetime is not None
    clock.advance(first.lifetime - 30)  # inside the 60-second leeway, before expiry
    assert driver.send(auth, "GET", server.api_url).status == 200
    assert server.token_calls() == {"password": 1, "refresh_token": 1}
    assert auth.token is not None
    assert auth.token.access_token != first.access_token
    assert auth.token.refresh_token != first.refresh_token  # rotated
    clock.advance(first.lifetime - 30)
    assert driver.send(auth, "GET", server.api_url).status == 200
    # The newest refresh token was used: no fall back to the password.
    assert server.token_calls() == {"password": 1, "refresh_token": 2}


@pytest.mark.parametrize("method", AUTH_METHODS)
def test_wrong_secret(server: RealServer, driver: Driver, method: str) -> None:
    """A wrong secret is a CredentialsRejectedError: 401 invalid_client, never retried."""
    client = server.client("client_credentials", method)
    auth = OAuth2ClientCredentialsAuth(
        token_url=server.token_url,
        client_id=client.client_id,
        client_secret="not-the-secret",
        client_auth=method,  # type: ignore[arg-type]
    )
    with pytest.raises(CredentialsRejectedError) as info:
        driver.send(auth, "GET", server.api_url)
    assert (info.value.status_code, info.value.error) == (401, "invalid_client")
    assert "not-the-secret" not in str(info.value)
    assert server.token_calls() == {"client_credentials": 1}


def test_wrong_password(password_server: RealServer, driver: Driver) -> None:
    """A wrong password is refused with the server's own code, never retried."""
    server = password_server
    client = server.client("password", "client_secret_post")
    auth = OAuth2PasswordAuth(
        token_url=server.token_url,
        username=USERNAME,
        password="not-the-password",
        client_id=client.client_id,
        client_secret=client.client_secret,
    )
    with pytest.raises(CredentialsRejectedError) as info:
        driver.send(auth, "GET", server.api_url)
    assert info.value.status_code == 400
    assert info.value.error in ("invalid_grant", "invalid_request")
    assert server.token_calls() == {"password": 1}


def test_resource_indicator_binds_the_token(running_servers: dict[str, RealServer]) -> None:
    """``resource=`` (RFC 8707) on oidc-provider: the token is issued for that API (its
    ``aud`` at introspection and at the API), on the grant and again after a refusal."""
    import httpx
    import requests

    server: Any = running_servers["oidc-provider"]
    server.reset_counts()
    client = server.client("client_credentials", "client_secret_post")
    auth = cc_auth(server, client, resource=server.resource, scope="api:read")

    def audience(token: str) -> Any:
        return server.introspect(token).get("aud")

    with requests.Session() as session:
        session.auth = auth
        me = session.get(server.api_url, timeout=10)
    assert me.status_code == 200
    assert me.json()["aud"] == server.resource
    assert auth.token is not None
    first = auth.token.access_token
    assert audience(first) == server.resource

    server.revoke(first, client)
    with httpx.Client(auth=auth) as http:
        again = http.get(server.api_url)
    assert again.status_code == 200
    assert auth.token.access_token != first
    assert audience(auth.token.access_token) == server.resource
    assert server.token_calls() == {"client_credentials": 2}

    unbound = cc_auth(server, client, scope="api:read")
    assert audience(unbound.get_token().access_token) is None
