"""A small SDK for an imaginary Weather API, authenticated by authplug.

Copy it into your own SDK and rename. What it shows:

- ``WeatherClient`` (sync, on ``httpx.Client``) and ``AsyncWeatherClient`` (on
  ``httpx.AsyncClient``, under asyncio or trio) take any authplug auth object, or build
  one from their own settings with ``from_settings()``;
- one auth object may serve several clients, sync and async, with one token;
- ``close()`` / ``aclose()`` and ``with`` / ``async with`` release the HTTP connections,
  and the auth object too when the client built it;
- ``auth_headers()`` gives the token to connections httpx does not make: a websocket
  handshake, gRPC call metadata.

Tested against authplug's emulator by ``tests/system/test_example_sdk.py``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, TypeVar

import httpx

from authplug import BaseAuth, OAuth2ClientCredentialsAuth

__all__ = ["AsyncWeatherClient", "WeatherClient"]

BASE_URL = "https://api.weather.example/v1"
TOKEN_URL = "https://login.weather.example/oauth/token"
USER_AGENT = "weather-sdk/1.0"

JSON = dict[str, Any]

_C = TypeVar("_C", bound="_WeatherBase")


class _WeatherBase:
    """What both clients share: the settings, and who closes the auth object."""

    def __init__(self, auth: BaseAuth, *, base_url: str, timeout: float) -> None:
        self.auth = auth
        self.base_url = base_url
        self.timeout = timeout
        # An auth object handed in stays its owner's: other clients may share it.
        self._owns_auth = False

    @classmethod
    def from_settings(
        cls: type[_C],
        *,
        client_id: str,
        client_secret: str,
        token_url: str = TOKEN_URL,
        base_url: str = BASE_URL,
        scope: str = "forecast:read",
        timeout: float = 10.0,
    ) -> _C:
        """A client that logs in with the client credentials grant, and owns its auth."""
        auth = OAuth2ClientCredentialsAuth(
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            scope=scope,
        )
        client = cls(auth, base_url=base_url, timeout=timeout)
        client._owns_auth = True
        return client


class WeatherClient(_WeatherBase):
    """The Weather API, sync. ``with WeatherClient.from_settings(...) as weather: ...``"""

    def __init__(self, auth: BaseAuth, *, base_url: str = BASE_URL, timeout: float = 10.0) -> None:
        super().__init__(auth, base_url=base_url, timeout=timeout)
        self._http = httpx.Client(
            base_url=base_url, auth=auth, timeout=timeout, headers={"user-agent": USER_AGENT}
        )

    def forecast(self, city: str, *, days: int = 3) -> JSON:
        """The forecast for ``city``, as the API's JSON."""
        response = self._http.get("/forecast", params={"city": city, "days": days})
        response.raise_for_status()
        data: JSON = response.json()
        return data

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header for a connection httpx does not make.

        A websocket: ``websockets.sync.client.connect(url, additional_headers=...)``.
        gRPC metadata (lower-case keys): ``stub.Watch(request, metadata=[*h.items()])``.
        The token is fetched or renewed if needed.
        """
        token = self.auth.get_token()
        return {"authorization": f"Bearer {token.access_token}"}

    def close(self) -> None:
        self._http.close()
        if self._owns_auth:
            self.auth.close()  # stops background renewals

    def __enter__(self) -> WeatherClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncWeatherClient(_WeatherBase):
    """The Weather API, async. ``async with AsyncWeatherClient.from_settings(...) as w:``"""

    def __init__(self, auth: BaseAuth, *, base_url: str = BASE_URL, timeout: float = 10.0) -> None:
        super().__init__(auth, base_url=base_url, timeout=timeout)
        self._http = httpx.AsyncClient(
            base_url=base_url, auth=auth, timeout=timeout, headers={"user-agent": USER_AGENT}
        )

    async def forecast(self, city: str, *, days: int = 3) -> JSON:
        """The forecast for ``city``, as the API's JSON."""
        response = await self._http.get("/forecast", params={"city": city, "days": days})
        response.raise_for_status()
        data: JSON = response.json()
        return data

    async def auth_headers(self) -> dict[str, str]:
        """The Authorization header for a connection httpx does not make.

        A websocket: ``websockets.connect(url, additional_headers=await w.auth_headers())``.
        gRPC metadata (lower-case keys): ``await stub.Watch(request, metadata=[*h.items()])``.
        The token is fetched or renewed if needed, without blocking the event loop.
        """
        token = await self.auth.aget_token()
        return {"authorization": f"Bearer {token.access_token}"}

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._owns_auth:
            await self.auth.aclose()  # also cancels this loop's token call under way

    async def __aenter__(self) -> AsyncWeatherClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
