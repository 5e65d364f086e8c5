"""The emulator's discovery documents: RFC 8414 metadata, at OIDC's place and RFC 8414's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._server import Response

if TYPE_CHECKING:
    import threading

    from ._server import Request

__all__ = ["ServerMetadata"]


class ServerMetadata:
    """Serves the metadata document (``issuer=`` discovery), or a broken one on demand."""

    if TYPE_CHECKING:
        _lock: threading.Lock
        base_path: str

        @property
        def issuer(self) -> str: ...
        @property
        def token_url(self) -> str: ...
        @property
        def revocation_url(self) -> str: ...
        def grants(self) -> tuple[str, ...]: ...
        def login_metadata(self) -> dict[str, Any]: ...
        def not_found(self) -> Response: ...

    def _init_metadata(self) -> None:
        #: Where the metadata document is served (``issuer=`` discovery): "openid" for
        #: ``{issuer}/.well-known/openid-configuration``, "oauth" for RFC 8414's place.
        self.metadata_at: tuple[str, ...] = ("openid", "oauth")
        #: Served in place of the metadata document when set (a broken answer, say).
        self.metadata_answer: Response | None = None
        self.metadata_calls = 0

    def metadata(self) -> dict[str, Any]:
        """The authorization server metadata (RFC 8414) of this emulator."""
        return {
            "issuer": self.issuer,
            "token_endpoint": self.token_url,
            "revocation_endpoint": self.revocation_url,
            "grant_types_supported": list(self.grants()),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            **self.login_metadata(),
        }

    def _metadata_route(self, request: Request) -> Response | None:
        """The answer when ``request`` asks for a metadata document, else None."""
        well_known = "/.well-known/"
        if request.path == self.base_path + well_known + "openid-configuration":
            style = "openid"
        elif request.path == well_known + "oauth-authorization-server" + self.base_path:
            style = "oauth"
        else:
            return None
        with self._lock:
            self.metadata_calls += 1
            answer = self.metadata_answer
        if style not in self.metadata_at:
            return self.not_found()
        if answer is not None:
            return answer
        return Response.json(200, self.metadata())
