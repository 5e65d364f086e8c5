"""examples/weather_sdk.py (README.rst, "Inside your SDK") against the package's emulator.

The tests an SDK author would write: the emulator is a real token endpoint and a real
API on a loopback port, so the SDK's own httpx clients make real requests.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from authplug import OAuth2PasswordAuth
from authplug.testing import OAuth2Emulator, asettle, settle

EXAMPLE = Path(__file__).parents[2] / "examples" / "weather_sdk.py"
CLIENT_ID = "weather-sdk"
CLIENT_SECRET = "weather-secret"


def _load(path: Path) -> ModuleType:
    """Import a file that is not in a package (examples/ is not installed)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


weather_sdk = _load(EXAMPLE)


@pytest.fixture
def emulator() -> Iterator[OAuth2Emulator]:
    """A token endpoint that knows the SDK's client, and an API behind it."""
    with OAuth2Emulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as running:
        yield running


def _settings(emulator: OAuth2Emulator) -> dict[str, str]:
    """What ``from_settings`` needs, pointed at the emulator."""
    return {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "token_url": emulator.token_url,
        "base_url": emulator.api_url(""),
    }


def _password_auth(emulator: OAuth2Emulator) -> OAuth2PasswordAuth:
    """An auth object built by the SDK's user (here, the emulator's user), not the SDK."""
    return OAuth2PasswordAuth(
        token_url=emulator.token_url,
        username=emulator.username,
        password=emulator.password,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )


# -- sync ----------------------------------------------------------------------------


def test_sync_requests_share_one_token(emulator: OAuth2Emulator) -> None:
    with weather_sdk.WeatherClient.from_settings(**_settings(emulator)) as weather:
        for city in ("Paris", "Oslo", "São Paulo"):
            assert weather.forecast(city)["path"] == "/api/forecast"
        settle(weather.auth)
    assert emulator.token_calls == {"client_credentials": 1}
    assert [hit.status for hit in emulator.api_log] == [200, 200, 200]
    assert len({hit.authorization for hit in emulator.api_log}) == 1


def test_sync_revoked_token_is_renewed_and_replayed(emulator: OAuth2Emulator) -> None:
    with weather_sdk.WeatherClient.from_settings(**_settings(emulator)) as weather:
        weather.forecast("Paris")
        emulator.revoke_all()  # the API now refuses the token the client holds
        assert weather.forecast("Paris")["ok"] is True
        settle(weather.auth)
    assert emulator.token_calls == {"client_credentials": 2}
    first, refused, replayed = emulator.api_log
    assert (first.status, refused.status, replayed.status) == (200, 401, 200)
    assert refused.authorization == first.authorization != replayed.authorization


def test_sync_auth_headers_carry_the_current_token(emulator: OAuth2Emulator) -> None:
    with weather_sdk.WeatherClient.from_settings(**_settings(emulator)) as weather:
        headers = weather.auth_headers()  # fetches the token: no API request yet
        assert emulator.api_calls == 0
        token = weather.auth.token
        assert token is not None
        assert headers == {"authorization": f"Bearer {token.access_token}"}
        # The headers open a connection the SDK makes itself (a websocket handshake).
        assert httpx.get(emulator.api_url("/live"), headers=headers).status_code == 200
        weather.forecast("Paris")  # reuses the token
        emulator.revoke_all()
        weather.forecast("Paris")  # refused, renewed, replayed
        renewed = weather.auth_headers()
        assert renewed != headers
        assert renewed == {"authorization": emulator.api_log[-1].authorization}
        settle(weather.auth)
    assert emulator.token_calls == {"client_credentials": 2}


def test_a_given_auth_object_serves_several_clients(emulator: OAuth2Emulator) -> None:
    """An auth object the SDK's user hands in: two clients, one after the other, one token."""
    auth = _password_auth(emulator)
    with auth:
        base_url = emulator.api_url("")
        with weather_sdk.WeatherClient(auth, base_url=base_url) as first:
            first.forecast("Paris")
        with weather_sdk.WeatherClient(auth, base_url=base_url) as second:
            second.forecast("Oslo")
        settle(auth)
    assert emulator.token_calls == {"password": 1}


# -- async (pytest-asyncio, asyncio_mode = "auto") -------------------------------------


async def test_async_requests_share_one_token(emulator: OAuth2Emulator) -> None:
    async with weather_sdk.AsyncWeatherClient.from_settings(**_settings(emulator)) as weather:
        for city in ("Paris", "Oslo", "São Paulo"):
            assert (await weather.forecast(city))["path"] == "/api/forecast"
        await asettle(weather.auth)
    assert emulator.token_calls == {"client_credentials": 1}
    assert [hit.status for hit in emulator.api_log] == [200, 200, 200]


async def test_async_revoked_token_is_renewed_and_replayed(emulator: OAuth2Emulator) -> None:
    async with weather_sdk.AsyncWeatherClient.from_settings(**_settings(emulator)) as weather:
        await weather.forecast("Paris")
        emulator.revoke_all()
        assert (await weather.forecast("Paris"))["ok"] is True
        await asettle(weather.auth)
    assert emulator.token_calls == {"client_credentials": 2}
    assert [hit.status for hit in emulator.api_log] == [200, 401, 200]


async def test_async_auth_headers_carry_the_current_token(emulator: OAuth2Emulator) -> None:
    async with weather_sdk.AsyncWeatherClient.from_settings(**_settings(emulator)) as weather:
        headers = await weather.auth_headers()
        token = weather.auth.token
        assert token is not None
        assert headers == {"authorization": f"Bearer {token.access_token}"}
        await weather.forecast("Paris")
        assert emulator.api_log[-1].authorization == headers["authorization"]
        await asettle(weather.auth)
    assert emulator.token_calls == {"client_credentials": 1}


async def test_sync_and_async_clients_share_one_auth(emulator: OAuth2Emulator) -> None:
    auth = _password_auth(emulator)
    async with auth:
        base_url = emulator.api_url("")
        async with weather_sdk.AsyncWeatherClient(auth, base_url=base_url) as weather:
            await weather.forecast("Paris")
        with weather_sdk.WeatherClient(auth, base_url=base_url) as weather_sync:
            weather_sync.forecast("Paris")
        await asettle(auth)
    assert emulator.token_calls == {"password": 1}


# -- with the pytest plugin's fixtures ---------------------------------------------------


def test_with_the_plugin_fixture(oauth2_emulator: OAuth2Emulator) -> None:
    """``oauth2_emulator`` (registered by installing authplug[testing]): no set-up code.

    Its API serves ``oauth2_emulator.api_url(...)``; ``auth_kwargs()`` carries its
    default credentials (a user and a client) for the password grant.
    """
    auth = OAuth2PasswordAuth(**oauth2_emulator.auth_kwargs())
    with weather_sdk.WeatherClient(auth, base_url=oauth2_emulator.api_url("")) as weather:
        assert weather.forecast("Paris")["ok"] is True
        oauth2_emulator.revoke_all()
        assert weather.forecast("Paris")["ok"] is True
        settle(auth)
    # The password grant gets a refresh token: the renewal uses it.
    assert oauth2_emulator.token_calls == {"password": 1, "refresh_token": 1}
