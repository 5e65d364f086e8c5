"""The emulator's server lifecycle: start, stop, and the URLs it serves at."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ._server import LoopbackServer

if TYPE_CHECKING:
    from ._server import Request, Response

__all__ = ["ServerLifecycle"]

_E = TypeVar("_E", bound="ServerLifecycle")


class ServerLifecycle:
    """Serving on a free loopback port, and where each endpoint is then."""

    if TYPE_CHECKING:
        _server: LoopbackServer | None
        username: str
        password: str
        client_id: str | None
        client_secret: str | None
        base_path: str
        token_path: str
        api_prefix: str
        revocation_path: str

        def handle(self, request: Request) -> Response: ...

    def start(self: _E) -> _E:
        """Serve on a free loopback port (nothing more when already serving).

        Returns:
            The emulator itself.
        """
        if self._server is None:
            self._server = LoopbackServer(self.handle, ssl_context=self.server_ssl_context())
            self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving; :meth:`start` may serve again, on another port."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self: _E) -> _E:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def server_ssl_context(self) -> Any:
        """None: plain http. The Mogoplus emulator serves TLS."""
        return None

    @property
    def server_url(self) -> str:
        """``scheme://127.0.0.1:port``; a RuntimeError before :meth:`start`."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return self._server.url

    @property
    def base_url(self) -> str:
        """What the provider's documentation calls the base URL."""
        return self.server_url + self.base_path

    @property
    def token_url(self) -> str:
        """The token endpoint's URL."""
        return self.base_url + self.token_path

    def api_url(self, path: str = "/resource") -> str:
        """The URL of ``path`` on the protected API.

        Args:
            path: any path; ``"/deny"`` refuses every token and ``"/redirect?to=URL"``
                redirects. ``""`` gives the API's base URL.

        Returns:
            The URL.
        """
        return self.base_url + self.api_prefix + path

    def endpoint_kwargs(self) -> dict[str, Any]:
        """How the matching auth class is told where the token endpoint is."""
        return {"token_url": self.token_url}

    def auth_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the matching auth class, pointed at this emulator."""
        kwargs: dict[str, Any] = self.endpoint_kwargs()
        kwargs.update(username=self.username, password=self.password)
        if self.client_id is not None:
            kwargs["client_id"] = self.client_id
        if self.client_secret is not None:
            kwargs["client_secret"] = self.client_secret
        return kwargs

    @property
    def issuer(self) -> str:
        """The issuer identifier its metadata names (``issuer=`` of the auth classes)."""
        return self.base_url

    @property
    def revocation_url(self) -> str:
        """The revocation endpoint's URL (RFC 7009)."""
        return self.base_url + self.revocation_path
