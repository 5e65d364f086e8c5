"""A standards OAuth2 server nobody here wrote: Authlib's Flask authorization server.

Authlib's grant classes do the OAuth2 (password, client credentials, refresh with
rotation, client authentication, error bodies); this module only supplies the
in-memory storage its mixins ask for, and a protected resource behind Authlib's
``ResourceProtector``. Served by werkzeug on a free loopback port.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from flask import Flask, jsonify
from werkzeug.serving import make_server

USERNAME, PASSWORD = "alice", "wonderland-pw"
CLIENT_ID, CLIENT_SECRET = "std-client", "std-client-secret"


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return "https://client.invalid/cb"

    def get_allowed_scope(self, scope: str) -> str:
        allowed = {"read", "write"}
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret == self.client_secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("password", "client_credentials", "refresh_token")


@dataclass
class IssuedToken(TokenMixin):  # type: ignore[misc]
    data: dict[str, Any]
    user: str | None
    issued: float = field(default_factory=time.time)
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == CLIENT_ID

    def get_scope(self) -> str:
        return str(self.data.get("scope", ""))

    def get_expires_in(self) -> int:
        return int(self.data.get("expires_in", 0))

    def is_expired(self) -> bool:
        return time.time() > self.issued + self.get_expires_in()

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str | None:
        return self.user

    def get_client(self) -> Client:
        return Client()


class Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_access: dict[str, IssuedToken] = {}
        self.by_refresh: dict[str, IssuedToken] = {}
        self.calls: Counter[str] = Counter()

    def revoke_all(self) -> None:
        with self.lock:
            for token in self.by_access.values():
                token.revoked = True


def build_app(store: Store) -> Flask:
    app = Flask("standard-oauth2-server")
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"password": 120, "client_credentials": 120}
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True

    def save_token(data: dict[str, Any], request: Any) -> None:
        user = getattr(request, "user", None)
        issued = IssuedToken(dict(data), user)
        with store.lock:
            store.by_access[data["access_token"]] = issued
            if data.get("refresh_token"):
                store.by_refresh[data["refresh_token"]] = issued

    server = AuthorizationServer(
        app, query_client=lambda cid: Client() if cid == CLIENT_ID else None, save_token=save_token
    )

    class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

        def authenticate_user(self, username: str, password: str) -> str | None:
            return username if (username, password) == (USERNAME, PASSWORD) else None

    class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

    class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
        INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: the old refresh token dies

        def authenticate_refresh_token(self, refresh_token: str) -> IssuedToken | None:
            with store.lock:
                token = store.by_refresh.get(refresh_token)
            return token if token is not None and not token.revoked else None

        def authenticate_user(self, credential: IssuedToken) -> str | None:
            return credential.user

        def revoke_old_credential(self, credential: IssuedToken) -> None:
            credential.revoked = True

    server.register_grant(PasswordGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(RefreshTokenGrant)

    class Validator(BearerTokenValidator):  # type: ignore[misc]
        def authenticate_token(self, token_string: str) -> IssuedToken | None:
            with store.lock:
                return store.by_access.get(token_string)

    protect = ResourceProtector()
    protect.register_token_validator(Validator())

    @app.post("/oauth/token")
    def issue_token() -> Any:
        from flask import request

        store.calls[request.form.get("grant_type", "?")] += 1
        return server.create_token_response()

    @app.get("/api/me")
    @protect()
    def me() -> Any:
        return jsonify(ok=True)

    return app


@contextmanager
def standard_server() -> Iterator[tuple[str, Store]]:
    """Yields the base URL and the store (for its counters and revocation)."""
    store = Store()
    httpd = make_server("127.0.0.1", 0, build_app(store), threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", store
    finally:
        httpd.shutdown()
        thread.join()
        httpd.server_close()
