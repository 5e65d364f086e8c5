"""Type-checked by mypy --strict (never run): the public API reads as documented."""

from __future__ import annotations

import aiohttp
import httpx
import niquests
import requests

import authplug
from authplug import (
    AuthError,
    CredentialsRejectedError,
    OAuth2ClientCredentialsAuth,
    OAuth2PasswordAuth,
    ProviderSpec,
    Token,
    rfc6749_error,
)


def persist(token: Token) -> None:
    print(token.expires_at)


auth = OAuth2PasswordAuth(
    token_url="https://login.example.com/token",
    username="u",
    password="p",
    client_id="id",
    scope=["read"],
    leeway=30,
    on_token=persist,
)
cc = OAuth2ClientCredentialsAuth(
    token_url="https://login.example.com/token", client_id="id", client_secret="s"
)

session = requests.Session()
session.auth = auth
client = httpx.Client(auth=auth)
aclient = httpx.AsyncClient(auth=cc)


async def with_aiohttp() -> int:
    """The auth object is an aiohttp client middleware, for a session or a request."""
    async with (
        aiohttp.ClientSession(middlewares=(auth,)) as aiosession,
        aiosession.get("https://api.example.com/", middlewares=(cc,)) as response,
    ):
        return response.status


token: Token | None = auth.token
fresh: Token = auth.get_token()
access: str = fresh.access_token
when: float | None = fresh.expires_at


async def use() -> str:
    return (await cc.aget_token()).access_token


try:
    auth.get_token()
except CredentialsRejectedError as exc:
    status: int | None = exc.status_code
except AuthError as exc:
    provider: str = exc.provider

spec = ProviderSpec(name="acme", body="json", parse_error=rfc6749_error)
version: str = authplug.__version__


nsession = niquests.Session()
nsession.auth = auth
niquests.get("https://api.example.com/", auth=cc)


async def with_niquests() -> int | None:
    async with niquests.AsyncSession(auth=auth) as asession:
        return (await asession.get("https://api.example.com/")).status_code


async def modern_client_auth() -> bool:
    """Keys, assertions, discovery and revocation, as documented."""

    async def assertion() -> str:
        return "eyJ.assertion.sig"

    signed = OAuth2ClientCredentialsAuth(
        issuer="https://login.example.com",
        client_id="id",
        private_key={"kty": "EC", "crv": "P-256", "x": "…", "y": "…", "d": "…"},
        key_id="k1",
        signing_alg="ES256",
        assertion_audience="https://login.example.com",
        revoke_on_close=True,
    )
    federated = OAuth2ClientCredentialsAuth(
        token_url="https://login.example.com/token", client_id="id", client_assertion=assertion
    )
    mtls = authplug.MogoplusAuth(
        client_id="id", cert=("c.pem", "c.key"), client_auth="tls_client_auth"
    )
    revoked: bool = signed.revoke() and await federated.arevoke()
    try:
        mtls.get_token()
    except authplug.IssuerMismatchError as exc:
        print(exc.description)
    except authplug.DiscoveryError:
        pass
    return revoked
