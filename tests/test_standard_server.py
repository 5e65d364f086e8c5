"""Both generic classes against a standards OAuth2 server nobody here wrote."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from authplug import (
    CredentialsRejectedError,
    OAuth2ClientCredentialsAuth,
    OAuth2PasswordAuth,
)
from authplug.testing import FakeClock

from .conftest import Driver
from .standard_server import CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME, Store, standard_server


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Store]]:
    # Authlib's server refuses plain http unless told this is a test.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    with standard_server() as running:
        yield running


@pytest.mark.parametrize("client_auth", ["client_secret_post", "client_secret_basic"])
def test_password_grant_refresh_and_replay(
    driver: Driver, server: tuple[str, Store], clock: FakeClock, client_auth: str
) -> None:
    """Password grant, proactive refresh (with rotation), and 401 replay, all standard."""
    url, store = server
    auth = OAuth2PasswordAuth(
        token_url=url + "/oauth/token",
        username=USERNAME,
        password=PASSWORD,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scope="read write",
        client_auth=client_auth,  # type: ignore[arg-type]
        clock=clock,
    )
    assert driver.send(auth, "GET", url + "/api/me").data == {"ok": True}
    first = auth.token
    assert first is not None
    assert first.scope == "read write"
    assert first.refresh_token
    clock.advance(100)  # 120-second tokens: inside the 60-second leeway
    assert driver.send(auth, "GET", url + "/api/me").status == 200
    assert store.calls == {"password": 1, "refresh_token": 1}
    assert auth.token is not None
    assert auth.token.refresh_token != first.refresh_token  # rotated
    store.revoke_all()
    assert driver.send(auth, "GET", url + "/api/me").status == 200
    # The rotated refresh token was revoked with everything else: fall back to the grant.
    assert store.calls == {"password": 2, "refresh_token": 2}


def test_client_credentials(driver: Driver, server: tuple[str, Store]) -> None:
    """The client-credentials class gets and renews tokens from the standard server."""
    url, store = server
    auth = OAuth2ClientCredentialsAuth(
        token_url=url + "/oauth/token", client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    assert driver.send(auth, "GET", url + "/api/me").status == 200
    store.revoke_all()
    assert driver.send(auth, "GET", url + "/api/me").status == 200
    assert store.calls == {"client_credentials": 2}


def test_standard_errors(server: tuple[str, Store]) -> None:
    """The server's RFC 6749 errors arrive as CredentialsRejectedError with their codes."""
    url, _ = server
    wrong_password = OAuth2PasswordAuth(
        token_url=url + "/oauth/token",
        username=USERNAME,
        password="not-the-password",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    with pytest.raises(CredentialsRejectedError) as info:
        wrong_password.get_token()
    assert (info.value.status_code, info.value.error) == (400, "invalid_request")
    wrong_secret = OAuth2ClientCredentialsAuth(
        token_url=url + "/oauth/token", client_id=CLIENT_ID, client_secret="nope-nope"
    )
    with pytest.raises(CredentialsRejectedError) as info:
        wrong_secret.get_token()
    assert (info.value.status_code, info.value.error) == (401, "invalid_client")
