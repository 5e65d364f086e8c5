"""Every provider against its emulator: its token endpoint, its refusals, its wire format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from authplug import (
    AuthError,
    BaseAuth,
    CredentialsRejectedError,
    TokenEndpointError,
    TokenResponseError,
)
from authplug.providers import PROVIDERS
from authplug.testing import EMULATORS, FakeClock, OAuth2Emulator, settle

from ..conftest import Driver, make_driver
from .conftest import ONE_CLIENT

#: What each provider's emulator answers to a wrong password (or client secret).
REJECTIONS = {
    "semansys": (403, "invalid_grant", "user authentication failed"),
    "mogoplus": (401, "invalid_client", "invalid_client"),
    "telmai": (401, None, "Unauthorized"),
    "dakota": (400, None, "Please provide correct username and password"),
    "loginform": (401, "Unauthorized", "Incorrect username or password"),
}


@pytest.fixture(params=list(EMULATORS))
def provider(request: pytest.FixtureRequest) -> Iterator[OAuth2Emulator]:
    with EMULATORS[request.param]() as emulator:
        yield emulator


@pytest.fixture
def client(provider: OAuth2Emulator) -> Iterator[Driver]:
    """One client: a provider differs from another only at its token endpoint."""
    made = make_driver(ONE_CLIENT, getattr(provider, "ca_file", True))
    yield made
    made.close()


def auth_for(emulator: OAuth2Emulator, **changes: Any) -> BaseAuth:
    kwargs = {**emulator.auth_kwargs(), **changes}
    return PROVIDERS[emulator.name](**kwargs)


def test_fetch_renew_replay(provider: OAuth2Emulator, client: Driver, clock: FakeClock) -> None:
    """First fetch, Bearer header, proactive renewal, and a revocation replayed."""
    auth = auth_for(provider, clock=clock)
    assert provider.token_calls.total() == 0
    result = client.send(auth, "GET", provider.api_url())
    assert result.status == 200
    assert auth.token is not None
    assert provider.api_log[-1].authorization == f"Bearer {auth.token.access_token}"
    lifetime = provider.token_lifetime
    assert lifetime is not None
    clock.advance(lifetime - 30)
    assert client.send(auth, "GET", provider.api_url()).status == 200
    provider.revoke_all()
    assert client.send(auth, "POST", provider.api_url(), json={"a": 1}).status == 200
    renewal = "client_credentials" if provider.name == "mogoplus" else "refresh_token"
    first = "client_credentials" if provider.name == "mogoplus" else "password"
    expected = {first: 3} if first == renewal else {first: 1, renewal: 2}
    assert provider.token_calls == expected
    assert [hit.status for hit in provider.api_log] == [200, 200, 401, 200]


def test_wrong_credentials(provider: OAuth2Emulator, client: Driver) -> None:
    """A refusal carries the provider's own status, code and words."""
    secret = "password" if provider.name != "mogoplus" else "client_secret"
    auth = auth_for(provider, **{secret: "wrong-" + secret})
    with pytest.raises(CredentialsRejectedError) as info:
        client.send(auth, "GET", provider.api_url())
    status, error, description = REJECTIONS[provider.name]
    assert (info.value.status_code, info.value.error, info.value.description) == (
        status,
        error,
        description,
    )
    assert info.value.provider == provider.name
    assert str(info.value).startswith(f"{provider.name}: HTTP {status}")
    assert "wrong-" not in str(info.value)


@pytest.mark.parametrize(
    "body",
    [b"<html><title>502 Bad Gateway</title></html>", b"", b'{"access_token": "x', b"[]"],
    ids=["html", "empty", "truncated", "list"],
)
def test_malformed_answers(provider: OAuth2Emulator, body: bytes) -> None:
    """Every provider turns a broken 2xx body into TokenResponseError, then recovers."""
    clock = FakeClock()
    auth = auth_for(provider, clock=clock)
    provider.malformed_next(1, body=body)
    with pytest.raises(TokenResponseError) as info:
        auth.get_token()
    assert info.value.provider == provider.name
    clock.advance(2)
    assert auth.get_token().access_token


def test_server_errors_are_retried(provider: OAuth2Emulator) -> None:
    """A 503 page from a proxy is retried for every provider."""
    clock = FakeClock()
    provider.fail_next(2, status=503)
    auth = auth_for(provider, clock=clock)
    assert auth.get_token().access_token
    assert provider.token_calls.total() == 3
    assert len(clock.sleeps) == 2


# -- Semansys ---------------------------------------------------------------------------


def test_semansys_wire(clock: FakeClock) -> None:
    """Form body with the five documented fields; refresh carries the client credentials."""
    with EMULATORS["semansys"]() as emulator:
        auth = auth_for(emulator, clock=clock)
        token = auth.get_token()
        assert token.scope == "read write"
        clock.advance(3590)
        auth.get_token()
        settle(auth)  # the renewal runs in the background
        grant, refresh = emulator.token_requests
        assert grant.headers["content-type"] == "application/x-www-form-urlencoded"
        assert grant.form() == {
            "grant_type": "password",
            "username": emulator.username,
            "password": emulator.password,
            "client_id": emulator.client_id,
            "client_secret": emulator.client_secret,
        }
        assert refresh.form() == {
            "grant_type": "refresh_token",
            "refresh_token": token.refresh_token,
            "client_id": emulator.client_id,
            "client_secret": emulator.client_secret,
        }
        auth_for(emulator, scope="openid api").get_token()
        assert emulator.token_requests[-1].form()["scope"] == "openid api"


def test_semansys_defaults() -> None:
    auth = PROVIDERS["semansys"](client_id="c", client_secret="s", username="u", password="p")
    assert auth.token_url == "https://oidc-pre.semansys.com/connect/token"
    with EMULATORS["semansys"]() as emulator:
        wrong_client = auth_for(emulator, client_secret="not-it")
        with pytest.raises(CredentialsRejectedError) as info:
            wrong_client.get_token()
        assert (info.value.status_code, info.value.error) == (401, "invalid_client")


# -- Mogoplus ---------------------------------------------------------------------------


def test_mogoplus_wire() -> None:
    """grant_type in the query, client id and secret in the form, a client certificate."""
    with EMULATORS["mogoplus"]() as emulator:
        auth_for(emulator).get_token()
        (request,) = emulator.token_requests
        assert request.query == {"grant_type": ["client_credentials"]}
        assert request.form() == {
            "client_id": emulator.client_id,
            "client_secret": emulator.client_secret,
        }
        assert request.headers["accept"] == "application/json"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert request.client_cert is not None
        assert ("email", "mogoplus-client@example.com") in request.client_cert["subjectAltName"]


def test_mogoplus_needs_its_certificate(tmp_path: Any) -> None:
    """No certificate, a missing file, or a file that is not one: refused at construction."""
    from authplug import ConfigurationError

    base = {"client_id": "c", "client_secret": "s"}
    with pytest.raises(ConfigurationError, match="cert= is required"):
        PROVIDERS["mogoplus"](cert=None, **base)
    with pytest.raises(ConfigurationError, match=r"nowhere\.pem"):
        PROVIDERS["mogoplus"](cert=str(tmp_path / "nowhere.pem"), **base)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigurationError, match=r"garbage\.pem"):
        PROVIDERS["mogoplus"](cert=str(garbage), **base)


def test_mogoplus_tls_failures_are_endpoint_errors() -> None:
    """A server the client cannot verify is a TokenEndpointError, not a crash."""
    with EMULATORS["mogoplus"]() as emulator:
        auth = auth_for(emulator, verify=True, retries=0)  # the system CAs: no trust
        with pytest.raises(TokenEndpointError, match="CERTIFICATE_VERIFY_FAILED"):
            auth.get_token()


def test_mogoplus_refuses_a_call_without_certificate() -> None:
    """The emulator itself requires the client certificate (it is a real check)."""
    import httpx

    with EMULATORS["mogoplus"]() as emulator:
        response = httpx.post(
            emulator.token_url + "?grant_type=client_credentials",
            data={"client_id": emulator.client_id, "client_secret": emulator.client_secret},
            headers={"Accept": "application/json"},
            verify=emulator.client_ssl_context(),  # type: ignore[attr-defined]
        )
        assert response.status_code == 401


# -- Telmai -----------------------------------------------------------------------------


def test_telmai_body_wire(clock: FakeClock) -> None:
    """camelCase form body; nothing the password grant does not need; ``expires`` read."""
    with EMULATORS["telmai"](tenant="acme") as emulator:
        auth = auth_for(emulator, clock=clock)
        token = auth.get_token()
        assert token.expires_at == clock.time() + 3600
        clock.advance(3590)
        auth.get_token()
        settle(auth)  # the renewal runs in the background
        grant, refresh = emulator.token_requests
        assert grant.query == {}
        assert grant.form() == {
            "clientId": emulator.client_id,
            "grantType": "password",
            "username": emulator.username,
            "password": emulator.password,
            "tenant": "acme",
        }
        assert refresh.form() == {
            "clientId": emulator.client_id,
            "grantType": "refresh_token",
            "refreshToken": token.refresh_token,
            "tenant": "acme",
        }
        assert emulator.transaction_ids == [None, None]  # type: ignore[attr-defined]


def test_telmai_query_mode_and_transaction_ids() -> None:
    """``params_in="query"`` sends what the curl sends; transaction ids are fresh each time."""
    with EMULATORS["telmai"]() as emulator:
        auth = auth_for(emulator, params_in="query", transaction_ids=True)
        first = auth.get_token()
        emulator.revoke_all()
        auth._manager.renew_rejected(first)
        grant, refresh = emulator.token_requests
        assert grant.body == b""
        assert grant.headers["content-type"] == "application/x-www-form-urlencoded"
        assert set(grant.args()) == {
            "clientId",
            "grantType",
            "username",
            "password",
            "transactionId",
        }
        assert refresh.args()["grantType"] == "refresh_token"
        ids = emulator.transaction_ids  # type: ignore[attr-defined]
        assert len(ids) == 2
        assert None not in ids
        assert len(set(ids)) == 2


def test_telmai_errors() -> None:
    """403 Forbidden for a wrong tenant; 404 Not Found for a wrong auth endpoint."""
    with EMULATORS["telmai"](tenant="acme") as emulator:
        with pytest.raises(CredentialsRejectedError) as info:
            auth_for(emulator, tenant="other").get_token()
        assert (info.value.status_code, info.value.description) == (403, "Forbidden")
        with pytest.raises(TokenEndpointError) as missing:
            auth_for(emulator, auth_endpoint=emulator.base_url + "/wrong").get_token()
        assert (missing.value.status_code, missing.value.description) == (404, "Not Found")


# -- Dakota -----------------------------------------------------------------------------


@pytest.mark.parametrize("seq", [None, "FUSE-42"])
def test_dakota_wire(seq: str | None, clock: FakeClock) -> None:
    """JSON body of three fields; fuse_client_id_seq kept; JSON refresh body."""
    with EMULATORS["dakota"](fuse_client_id_seq=seq) as emulator:
        auth = auth_for(emulator, clock=clock)
        token = auth.get_token()
        assert token.extra["fuse_client_id_seq"] == seq
        assert token.access_token.count("-") == 4  # a GUID
        clock.advance(3590)
        auth.get_token()  # due: answered with the current token, renewed behind
        settle(auth)
        renewed = auth.get_token()
        grant, refresh = emulator.token_requests
        assert grant.headers["content-type"] == "application/json"
        assert json.loads(grant.body) == {
            "username": emulator.username,
            "password": emulator.password,
            "grant_type": "password",
        }
        assert json.loads(refresh.body) == {
            "grant_type": "refresh_token",
            "refresh_token": token.refresh_token,
        }
        assert renewed.extra["fuse_client_id_seq"] == seq


def test_dakota_refresh_token_expiry(clock: FakeClock, authlog: pytest.LogCaptureFixture) -> None:
    """After ``refresh_expires_in`` the refresh token is not used: straight to the password."""
    with EMULATORS["dakota"](token_lifetime=20000, refresh_token_lifetime=18000) as emulator:
        auth = auth_for(emulator, clock=clock)
        auth.get_token()
        clock.advance(19990)
        auth.get_token()
        settle(auth)  # the renewal runs in the background
        assert emulator.token_calls == {"password": 2}
        assert "refresh token has expired" in authlog.text


def test_dakota_errors() -> None:
    """The plain-text 400 and the 404 of the documentation."""
    with EMULATORS["dakota"]() as emulator:
        with pytest.raises(TokenEndpointError) as info:
            auth_for(emulator, base_url=emulator.base_url + "/nope").get_token()
        assert (info.value.status_code, info.value.description) == (404, "Could Not Find Resource")


def test_dakota_default_base_url() -> None:
    auth = PROVIDERS["dakota"](username="u", password="p")
    assert auth.token_url == "https://marketplace-as-a-service.herokuapp.com/index.php/api/oauth2"


# -- Login form -------------------------------------------------------------------------


def test_loginform_wire(clock: FakeClock) -> None:
    """grant_type=password, an empty scope, optional client fields; refresh on the same path."""
    with EMULATORS["loginform"](client_id="app", client_secret="app-secret") as emulator:
        auth = auth_for(emulator, clock=clock)
        token = auth.get_token()
        clock.advance(3590)
        auth.get_token()
        settle(auth)  # the renewal runs in the background
        grant, refresh = emulator.token_requests
        assert grant.path == "/api/auth/login"
        assert grant.form() == {
            "grant_type": "password",
            "username": emulator.username,
            "password": emulator.password,
            "scope": "",
            "client_id": "app",
            "client_secret": "app-secret",
        }
        assert refresh.path == "/api/auth/login"
        assert refresh.form()["grant_type"] == "refresh_token"
        assert refresh.form()["refresh_token"] == token.refresh_token
        assert "scope" not in refresh.form()


def test_loginform_refresh_path(clock: FakeClock) -> None:
    """``refresh_path`` sends renewals elsewhere; a refusal there falls back to the login."""
    with EMULATORS["loginform"](refresh_path="/auth/refresh") as emulator:
        auth = auth_for(emulator, clock=clock)
        auth.get_token()
        clock.advance(3590)
        auth.get_token()
        settle(auth)  # the renewal runs in the background
        assert [r.path for r in emulator.token_requests] == [
            "/api/auth/login",
            "/api/auth/refresh",
        ]
        emulator.reject_refresh = True
        clock.advance(3590)
        auth.get_token()
        settle(auth)  # the renewal runs in the background
        assert emulator.token_calls == {"password": 2, "refresh_token": 2}


def test_loginform_problem_details() -> None:
    """RFC 9457 bodies: the title is the code, the detail the words."""
    with EMULATORS["loginform"]() as emulator:
        with pytest.raises(AuthError) as info:
            auth_for(emulator, base_url=emulator.server_url + "/elsewhere").get_token()
        assert isinstance(info.value, TokenEndpointError)
        assert (info.value.status_code, info.value.error) == (404, "Not Found")
