"""authplug's login classes on servers nobody here wrote: node oidc-provider (a public
native client, PKCE, refresh tokens through offline_access, the device flow, revocation)
and django-oauth-toolkit (authorization code with PKCE), the person driven headlessly over
HTTP through each server's own login and consent pages (:mod:`tests.servers.people`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from authplug import (
    AuthError,
    FileTokenCache,
    LoginRequiredError,
    OAuth2AuthorizationCodeAuth,
    OAuth2DeviceCodeAuth,
)
from authplug.testing import FakeClock
from tests.servers import USERNAME
from tests.servers.dot_server import LOGIN_CLIENT_ID as DOT_CLIENT_ID
from tests.servers.oidc_provider import DEVICE_GRANT, LOGIN_CLIENT_ID, OidcProviderServer
from tests.servers.people import DotPerson, OidcProviderPerson

SCOPE = "openid offline_access"


@pytest.fixture(autouse=True)
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)


def code_login(oidc: OidcProviderServer, **options: Any) -> OAuth2AuthorizationCodeAuth:
    """A login on oidc-provider's public native client, with offline_access."""
    options.setdefault("scope", SCOPE)
    return OAuth2AuthorizationCodeAuth(issuer=oidc.issuer, client_id=LOGIN_CLIENT_ID, **options)


def device_login(oidc: OidcProviderServer, **options: Any) -> OAuth2DeviceCodeAuth:
    """The same client's device login."""
    options.setdefault("scope", SCOPE)
    return OAuth2DeviceCodeAuth(issuer=oidc.issuer, client_id=LOGIN_CLIENT_ID, **options)


@pytest.fixture
def oidc(running_servers: dict[str, Any]) -> OidcProviderServer:
    server: OidcProviderServer = running_servers["oidc-provider"]
    server.reset_counts()
    return server


@pytest.fixture
def dot(running_servers: dict[str, Any]) -> Any:
    server = running_servers["django-oauth-toolkit"]
    server.reset_counts()
    return server


def test_oidc_provider_code_login_lasts_and_refreshes(
    oidc: OidcProviderServer, tmp_path: Path
) -> None:
    """Discovery, PKCE, the person on oidc-provider's pages, the loopback redirect, the code
    exchange; the login (with a refresh token through offline_access) serves a later object
    from the cache, which refreshes it once it expires, asking nobody."""
    person = OidcProviderPerson(oidc.issuer)
    clock = FakeClock()
    cache = tmp_path / "logins"
    auth = code_login(
        oidc,
        on_authorize=person.approve,
        cache=FileTokenCache(cache),
        clock=clock,
    )
    token = auth.get_token()
    assert token.refresh_token
    assert set((token.scope or "").split()) == {"openid", "offline_access"}
    assert oidc.introspect(token.access_token)["sub"] == USERNAME
    assert person.prompts == {"login": 1, "consent": 1}

    later = code_login(
        oidc,
        cache=FileTokenCache(cache),
        interactive=False,
        clock=clock,
    )
    assert later.get_token().access_token == token.access_token
    clock.advance(3600 * 24)  # this object's clock: the access token has expired
    renewed = later.get_token()
    assert renewed.access_token != token.access_token
    assert oidc.introspect(renewed.access_token)["active"] is True
    assert oidc.stats()["authorization_code:ok"] == 1
    assert oidc.stats()["refresh_token:ok"] == 1
    assert person.prompts == {"login": 1, "consent": 1}


def test_oidc_provider_logout_revokes_the_refresh_token(
    oidc: OidcProviderServer, tmp_path: Path
) -> None:
    person = OidcProviderPerson(oidc.issuer)
    clock = FakeClock()
    cache = tmp_path / "logins"
    auth = code_login(
        oidc,
        on_authorize=person.approve,
        cache=FileTokenCache(cache),
        clock=clock,
    )
    token = auth.get_token()
    assert auth.logout() is True
    assert token.refresh_token is not None
    assert oidc.introspect(token.refresh_token)["active"] is False
    with pytest.raises(LoginRequiredError):
        code_login(
            oidc,
            cache=FileTokenCache(cache),
            interactive=False,
        ).get_token()


def test_oidc_provider_denied_code_login(oidc: OidcProviderServer) -> None:
    person = OidcProviderPerson(oidc.issuer)
    auth = code_login(oidc, scope="openid", on_authorize=person.deny)
    with pytest.raises(AuthError) as info:
        auth.get_token()
    assert info.value.error == "access_denied"
    assert oidc.stats()["authorization_code:ok"] == 0


def test_oidc_provider_device_login_serves_the_code_flow_too(
    oidc: OidcProviderServer, tmp_path: Path
) -> None:
    """The device flow on oidc-provider's /device pages (no interval in its answer: 5 s by
    RFC 8628, waited on this object's clock); the login then serves an authorization code
    object with the same issuer, client and scope, without asking."""
    person = OidcProviderPerson(oidc.issuer)
    clock = FakeClock()
    cache = tmp_path / "logins"
    auth = device_login(
        oidc,
        on_user_code=person.on_user_code,
        cache=FileTokenCache(cache),
        clock=clock,
    )
    token = auth.get_token()
    assert token.refresh_token
    assert clock.sleeps == [5.0]  # one wait of the default interval, then the tokens
    assert oidc.stats()[f"{DEVICE_GRANT}:ok"] == 1
    code = code_login(
        oidc,
        cache=FileTokenCache(cache),
        interactive=False,
    )
    assert code.get_token().access_token == token.access_token


def test_oidc_provider_denied_device_login(oidc: OidcProviderServer) -> None:
    person = OidcProviderPerson(oidc.issuer)
    auth = device_login(
        oidc,
        scope="openid",
        on_user_code=lambda code: person.enter_user_code(code.user_code, approve=False),
        clock=FakeClock(),
    )
    with pytest.raises(AuthError, match="denied") as info:
        auth.get_token()
    assert info.value.error == "access_denied"


def test_django_oauth_toolkit_code_login_with_requests(dot: Any) -> None:
    """Django's login form, DOT's Authorize page, PKCE required: the first request through
    requests logs the person in, and the API answers for them; a refresh token is kept."""
    person = DotPerson(dot.base_url)
    auth = OAuth2AuthorizationCodeAuth(
        authorization_url=dot.authorization_url,
        token_url=dot.token_url,
        client_id=DOT_CLIENT_ID,
        scope="read write",
        on_authorize=person.approve,
    )
    me = requests.get(dot.api_url, auth=auth, timeout=10)
    assert me.status_code == 200
    assert me.json()["user"] == USERNAME
    assert person.prompts == {"login": 1, "consent": 1}
    first = auth.token
    assert first is not None
    assert first.refresh_token
    assert dot.stats()["authorization_code:ok"] == 1
