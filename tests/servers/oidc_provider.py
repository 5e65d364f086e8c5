"""panva's oidc-provider 9 (OpenID certified, node), on free loopback ports.

``tests/servers/oidc/server.mjs`` runs the ``Provider`` and a small protected resource that
checks tokens at the provider's introspection endpoint; this module starts it as a child
process, hands it the clients on stdin, and stops it (closing stdin ends it, so a dying test
run leaves no node process behind). Needs ``node`` on PATH and
``npm ci --prefix tests/servers/oidc`` (node_modules is not committed).

oidc-provider follows RFC 6749 Appendix A.2 to the letter: a ``client_secret`` is VSCHAR
(``%x20-7E``) only. It refuses to register a non-ASCII secret and answers 400
``invalid_request`` to a Basic header whose decoded secret holds a non-ASCII character
(which is why :data:`TRICKY_SECRET` is ASCII).

People log in here too (``logins=True``, the default): :data:`~tests.servers.USERNAME` with
:data:`~tests.servers.PASSWORD` signs in on oidc-provider's own login and consent pages
(``devInteractions``) and on its device-flow page (``/device``), and two public native clients
(RFC 8252) are registered for them: :data:`LOGIN_CLIENT_ID` (authorization code with PKCE,
refresh tokens through ``offline_access``, the device grant) and
:data:`NO_REFRESH_CLIENT_ID` (the same without the refresh_token grant: never a refresh
token). Both register :data:`LOGIN_REDIRECT_URI`, which matches on any port. The headless
person who uses those pages is :class:`tests.servers.people.OidcProviderPerson`.

Credentials from other credentials (``exchange=True``): RFC 8693 token exchange and the RFC 7523
§2.1 JWT bearer grant, registered by ``server.mjs`` through oidc-provider's
``registerGrantType`` (config keys ``token_exchange`` and ``jwt_bearer``). A subject token of
type access token is checked by introspection, a JWT (and a JWT bearer assertion) by its
signature against the public key of :attr:`OidcProviderServer.workload_key`, a key of the
"workload identity issuer" :data:`WORKLOAD_ISSUER`. The clients: :data:`EXCHANGE_CLIENT_IDS`
(client_secret_post and client_secret_basic, secret :data:`~tests.servers.PLAIN_SECRET`) and
:data:`EXCHANGE_KEY_CLIENT_ID` (private_key_jwt, key :attr:`OidcProviderServer.client_key`),
each allowed client_credentials, token exchange and JWT bearer. A second resource server,
:data:`ORDERS_RESOURCE`, is another audience to exchange a token for.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import selectors
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from . import AUTH_METHODS, PASSWORD, PLAIN_SECRET, TRICKY_SECRET, USERNAME, Client

NODE = shutil.which("node")
FOLDER = Path(__file__).resolve().parent / "oidc"
SCRIPT = FOLDER / "server.mjs"
MISSING_NODE = "node is not on PATH: the oidc-provider tests need node 20 or later"
MISSING_MODULES = (
    "oidc-provider is not installed: run npm ci --prefix tests/servers/oidc"
    " (tests/servers/oidc/node_modules is missing)"
)

RESOURCE_SERVER_ID = "resource-server"
START_TIMEOUT = 30.0

#: The public native client people log in with: authorization code + PKCE, refresh tokens
#: (with ``offline_access``), the device grant.
LOGIN_CLIENT_ID = "login-cli"
#: The same client without the refresh_token grant: oidc-provider drops ``offline_access``
#: and never issues it a refresh token.
NO_REFRESH_CLIENT_ID = "login-cli-no-refresh"
#: Registered for both; a native client's loopback redirect matches on any port (RFC 8252 §7.3).
LOGIN_REDIRECT_URI = "http://127.0.0.1/callback"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: RFC 8693 §3 token type identifiers.
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
#: The confidential clients of both grants (and client_credentials), by authentication method;
#: their secret is PLAIN_SECRET.
EXCHANGE_CLIENT_IDS = {method: f"exchange-{method}" for method in AUTH_METHODS}
#: The same grants, authenticating with private_key_jwt (OidcProviderServer.client_key).
EXCHANGE_KEY_CLIENT_ID = "exchange-private_key_jwt"
#: ``iss`` of the JWT subject tokens and JWT bearer assertions the server accepts.
WORKLOAD_ISSUER = "https://workload-issuer.test"
#: Another resource server (its aud is its indicator), scopes ORDERS_SCOPE.
ORDERS_RESOURCE = "https://orders.internal"
ORDERS_SCOPE = "orders:read orders:write"


def exchange_clients(client_jwks: Mapping[str, Any]) -> list[dict[str, Any]]:
    """oidc-provider metadata of the clients of token exchange and JWT bearer."""
    grants = ["client_credentials", TOKEN_EXCHANGE_GRANT, JWT_BEARER_GRANT]
    clients: list[dict[str, Any]] = [
        {
            "client_id": client_id,
            "client_secret": PLAIN_SECRET,
            "token_endpoint_auth_method": method,
            "grant_types": grants,
            "response_types": [],
            "redirect_uris": [],
        }
        for method, client_id in EXCHANGE_CLIENT_IDS.items()
    ]
    clients.append(
        {
            "client_id": EXCHANGE_KEY_CLIENT_ID,
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "ES256",
            "jwks": dict(client_jwks),
            "grant_types": grants,
            "response_types": [],
            "redirect_uris": [],
        }
    )
    return clients


def public_jwks(key: ECKey) -> dict[str, Any]:
    return {"keys": [{**key.as_dict(private=False), "alg": "ES256", "use": "sig"}]}


def login_clients() -> list[dict[str, Any]]:
    """oidc-provider metadata of the two public clients people log in with."""
    grants = ["authorization_code", "refresh_token", DEVICE_GRANT]
    return [
        {
            "client_id": client_id,
            "token_endpoint_auth_method": "none",
            "application_type": "native",
            "grant_types": grants if client_id == LOGIN_CLIENT_ID else grants[::2],
            "response_types": ["code"],
            "redirect_uris": [LOGIN_REDIRECT_URI],
        }
        for client_id in (LOGIN_CLIENT_ID, NO_REFRESH_CLIENT_ID)
    ]


def client_id_for(auth_method: str, *, tricky: bool) -> str:
    return f"cc-{auth_method}-{'tricky' if tricky else 'plain'}"


def client_metadata(client: Client) -> dict[str, Any]:
    """oidc-provider metadata for a confidential client of ``client.grant`` (a password
    client may refresh too)."""
    grants = [client.grant, "refresh_token"] if client.grant == "password" else [client.grant]
    return {
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "token_endpoint_auth_method": client.auth_method,
        "grant_types": grants,
        "response_types": [],
        "redirect_uris": [],
    }


class OidcProviderServer:
    """A running oidc-provider, used as a context manager.

    ``extra_clients`` are oidc-provider client metadata objects (or :class:`Client`), added
    to the built-in ones; ``extra_config`` is merged into the JSON configuration that
    ``server.mjs`` documents (``features``, ``ttl``, ``provider``, ``resource_servers``,
    ``default_resource``, ``api_scope``, ``refresh_delay_ms``; its ``clients`` are added
    too).

    ``password_grant=True`` turns on the harness's test-only password grant (oidc-provider 9
    has none; see ``server.mjs``) for :data:`~tests.servers.USERNAME`, and registers one
    client per authentication method for it (``client("password", ...)``, grant types
    ``password`` and ``refresh_token``): its tokens come with a refresh token, renewed by
    oidc-provider's own refresh_token grant. ``rotate_refresh_tokens=True`` sets
    oidc-provider's ``rotateRefreshToken`` (every refresh answers a new refresh token and
    consumes the old one; a consumed one used again revokes its grant, the whole family).
    Without it oidc-provider's default applies, which rotates the refresh tokens of public
    clients (the login clients) and of no other.

    ``logins=True`` (the default) lets :data:`~tests.servers.USERNAME` log in through the
    login clients (see the module docstring); ``authorization_url`` and
    ``device_authorization_url`` are then set from discovery.

    ``exchange=True`` turns on token exchange and JWT bearer (see the module docstring):
    :attr:`workload_key` signs JWT subject tokens and assertions (kid ``workload``, ES256),
    :attr:`client_key` is the private_key_jwt client's (kid ``client``, ES256).
    """

    name = "oidc-provider"
    grants = frozenset({"client_credentials"})  # oidc-provider 9 has no password grant
    rotates_refresh_tokens = False

    def __init__(
        self,
        *,
        extra_clients: Iterable[Client | Mapping[str, Any]] = (),
        extra_config: Mapping[str, Any] | None = None,
        password_grant: bool = False,
        rotate_refresh_tokens: bool = False,
        logins: bool = True,
        exchange: bool = False,
    ) -> None:
        if NODE is None:
            pytest.skip(MISSING_NODE)
        if not (FOLDER / "node_modules" / "oidc-provider").is_dir():
            pytest.skip(MISSING_MODULES)

        self.clients: dict[tuple[str, str, bool], Client] = {}
        for auth_method in AUTH_METHODS:
            for tricky in (False, True):
                self.clients["client_credentials", auth_method, tricky] = Client(
                    client_id=client_id_for(auth_method, tricky=tricky),
                    client_secret=TRICKY_SECRET if tricky else PLAIN_SECRET,
                    auth_method=auth_method,
                    grant="client_credentials",
                )
                if password_grant:
                    self.clients["password", auth_method, tricky] = Client(
                        client_id=f"password-{auth_method}-{'tricky' if tricky else 'plain'}",
                        client_secret=TRICKY_SECRET if tricky else PLAIN_SECRET,
                        auth_method=auth_method,
                        grant="password",
                    )
        if password_grant:
            self.grants = frozenset({"client_credentials", "password"})
        self.rotates_refresh_tokens = rotate_refresh_tokens
        #: The protected resource's credentials for the introspection endpoint.
        self.resource_server = Client(
            client_id=RESOURCE_SERVER_ID,
            client_secret=secrets.token_urlsafe(24),
            auth_method="client_secret_post",
            grant="",
        )

        config = dict(extra_config or {})
        if password_grant:
            config["password_grant"] = {"username": USERNAME, "password": PASSWORD}
        if rotate_refresh_tokens:
            config["provider"] = {**config.get("provider", {}), "rotateRefreshToken": True}
        metadata = [client_metadata(client) for client in self.clients.values()]
        if logins:
            config["logins"] = {"accounts": {USERNAME: PASSWORD}}
            metadata.extend(login_clients())
        #: Signs JWT subject tokens and JWT bearer assertions (exchange=True).
        self.workload_key = ECKey.generate_key("P-256", parameters={"kid": "workload"})
        #: The private_key_jwt client's key (exchange=True).
        self.client_key = ECKey.generate_key("P-256", parameters={"kid": "client"})
        if exchange:
            workload = {"jwks": public_jwks(self.workload_key), "issuer": WORKLOAD_ISSUER}
            config["token_exchange"] = workload
            config["jwt_bearer"] = workload
            config["resource_servers"] = {
                ORDERS_RESOURCE: {"scope": ORDERS_SCOPE, "accessTokenFormat": "opaque"},
                **config.get("resource_servers", {}),
            }
            metadata.extend(exchange_clients(public_jwks(self.client_key)))
        for extra in extra_clients:
            metadata.append(client_metadata(extra) if isinstance(extra, Client) else dict(extra))
        metadata.extend(config.pop("clients", ()))
        self.config: dict[str, Any] = {
            **config,
            "clients": metadata,
            "api_client": {
                "client_id": self.resource_server.client_id,
                "client_secret": self.resource_server.client_secret,
            },
        }

        # Filled in by start().
        self.issuer = self.token_url = self.api_url = self.resource = self.test_url = ""
        self.revocation_url = self.introspection_url = self.holding_url = ""
        self.authorization_url = self.device_authorization_url = ""
        self.metadata: dict[str, Any] = {}
        self.version = ""
        self.startup_seconds = 0.0
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._http: httpx.Client | None = None

    # -- life cycle ------------------------------------------------------------------------

    def __enter__(self) -> OidcProviderServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> OidcProviderServer:
        assert NODE is not None
        assert self._process is None, "already started"
        began = time.monotonic()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by stop()
        self._process = subprocess.Popen(
            [NODE, str(SCRIPT)],
            cwd=FOLDER,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
        )
        try:
            assert self._process.stdin is not None
            self._process.stdin.write(json.dumps(self.config).encode() + b"\n")
            ready = self._read_ready_line(START_TIMEOUT)
            self.issuer = ready["issuer"]
            self.api_url = ready["api"]
            self.resource = ready["resource"]
            self.test_url = ready["test"]
            self.version = ready["oidc_provider"]
            self._http = httpx.Client(timeout=10, trust_env=False)
            response = self._http.get(f"{self.issuer}/.well-known/openid-configuration")
            response.raise_for_status()
            self.metadata = response.json()
        except BaseException:
            self.stop()
            raise
        self.token_url = self.metadata["token_endpoint"]
        #: ``{"holding": N}``: refresh answers held back right now (``refresh_delay_ms``).
        self.holding_url = f"{self.test_url}/holding"
        self.revocation_url = self.metadata["revocation_endpoint"]
        self.introspection_url = self.metadata["introspection_endpoint"]
        self.authorization_url = self.metadata["authorization_endpoint"]
        self.device_authorization_url = self.metadata.get("device_authorization_endpoint", "")
        self.startup_seconds = time.monotonic() - began
        return self

    def _read_ready_line(self, timeout: float) -> dict[str, Any]:
        assert self._process is not None
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        deadline = time.monotonic() + timeout
        received = b""
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in received:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"oidc-provider not ready after {timeout} s{self._log()}")
                if not selector.select(remaining):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    self._process.wait(timeout=10)
                    raise RuntimeError(
                        f"oidc-provider exited ({self._process.returncode}) before it was ready"
                        f"{self._log()}"
                    )
                received += chunk
        return dict(json.loads(received.partition(b"\n")[0]))

    def log(self) -> str:
        """What the node process wrote to stderr so far (oidc-provider's warnings)."""
        if self._stderr is None or self._stderr.closed:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()

    def _log(self) -> str:
        text = self.log()
        return f"; its stderr:\n{text}" if text else ""

    def stop(self) -> None:
        """Closing stdin ends the node process; SIGTERM, then SIGKILL, if it lingers."""
        if self._http is not None:
            self._http.close()
            self._http = None
        process, self._process = self._process, None
        if process is not None:
            assert process.stdin is not None
            assert process.stdout is not None
            with contextlib.suppress(OSError):  # it is gone already
                process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- token exchange and JWT bearer (exchange=True) ------------------------------------------

    def workload_jwt(self, *, key: ECKey | None = None, **claims: Any) -> str:
        """A JWT of :data:`WORKLOAD_ISSUER` signed with :attr:`workload_key` (or ``key``): a JWT
        subject token, or a JWT bearer assertion.

        Defaults: ``sub`` ``"workload-1"``, ``aud`` the token endpoint, ``iat`` now, ``exp`` in
        120 s, a fresh ``jti``; ``claims`` override them, and a claim given as None is left out.
        """
        now = int(time.time())
        body = {
            "iss": WORKLOAD_ISSUER,
            "sub": "workload-1",
            "aud": self.token_url,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(16),
            **claims,
        }
        signer = key or self.workload_key
        header = {"alg": "ES256", "kid": signer.kid or "workload"}
        return jwt.encode(header, {k: v for k, v in body.items() if v is not None}, signer)

    # -- RealServer --------------------------------------------------------------------------

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            raise RuntimeError("the oidc-provider server is not running")
        return self._http

    def client(self, grant: str, auth_method: str, *, tricky: bool = False) -> Client:
        try:
            return self.clients[grant, auth_method, tricky]
        except KeyError:
            raise LookupError(
                f"{self.name} has no {grant} client for {auth_method}"
                f" (grants: {sorted(self.grants)}, auth methods: {list(AUTH_METHODS)})"
            ) from None

    def token_calls(self) -> Counter[str]:
        response = self.http.get(f"{self.test_url}/calls")
        response.raise_for_status()
        return Counter({str(k): int(v) for k, v in response.json().items()})

    def reset_counts(self) -> None:
        self.http.post(f"{self.test_url}/reset").raise_for_status()

    def stats(self) -> Counter[str]:
        """Since the last reset: token answers as ``"grant_type:outcome"`` (``ok`` or the
        error code), ``grant_revocations`` (``grant.revoked`` events: reuse detection
        revoking a token family), the API's answers as ``"api:STATUS"``, and the tokens that
        token exchange and JWT bearer issued by audience, ``"token-exchange:ok:<aud>"`` and
        ``"jwt-bearer:ok:<aud>"`` (``-`` for none)."""
        response = self.http.get(f"{self.test_url}/stats")
        response.raise_for_status()
        return Counter({str(k): int(v) for k, v in response.json().items()})

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 introspection of ``token``, as the protected resource sees it."""
        response = self.http.post(
            self.introspection_url,
            data={
                "token": token,
                "client_id": self.resource_server.client_id,
                "client_secret": self.resource_server.client_secret,
            },
        )
        response.raise_for_status()
        return dict(response.json())

    def revoke(self, token: str, client: Client) -> None:
        """RFC 7009, authenticating with client_secret_post.

        oidc-provider accepts a secret in the body from a client registered for
        client_secret_basic too (it treats the two as one family).
        """
        response = self.http.post(
            self.revocation_url,
            data={
                "token": token,
                "token_type_hint": "access_token",
                "client_id": client.client_id,
                "client_secret": client.client_secret,
            },
        )
        if response.status_code != 200:
            raise RuntimeError(
                f"revocation at {self.name} answered HTTP {response.status_code}: {response.text}"
            )
