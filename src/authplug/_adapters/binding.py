"""What ties one auth object to the clients: its :class:`Binding`, handed to each driver.

An auth object's entry points (``__call__``, ``sync_auth_flow``, ``async_auth_flow``)
call the binding's methods, which call the client's driver with the binding itself: the
token manager, the statuses that renew, the plain-http warner and aiohttp's anchor travel
as one value. Importing this module loads the drivers of requests, httpx and aiohttp
(not niquests': the auth object imports it when a niquests request comes), so it is
imported by the first construction of an auth object, not by ``import authplug``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Generator
from typing import TYPE_CHECKING

from . import aiohttp_middleware, httpx_flow, requests_hook
from .aiohttp_middleware import Anchor

if TYPE_CHECKING:
    import aiohttp
    import httpx
    import requests

    from .._net import PlainHttpWarner
    from .._renew.manager import TokenManager

__all__ = ["Binding"]


class Binding:
    """One auth object's token manager, refresh statuses and warner, for the drivers.

    Attributes:
        manager: gets, renews and is told about replays of the token.
        codes: the API statuses that renew the token and replay the request.
        warner: warns once per origin when the token goes over plain http.
        anchor: where aiohttp's driver may send the token when aiohttp gives no chain of
            redirect hops.
    """

    __slots__ = ("anchor", "codes", "manager", "warner")

    def __init__(
        self, manager: TokenManager, codes: Collection[int], warner: PlainHttpWarner
    ) -> None:
        self.manager = manager
        self.codes = codes
        self.warner = warner
        self.anchor = Anchor()

    def requests(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """requests' (and niquests' sync ``Session``'s) auth hook."""
        return requests_hook.apply(self, request)

    def httpx_sync(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        """httpx's (and httpx2's) auth flow for ``Client``."""
        return httpx_flow.sync_flow(self, request)

    def httpx_async(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """httpx's (and httpx2's) auth flow for ``AsyncClient``."""
        return httpx_flow.async_flow(self, request)

    def aiohttp(
        self,
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> Awaitable[aiohttp.ClientResponse]:
        """aiohttp's client middleware."""
        return aiohttp_middleware.middleware(self, request, handler)
