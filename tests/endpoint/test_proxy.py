"""``proxy=``: token calls through the proxy given, else the environment's, as before.

The emulator doubles as the HTTP proxy: it answers absolute-form requests by their path.
The token URL names a loopback port where nothing listens, so a token call that did not
go through the proxy fails.
"""

from __future__ import annotations

import asyncio
import base64
import socket

import httpx
import pytest
import requests

from authplug import ConfigurationError, OAuth2PasswordAuth, TokenEndpointError
from authplug.testing import OAuth2Emulator


@pytest.fixture
def nowhere() -> str:
    """A loopback origin where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://localhost:{port}"


@pytest.fixture
def no_env_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _auth(emulator: OAuth2Emulator, token_url: str, **options: object) -> OAuth2PasswordAuth:
    return OAuth2PasswordAuth(
        token_url=token_url,
        username=emulator.username,
        password=emulator.password,
        client_id=emulator.client_id,
        client_secret=emulator.client_secret,
        retries=0,
        **options,  # type: ignore[arg-type]
    )


def test_token_calls_go_through_the_proxy_given(
    emulator: OAuth2Emulator, nowhere: str, no_env_proxy: None
) -> None:
    """Sync and async token calls reach the token endpoint through ``proxy=``, with the
    proxy's credentials in Proxy-Authorization; the password shows nowhere."""
    proxy = emulator.server_url.replace("http://", "http://proxy-user:pr%40xy-pw@")
    auth = _auth(emulator, nowhere + "/token", proxy=proxy)
    with requests.Session() as session:
        session.auth = auth
        assert session.get(emulator.api_url(), timeout=10).status_code == 200
    emulator.revoke_all()

    async def renew() -> int:
        async with httpx.AsyncClient(auth=auth) as client:
            return (await client.get(emulator.api_url())).status_code

    assert asyncio.run(renew()) == 200
    assert emulator.token_calls == {"password": 1, "refresh_token": 1}
    expected = "Basic " + base64.b64encode(b"proxy-user:pr@xy-pw").decode()
    for request in emulator.token_requests:
        assert request.headers["proxy-authorization"] == expected
    for shown in (repr(auth), repr(auth.options), repr(auth._client)):
        assert "pr@xy-pw" not in shown
        assert "pr%40xy-pw" not in shown


def test_without_proxy_the_environment_decides(
    emulator: OAuth2Emulator, nowhere: str, no_env_proxy: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ``proxy=``: the environment's proxy is used (here the emulator); a ``proxy=``
    given wins over the environment's (here a dead one)."""
    monkeypatch.setenv("HTTP_PROXY", emulator.server_url)
    assert _auth(emulator, nowhere + "/token").get_token().access_token
    monkeypatch.setenv("HTTP_PROXY", nowhere)
    with pytest.raises(TokenEndpointError):
        _auth(emulator, nowhere + "/token").get_token()
    assert _auth(emulator, nowhere + "/token", proxy=emulator.server_url).get_token()
    assert emulator.token_calls == {"password": 2}


@pytest.mark.parametrize(
    "proxy", ["ftp://proxy-user:hunter2@proxy.example:21", "http://", "proxy.example", ""]
)
def test_a_proxy_that_is_not_an_http_url_is_refused(emulator: OAuth2Emulator, proxy: str) -> None:
    with pytest.raises(ConfigurationError, match="proxy=") as info:
        _auth(emulator, emulator.token_url, proxy=proxy)
    assert "hunter2" not in str(info.value)
