"""Renewal and replay against three OAuth2 servers nobody here wrote, on every client.

Authlib's Flask server, django-oauth-toolkit 3 and node oidc-provider 9 (OpenID
certified), each started once on free loopback ports and counting token calls itself:
what each client does when a real server's token ends or a real API refuses it.
Client authentication at these servers is in tests/endpoint/test_real_servers.py.
"""

from __future__ import annotations

import pytest

from authplug.testing import FakeClock

from ..conftest import Driver
from ..servers import RealServer
from ..servers.running import cc_auth, password_auth


def test_short_lifetime_is_renewed_before_it_ends(
    server: RealServer, driver: Driver, clock: FakeClock
) -> None:
    """A client-credentials token is renewed inside the leeway, before the server drops it."""
    client = server.client("client_credentials", "client_secret_basic", tricky=True)
    auth = cc_auth(server, client, clock=clock)
    assert driver.send(auth, "GET", server.api_url).status == 200
    first = auth.token
    assert first is not None
    assert first.lifetime == 120
    clock.advance(100)
    assert driver.send(auth, "GET", server.api_url).status == 200
    assert server.token_calls() == {"client_credentials": 2}
    assert auth.token is not None
    assert auth.token.access_token != first.access_token


def test_revoked_client_credentials_token_is_renewed_and_replayed(
    server: RealServer, driver: Driver
) -> None:
    """RFC 7009 revocation; the API's 401 renews the token and the request is replayed."""
    client = server.client("client_credentials", "client_secret_basic", tricky=True)
    auth = cc_auth(server, client)
    assert driver.send(auth, "GET", server.api_url).status == 200
    assert auth.token is not None
    server.revoke(auth.token.access_token, client)
    result = driver.send(auth, "GET", server.api_url)
    assert (result.status, result.history) == (200, 1)
    assert server.token_calls() == {"client_credentials": 2}


def test_revoked_password_token_is_refreshed_and_replayed(
    password_server: RealServer, driver: Driver
) -> None:
    """Revocation; the 401 renews the token and the request is replayed.

    Both servers revoke the refresh token with its access token (RFC 7009 §2.1 allows
    it), so the refresh is refused and the password grant renews.
    """
    server = password_server
    client = server.client("password", "client_secret_basic", tricky=True)
    auth = password_auth(server, client)
    assert driver.send(auth, "GET", server.api_url).status == 200
    assert auth.token is not None
    server.revoke(auth.token.access_token, client)
    result = driver.send(auth, "GET", server.api_url)
    assert (result.status, result.history) == (200, 1)
    assert server.token_calls() == {"password": 2, "refresh_token": 1}


@pytest.mark.parametrize("codes", [(401,), (401, 403)], ids=["default", "with-403"])
def test_django_default_view_needs_403(
    running_servers: dict[str, RealServer], driver: Driver, codes: tuple[int, ...]
) -> None:
    """DOT's stock ProtectedResourceView refuses with 403: ``refresh_status_codes=(401, 403)``."""
    server = running_servers["django-oauth-toolkit"]
    server.reset_counts()
    client = server.client("client_credentials", "client_secret_post")
    auth = cc_auth(server, client, refresh_status_codes=codes)
    url: str = server.default_view_url  # type: ignore[attr-defined]
    assert driver.send(auth, "GET", url).status == 200
    assert auth.token is not None
    server.revoke(auth.token.access_token, client)
    result = driver.send(auth, "GET", url)
    if codes == (401,):
        assert result.status == 403  # handed back: 403 is not a refresh status by default
        assert server.token_calls() == {"client_credentials": 1}
    else:
        assert (result.status, result.history) == (200, 1)
        assert server.token_calls() == {"client_credentials": 2}
