"""Authlib's own Flask authorization server, in this process, on a free loopback port.

Authlib's grant classes do the OAuth2 (password, client credentials, refresh with
rotation, client authentication, RFC 7009 revocation, error bodies); this module only
supplies the in-memory storage its mixins ask for and a protected resource behind
Authlib's ``ResourceProtector``, and counts token calls as they arrive. Each client is
held to its registered authentication method, as Authlib's server does by default.
"""

from __future__ import annotations

import os
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
from authlib.oauth2.rfc7009 import RevocationEndpoint
from flask import Flask, jsonify
from werkzeug.serving import make_server

from . import AUTH_METHODS, PASSWORD, PLAIN_SECRET, TRICKY_SECRET, USERNAME, Client

LIFETIME = 120


@dataclass
class _Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    auth_method: str
    grant: str

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
        return method == self.auth_method if endpoint == "token" else method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        if self.grant == "password":
            return grant_type in ("password", "refresh_token")
        return grant_type == self.grant


@dataclass
class _Issued(TokenMixin):  # type: ignore[misc]
    data: dict[str, Any]
    user: str | None
    client: _Client
    issued: float = field(default_factory=time.time)
    revoked: bool = False

    def check_client(self, client: _Client) -> bool:
        return client.client_id == self.client.client_id

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

    def get_client(self) -> _Client:
        return self.client


class AuthlibServer:
    """A running Authlib Flask server (see :class:`tests.servers.RealServer`)."""

    name = "authlib"
    grants = frozenset({"client_credentials", "password"})
    rotates_refresh_tokens = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_access: dict[str, _Issued] = {}
        self._by_refresh: dict[str, _Issued] = {}
        self._calls: Counter[str] = Counter()
        self._clients = {
            client.client_id: client
            for grant in sorted(self.grants)
            for method in AUTH_METHODS
            for tricky in (False, True)
            for client in [self._make_client(grant, method, tricky)]
        }
        self.token_url = self.api_url = self.revocation_url = self.base_url = ""

    @staticmethod
    def _make_client(grant: str, method: str, tricky: bool) -> _Client:
        kind = "tricky" if tricky else "plain"
        secret = TRICKY_SECRET if tricky else PLAIN_SECRET
        return _Client(f"{grant}-{method}-{kind}", secret, method, grant)

    # -- RealServer -----------------------------------------------------------------------

    def client(self, grant: str, auth_method: str, *, tricky: bool = False) -> Client:
        made = self._clients[self._make_client(grant, auth_method, tricky).client_id]
        return Client(made.client_id, made.client_secret, made.auth_method, made.grant)

    def token_calls(self) -> Counter[str]:
        with self._lock:
            return Counter(self._calls)

    def reset_counts(self) -> None:
        with self._lock:
            self._calls.clear()

    def revoke(self, token: str, client: Client) -> None:
        import httpx

        data = {
            "token": token,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        }
        httpx.post(self.revocation_url, data=data).raise_for_status()

    # -- the app ----------------------------------------------------------------------------

    def _save(self, data: dict[str, Any], request: Any) -> None:
        issued = _Issued(dict(data), getattr(request, "user", None), request.client)
        with self._lock:
            self._by_access[data["access_token"]] = issued
            if data.get("refresh_token"):
                self._by_refresh[data["refresh_token"]] = issued

    def _app(self) -> Flask:
        app = Flask("authlib-oauth2-server")
        app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {
            "password": LIFETIME,
            "client_credentials": LIFETIME,
            "refresh_token": LIFETIME,
        }
        app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
        server = AuthorizationServer(app, query_client=self._clients.get, save_token=self._save)
        store = self

        class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

            def authenticate_user(self, username: str, password: str) -> str | None:
                return username if (username, password) == (USERNAME, PASSWORD) else None

        class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

        class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
            INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: the old refresh token dies

            def authenticate_refresh_token(self, refresh_token: str) -> _Issued | None:
                with store._lock:
                    token = store._by_refresh.get(refresh_token)
                return token if token is not None and not token.revoked else None

            def authenticate_user(self, credential: _Issued) -> str | None:
                return credential.user

            def revoke_old_credential(self, credential: _Issued) -> None:
                credential.revoked = True

        class Revocation(RevocationEndpoint):  # type: ignore[misc]
            CLIENT_AUTH_METHODS = AUTH_METHODS

            def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
                with store._lock:
                    return store._by_access.get(token_string) or store._by_refresh.get(token_string)

            def revoke_token(self, token: _Issued, request: Any) -> None:
                token.revoked = True

        server.register_grant(PasswordGrant)
        server.register_grant(ClientCredentialsGrant)
        server.register_grant(RefreshTokenGrant)
        server.register_endpoint(Revocation)

        class Validator(BearerTokenValidator):  # type: ignore[misc]
            def authenticate_token(self, token_string: str) -> _Issued | None:
                with store._lock:
                    return store._by_access.get(token_string)

        protect = ResourceProtector()
        protect.register_token_validator(Validator())

        @app.post("/oauth/token")
        def issue_token() -> Any:
            from flask import request

            with store._lock:
                store._calls[request.form.get("grant_type", "?")] += 1
            return server.create_token_response()

        @app.post("/oauth/revoke")
        def revoke() -> Any:
            return server.create_endpoint_response(Revocation.ENDPOINT_NAME)

        @app.get("/api/me")
        @protect()
        def me() -> Any:
            return jsonify(ok=True)

        return app

    def __enter__(self) -> AuthlibServer:
        self._running = self._serve()
        return self._running.__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        self._running.__exit__(*exc_info)

    @contextmanager
    def _serve(self) -> Iterator[AuthlibServer]:
        # Authlib's server refuses plain http unless told this is a test.
        previous = os.environ.get("AUTHLIB_INSECURE_TRANSPORT")
        os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
        httpd = make_server("127.0.0.1", 0, self._app(), threaded=True)
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        self.base_url = f"http://127.0.0.1:{httpd.server_port}"
        self.token_url = self.base_url + "/oauth/token"
        self.revocation_url = self.base_url + "/oauth/revoke"
        self.api_url = self.base_url + "/api/me"
        try:
            yield self
        finally:
            httpd.shutdown()
            thread.join()
            httpd.server_close()
            if previous is None:
                os.environ.pop("AUTHLIB_INSECURE_TRANSPORT", None)
            else:
                os.environ["AUTHLIB_INSECURE_TRANSPORT"] = previous
