"""The real servers the suite runs against, started once per session, and the auth
objects the tests build for them (shared by tests/endpoint/ and tests/clients/)."""

from __future__ import annotations

from typing import Any

from authplug import BaseAuth, OAuth2ClientCredentialsAuth, OAuth2PasswordAuth

from . import PASSWORD, USERNAME, Client, RealServer

SERVERS = ("authlib", "django-oauth-toolkit", "oidc-provider")
WITH_PASSWORD = ("authlib", "django-oauth-toolkit")  # oidc-provider 9 has no password grant


def start(name: str) -> Any:
    """The harness of the server called ``name`` (not started: enter it)."""
    if name == "authlib":
        from .authlib_flask import AuthlibServer

        return AuthlibServer()
    if name == "django-oauth-toolkit":
        from .django_oauth import DjangoOAuthServer

        return DjangoOAuthServer(run_migrations=False)
    from .oidc_provider import OidcProviderServer

    # Client-credentials tokens as short-lived as the others' (the default is 10 minutes).
    return OidcProviderServer(extra_config={"ttl": {"ClientCredentials": 120}})


def cc_auth(server: RealServer, client: Client, **options: Any) -> BaseAuth:
    """The client-credentials grant for ``client`` on ``server``."""
    return OAuth2ClientCredentialsAuth(
        token_url=server.token_url,
        client_id=client.client_id,
        client_secret=client.client_secret,
        client_auth=client.auth_method,  # type: ignore[arg-type]
        **options,
    )


def password_auth(server: RealServer, client: Client, **options: Any) -> BaseAuth:
    """The password grant of the servers' user, for ``client`` on ``server``."""
    return OAuth2PasswordAuth(
        token_url=server.token_url,
        username=USERNAME,
        password=PASSWORD,
        client_id=client.client_id,
        client_secret=client.client_secret,
        client_auth=client.auth_method,  # type: ignore[arg-type]
        scope="read write",
        **options,
    )
