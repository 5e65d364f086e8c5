"""Emulators of the five providers, each speaking its documented wire format.

Every one is an :class:`~authplug.testing.OAuth2Emulator` that overrides only what its
provider does differently: where the parameters are read from, the answer's shape, the
statuses and bodies of its errors.
"""

from __future__ import annotations

import json
import secrets
import shutil
import ssl
import tempfile
import uuid
import weakref
from pathlib import Path
from typing import Any, ClassVar

from ._emulator import OAuth2Emulator
from ._server import Request, Response

__all__ = [
    "DakotaEmulator",
    "LoginFormEmulator",
    "MogoplusEmulator",
    "SemansysEmulator",
    "TelmaiEmulator",
]


class SemansysEmulator(OAuth2Emulator):
    """Semansys's OpenID Connect token endpoint: ``/connect/token``, RFC 6749 errors.

    A wrong client is 401 ``invalid_client``; a wrong user is 403 (user authentication
    failed); the answer carries ``scope: "read write"``.

    Args:
        **options: any argument of :class:`OAuth2Emulator`; ``username`` defaults to
            ``demo@example.com``.
    """

    name = "semansys"
    token_path = "/connect/token"

    def __init__(self, **options: Any) -> None:
        options.setdefault("username", "demo@example.com")
        super().__init__(**options)

    def grants(self) -> tuple[str, ...]:
        return ("password", "refresh_token")

    def reject_user(self) -> Response:
        return self.error(403, "invalid_grant", "user authentication failed")

    def token_body(
        self, access: str, refresh: str | None, lifetime: float | None
    ) -> dict[str, Any]:
        body = super().token_body(access, refresh, lifetime)
        body["scope"] = "read write"
        return body


class MogoplusEmulator(OAuth2Emulator):
    """Mogoplus: HTTPS with a client certificate, ``grant_type`` in the query string.

    Certificates are made on the fly with ``trustme``: ``ca_file`` is what clients
    verify the server with, ``client_cert`` the ``(certfile, keyfile)`` pair they
    present. A token call without a client certificate signed by this CA is refused.

    With ``tls_client_auth=True`` the certificate is the client's only credential
    (RFC 8705 §2.1.2, ``tls_client_auth_san_email``): the form carries ``client_id``
    alone, a ``client_secret`` is refused, and the certificate's e-mail address must be
    :attr:`client_email` (:meth:`issue_client_cert` makes others, to prove it).

    Args:
        tls_client_auth: the certificate is the client's only credential.
        **options: any argument of :class:`OAuth2Emulator`. No refresh tokens are
            issued, and tokens live 35999 seconds, unless given.

    Raises:
        ImportError: trustme is not installed (``pip install 'authplug[testing]'``).

    Attributes:
        tls_client_auth: whether the certificate is the client's only credential.
        ca_file: the CA certificate (PEM file) clients verify the server with.
        client_cert: the client's ``(certfile, keyfile)`` pair.
    """

    name = "mogoplus"
    token_path = "/api/v1/oauth2/token"
    #: The e-mail address the client's certificate names.
    client_email = "mogoplus-client@example.com"

    def __init__(self, *, tls_client_auth: bool = False, **options: Any) -> None:
        try:
            import trustme
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "the Mogoplus emulator needs trustme: pip install 'authplug[testing]'"
            ) from exc
        self.tls_client_auth = tls_client_auth
        options.setdefault("client_id", "mogoplus-client")
        options.setdefault("client_secret", None if tls_client_auth else "mogoplus-secret")
        options.setdefault("token_lifetime", 35999)
        options.setdefault("issue_refresh_tokens", False)
        super().__init__(**options)
        self._ca = trustme.CA()
        self._server_cert = self._ca.issue_cert("127.0.0.1", "localhost")
        self._folder = folder = Path(tempfile.mkdtemp(prefix="authplug-mogoplus-"))
        weakref.finalize(self, shutil.rmtree, folder, True)
        self.ca_file = str(folder / "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_file)
        self.client_cert = self.issue_client_cert(self.client_email)

    def issue_client_cert(self, email: str) -> tuple[str, str]:
        """A client certificate for ``email`` from this emulator's CA: (certfile, keyfile).

        Args:
            email: the e-mail address the certificate names.

        Returns:
            The paths of the certificate and key files (removed with the emulator).
        """
        issued = self._ca.issue_cert(email)
        stem = self._folder / f"client-{secrets.token_hex(4)}"
        certfile, keyfile = f"{stem}.pem", f"{stem}.key"
        issued.cert_chain_pems[0].write_to_path(certfile)
        issued.private_key_pem.write_to_path(keyfile)
        return certfile, keyfile

    def server_ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(context)
        self._ca.configure_trust(context)
        # The handshake asks for a client certificate (and verifies one that is shown);
        # the token endpoint refuses a call that showed none.
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSLContext trusting this emulator (for API calls with httpx)."""
        return ssl.create_default_context(cafile=self.ca_file)

    def auth_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "token_url": self.token_url,
            "client_id": self.client_id,
            "cert": self.client_cert,
            "verify": self.ca_file,
        }
        if self.tls_client_auth:
            kwargs["client_auth"] = "tls_client_auth"
        else:
            kwargs["client_secret"] = self.client_secret
        return kwargs

    def grants(self) -> tuple[str, ...]:
        return ("client_credentials",)

    def read_params(self, request: Request) -> dict[str, str] | Response:
        params = super().read_params(request)
        if isinstance(params, Response):
            return params
        # The grant type travels in the query string, not in the form.
        params.pop("grant_type", None)
        query = request.args()
        if "grant_type" in query:
            params["grant_type"] = query["grant_type"]
        return params

    def check_request(self, request: Request, params: dict[str, str]) -> Response | None:
        if request.client_cert is None:
            return self.error(401, "invalid_client", "a client certificate is required")
        if request.headers.get("accept") != "application/json":
            return self.error(400, "invalid_request", "Accept: application/json is required")
        if self.tls_client_auth:
            names = request.client_cert.get("subjectAltName", ())
            if ("email", self.client_email) not in names:
                return self.error(401, "invalid_client", "the certificate is not this client's")
            if "client_secret" in params or "authorization" in request.headers:
                return self.error(
                    400, "invalid_request", "tls_client_auth: a client secret was sent"
                )
        return None

    def reject_grant_type(self, grant: str) -> Response:
        return Response.json(
            400,
            {
                "error_description": "OAuth 2.0 Parameter: grant_type",
                "error": "unsupported_grant_type",
                "error_uri": "https://datatracker.ietf.org/doc/html/rfc6749#section-5.2",
            },
        )

    def reject_client(self) -> Response:
        return Response.json(401, {"error": "invalid_client"})

    def new_access_token(self) -> str:
        # JWT-looking, as Mogoplus's are.
        return "eyJraWQiOi" + super().new_access_token().replace("-", "")

    def token_body(
        self, access: str, refresh: str | None, lifetime: float | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer"}
        if lifetime is not None:
            body["expires_in"] = lifetime
        return body


class TelmaiEmulator(OAuth2Emulator):
    """Telmai: camelCase parameters (query string or form), ``expires``, ``description``.

    Records the ``transactionId`` of each token call in ``transaction_ids``; a wrong
    ``tenant`` is 403 Forbidden, a wrong user 401 Unauthorized, anything else 404.

    Args:
        tenant: the tenant every token call must name, if any.
        **options: any argument of :class:`OAuth2Emulator`.

    Attributes:
        tenant: the tenant every token call must name, or None.
        transaction_ids: the ``transactionId`` of each token call (None when absent),
            in order.
    """

    name = "telmai"
    token_path = "/auth/token"
    _NAMES: ClassVar[dict[str, str]] = {
        "clientId": "client_id",
        "grantType": "grant_type",
        "refreshToken": "refresh_token",
        "username": "username",
        "password": "password",
        "tenant": "tenant",
        "transactionId": "transaction_id",
    }

    def __init__(self, *, tenant: str | None = None, **options: Any) -> None:
        options.setdefault("client_id", "telmai-client")
        options.setdefault("client_secret", None)
        super().__init__(**options)
        self.tenant = tenant
        self.transaction_ids: list[str | None] = []

    def endpoint_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"auth_endpoint": self.base_url}
        if self.tenant is not None:
            kwargs["tenant"] = self.tenant
        return kwargs

    def grants(self) -> tuple[str, ...]:
        return ("password", "refresh_token")

    def read_params(self, request: Request) -> dict[str, str] | Response:
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return self.error(400, "", "Bad Request")
        raw = {**request.args(), **(request.form() if request.body else {})}
        params = {self._NAMES[k]: v for k, v in raw.items() if k in self._NAMES}
        with self._lock:
            self.transaction_ids.append(params.pop("transaction_id", None))
        return params

    def check_request(self, request: Request, params: dict[str, str]) -> Response | None:
        if self.tenant is not None and params.get("tenant") != self.tenant:
            return self.error(403, "", "Forbidden")
        return None

    def error(self, status: int, code: str, description: str) -> Response:
        return Response.json(status, {"description": description})

    def reject_client(self) -> Response:
        return self.error(401, "", "Unauthorized")

    def reject_user(self) -> Response:
        return self.error(401, "", "Unauthorized")

    def reject_refresh_token(self) -> Response:
        return self.error(401, "", "Unauthorized")

    def reject_grant_type(self, grant: str) -> Response:
        return self.error(400, "", "Bad Request")

    def not_found(self) -> Response:
        return self.error(404, "", "Not Found")

    def token_body(
        self, access: str, refresh: str | None, lifetime: float | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer"}
        if lifetime is not None:
            body["expires"] = lifetime
        if refresh is not None:
            body["refresh_token"] = refresh
        return body


class DakotaEmulator(OAuth2Emulator):
    """Dakota: a JSON body in and out, GUID tokens, ``refresh_expires_in``.

    A wrong user is 400 with the plain-text message of the documentation; an unknown
    path is 404 "Could Not Find Resource". ``fuse_client_id_seq`` is in every answer.

    Args:
        refresh_token_lifetime: seconds each refresh token lives
            (``refresh_expires_in``).
        fuse_client_id_seq: the value of ``fuse_client_id_seq`` in each answer.
        **options: any argument of :class:`OAuth2Emulator`.

    Attributes:
        refresh_token_lifetime: seconds each refresh token lives.
        fuse_client_id_seq: the value of ``fuse_client_id_seq`` in each answer.
    """

    name = "dakota"
    token_path = "/index.php/api/oauth2"

    def __init__(
        self,
        *,
        refresh_token_lifetime: float = 18000,
        fuse_client_id_seq: str | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("client_id", None)
        options.setdefault("client_secret", None)
        super().__init__(**options)
        self.refresh_token_lifetime = refresh_token_lifetime
        self.fuse_client_id_seq = fuse_client_id_seq

    def endpoint_kwargs(self) -> dict[str, Any]:
        return {"base_url": self.base_url}

    def grants(self) -> tuple[str, ...]:
        return ("password", "refresh_token")

    def refresh_lifetime(self) -> float | None:
        return self.refresh_token_lifetime

    def read_params(self, request: Request) -> dict[str, str] | Response:
        if not request.headers.get("content-type", "").startswith("application/json"):
            return Response.text(400, "Please provide correct username and password")
        try:
            data = json.loads(request.body)
        except ValueError:
            return Response.text(400, "Please provide correct username and password")
        if not isinstance(data, dict):
            return Response.text(400, "Please provide correct username and password")
        return {str(k): str(v) for k, v in data.items()}

    def reject_user(self) -> Response:
        return Response.text(400, "Please provide correct username and password")

    def reject_refresh_token(self) -> Response:
        return Response.json(400, {"message": "Refresh token is invalid or expired"})

    def reject_grant_type(self, grant: str) -> Response:
        return Response.text(400, "Please provide correct username and password")

    def not_found(self) -> Response:
        return Response.text(404, "Could Not Find Resource")

    def new_access_token(self) -> str:
        return str(uuid.uuid4()).upper()

    def new_refresh_token(self) -> str:
        return str(uuid.uuid4()).upper()

    def token_body(
        self, access: str, refresh: str | None, lifetime: float | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"access_token": access}
        if lifetime is not None:
            body["expires_in"] = lifetime
        if refresh is not None:
            body["refresh_token"] = refresh
            body["refresh_expires_in"] = self.refresh_token_lifetime
        body["fuse_client_id_seq"] = self.fuse_client_id_seq
        return body


class LoginFormEmulator(OAuth2Emulator):
    """A FastAPI-style ``{base}/auth/login`` with RFC 9457 problem-details errors.

    The base URL ends in ``/api`` as in the documentation's example. ``refresh_path``
    (e.g. ``"/auth/refresh"``) serves refresh grants on a separate path.

    Args:
        refresh_path: the separate path of refresh grants, if any.
        **options: any argument of :class:`OAuth2Emulator`.
    """

    name = "loginform"
    base_path = "/api"
    token_path = "/auth/login"
    api_prefix = "/v1"

    def __init__(self, *, refresh_path: str | None = None, **options: Any) -> None:
        options.setdefault("client_id", None)
        options.setdefault("client_secret", None)
        super().__init__(**options)
        self.refresh_path = refresh_path

    def endpoint_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"base_url": self.base_url}
        if self.refresh_path is not None:
            kwargs["refresh_path"] = self.refresh_path
        return kwargs

    def grants(self) -> tuple[str, ...]:
        return ("password", "refresh_token")

    def read_params(self, request: Request) -> dict[str, str] | Response:
        params = super().read_params(request)
        if isinstance(params, Response):
            return params
        grant = params.get("grant_type")
        on_refresh_path = self.refresh_path and request.path.endswith(self.refresh_path)
        if on_refresh_path and grant != "refresh_token":
            return self.error(400, "Bad Request", "the refresh path takes refresh grants")
        if self.refresh_path and not on_refresh_path and grant == "refresh_token":
            return self.error(400, "Bad Request", f"refresh on {self.refresh_path}")
        if grant == "password":
            missing = [n for n in ("username", "password", "scope") if n not in params]
            if missing:
                return self.error(422, "Validation Error", f"missing: {', '.join(missing)}")
        return params

    def error(self, status: int, code: str, description: str) -> Response:
        body = {"type": "about:blank", "title": code, "status": status, "detail": description}
        return Response(
            status, json.dumps(body).encode(), {"Content-Type": "application/problem+json"}
        )

    def reject_client(self) -> Response:
        return self.error(401, "Unauthorized", "invalid client credentials")

    def reject_user(self) -> Response:
        return self.error(401, "Unauthorized", "Incorrect username or password")

    def reject_refresh_token(self) -> Response:
        return self.error(401, "Unauthorized", "invalid refresh token")

    def reject_grant_type(self, grant: str) -> Response:
        return self.error(400, "Bad Request", f"unsupported grant_type {grant!r}")

    def not_found(self) -> Response:
        return self.error(404, "Not Found", "no such path")
