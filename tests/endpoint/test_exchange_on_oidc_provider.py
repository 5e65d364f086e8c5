"""RFC 8693 token exchange and the RFC 7523 §2.1 JWT bearer grant on node oidc-provider 9,
registered through its ``registerGrantType`` by tests/servers/oidc/server.mjs, driven with
raw HTTP (no authplug): the server the lead's OAuth2TokenExchangeAuth and OAuth2JWTBearerAuth
are proven against must itself check what a strict server checks."""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.servers import PLAIN_SECRET, Client
from tests.servers.oidc_provider import (
    ACCESS_TOKEN_TYPE,
    EXCHANGE_CLIENT_IDS,
    EXCHANGE_KEY_CLIENT_ID,
    JWT_BEARER_GRANT,
    JWT_TOKEN_TYPE,
    ORDERS_RESOURCE,
    TOKEN_EXCHANGE_GRANT,
    OidcProviderServer,
)

jwt = pytest.importorskip("joserfc.jwt")
jwk = pytest.importorskip("joserfc.jwk")

EXCHANGE_OK = f"{TOKEN_EXCHANGE_GRANT}:ok"
BEARER_OK = f"{JWT_BEARER_GRANT}:ok"
AUTH_METHODS = (*EXCHANGE_CLIENT_IDS, "private_key_jwt")


@pytest.fixture(scope="module")
def server() -> Iterator[OidcProviderServer]:
    with OidcProviderServer(exchange=True, logins=False) as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client


class Stats:
    """The server's /stats counters from now on (other tests' answers left out)."""

    def __init__(self, server: OidcProviderServer) -> None:
        self.server = server
        self.before = server.stats()

    def delta(self) -> Counter[str]:
        after = self.server.stats()
        after.subtract(self.before)
        return +after


def sign(key: Any, claims: dict[str, Any], kid: str = "workload") -> str:
    return str(jwt.encode({"alg": "ES256", "kid": kid}, claims, key))


def post(
    server: OidcProviderServer, http: httpx.Client, data: dict[str, str], method: str
) -> httpx.Response:
    """A token request from the exchange client of ``method``."""
    headers: dict[str, str] = {}
    if method == "client_secret_basic":
        pair = f"{quote(EXCHANGE_CLIENT_IDS[method], safe='')}:{quote(PLAIN_SECRET, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    elif method == "client_secret_post":
        data = {**data, "client_id": EXCHANGE_CLIENT_IDS[method], "client_secret": PLAIN_SECRET}
    else:
        now = int(time.time())
        claims = {
            "iss": EXCHANGE_KEY_CLIENT_ID,
            "sub": EXCHANGE_KEY_CLIENT_ID,
            "aud": server.token_url,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
        data = {
            **data,
            "client_id": EXCHANGE_KEY_CLIENT_ID,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": sign(server.client_key, claims, kid="client"),
        }
    return http.post(server.token_url, data=data, headers=headers)


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(response.json())


def client_token(server: OidcProviderServer, http: httpx.Client) -> str:
    """A client_credentials access token (opaque, no audience) of the post client."""
    body = ok(post(server, http, {"grant_type": "client_credentials"}, "client_secret_post"))
    return str(body["access_token"])


def exchange(
    server: OidcProviderServer,
    http: httpx.Client,
    subject: str,
    subject_type: str = ACCESS_TOKEN_TYPE,
    method: str = "client_secret_post",
    **extra: str,
) -> httpx.Response:
    data = {
        "grant_type": TOKEN_EXCHANGE_GRANT,
        "subject_token": subject,
        "subject_token_type": subject_type,
        **extra,
    }
    return post(server, http, data, method)


def refusal(response: httpx.Response, error: str, *secrets_sent: str) -> str:
    """The error description of a 400 ``error``, which holds none of the tokens sent."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == error, body
    for secret in secrets_sent:
        assert secret not in response.text
    return str(body.get("error_description", ""))


def api_status(server: OidcProviderServer, http: httpx.Client, token: str) -> int:
    response = http.get(server.api_url, headers={"Authorization": f"Bearer {token}"})
    return response.status_code


# -- RFC 8693 token exchange --------------------------------------------------------------------


@pytest.mark.parametrize("method", AUTH_METHODS)
def test_a_client_token_is_exchanged_for_another_audience(
    server: OidcProviderServer, http: httpx.Client, method: str
) -> None:
    """A client-credentials token becomes a token bound to the audience asked for, with the
    scope asked for, the subject's sub, and the RFC 8693 answer fields."""
    subject = client_token(server, http)
    stats = Stats(server)
    body = ok(
        exchange(
            server,
            http,
            subject,
            method=method,
            audience=ORDERS_RESOURCE,
            scope="orders:read api:read",
        )
    )
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "orders:read"  # filtered to the orders resource server's scopes
    assert 0 < body["expires_in"] <= 600  # capped at the subject's life (ClientCredentials TTL)
    seen = server.introspect(body["access_token"])
    assert seen["active"] is True
    assert seen["aud"] == ORDERS_RESOURCE
    assert seen["sub"] == EXCHANGE_CLIENT_IDS["client_secret_post"]  # the subject's client
    assert seen["scope"] == "orders:read"
    assert "act" not in seen
    assert stats.delta() == {EXCHANGE_OK: 1, f"token-exchange:ok:{ORDERS_RESOURCE}": 1}
    # The API accepts tokens for itself only.
    assert api_status(server, http, body["access_token"]) == 401


def test_a_token_exchanged_for_the_api_is_accepted_there(
    server: OidcProviderServer, http: httpx.Client
) -> None:
    """resource= names the target as audience= does; the API accepts the token made for it."""
    body = ok(
        exchange(
            server, http, client_token(server, http), resource=server.resource, scope="api:read"
        )
    )
    assert server.introspect(body["access_token"])["aud"] == server.resource
    assert api_status(server, http, body["access_token"]) == 200


def test_an_actor_token_is_recorded_as_act(server: OidcProviderServer, http: httpx.Client) -> None:
    """A JWT subject (verified by signature) with an access-token actor (by introspection)
    answers a token for the subject whose act claim names the actor."""
    subject = server.workload_jwt(sub="alice", aud="https://gateway.test")
    actor = client_token(server, http)
    body = ok(
        exchange(
            server,
            http,
            subject,
            JWT_TOKEN_TYPE,
            audience=ORDERS_RESOURCE,
            actor_token=actor,
            actor_token_type=ACCESS_TOKEN_TYPE,
        )
    )
    seen = server.introspect(body["access_token"])
    assert seen["sub"] == "alice"
    assert seen["act"] == {"sub": EXCHANGE_CLIENT_IDS["client_secret_post"]}
    assert seen["aud"] == ORDERS_RESOURCE
    # A second hop keeps the subject and nests the earlier actor.
    again = ok(
        exchange(
            server,
            http,
            body["access_token"],
            resource=server.resource,
            actor_token=body["access_token"],
            actor_token_type=ACCESS_TOKEN_TYPE,
        )
    )
    seen = server.introspect(again["access_token"])
    assert seen["sub"] == "alice"
    assert seen["act"] == {
        "sub": "alice",
        "act": {"sub": EXCHANGE_CLIENT_IDS["client_secret_post"]},
    }


def test_the_exchanged_token_never_outlives_its_subject(
    server: OidcProviderServer, http: httpx.Client
) -> None:
    """expires_in is capped at the subject token's remaining life."""
    subject_exp = int(time.time()) + 90
    subject = server.workload_jwt(exp=subject_exp)
    body = ok(exchange(server, http, subject, JWT_TOKEN_TYPE))
    assert 0 < body["expires_in"] <= 90
    assert server.introspect(body["access_token"])["exp"] <= subject_exp


def revoked_token(server: OidcProviderServer, http: httpx.Client) -> str:
    token = client_token(server, http)
    owner = Client(
        EXCHANGE_CLIENT_IDS["client_secret_post"],
        PLAIN_SECRET,
        "client_secret_post",
        "client_credentials",
    )
    server.revoke(token, owner)
    return token


@pytest.mark.parametrize(
    ("case", "subject_type", "reason"),
    [
        ("unknown", ACCESS_TOKEN_TYPE, "the subject token is not active"),
        ("revoked", ACCESS_TOKEN_TYPE, "the subject token is not active"),
        ("expired", JWT_TOKEN_TYPE, "subject token refused: ERR_JWT_EXPIRED (exp)"),
        (
            "foreign key",
            JWT_TOKEN_TYPE,
            "subject token refused: ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
        ),
        (
            "other issuer",
            JWT_TOKEN_TYPE,
            "subject token refused: ERR_JWT_CLAIM_VALIDATION_FAILED (iss)",
        ),
    ],
)
def test_a_subject_token_that_fails_its_check_is_refused(
    server: OidcProviderServer, http: httpx.Client, case: str, subject_type: str, reason: str
) -> None:
    """An unknown, revoked, expired, forged or foreign subject token is invalid_grant, and the
    answer says why without echoing the token."""
    now = int(time.time())
    subject = {
        "unknown": lambda: secrets.token_urlsafe(32),
        "revoked": lambda: revoked_token(server, http),
        "expired": lambda: server.workload_jwt(iat=now - 600, exp=now - 300),
        "foreign key": lambda: server.workload_jwt(key=jwk.ECKey.generate_key("P-256")),
        "other issuer": lambda: server.workload_jwt(iss="https://elsewhere.test"),
    }[case]()
    stats = Stats(server)
    response = exchange(server, http, subject, subject_type, audience=ORDERS_RESOURCE)
    assert refusal(response, "invalid_grant", subject) == reason
    assert stats.delta() == {f"{TOKEN_EXCHANGE_GRANT}:invalid_grant": 1}


def test_an_expired_access_token_is_refused(http: httpx.Client) -> None:
    """A subject access token past its exp is inactive at introspection: invalid_grant.

    oidc-provider's clock cannot be injected: its client-credentials tokens live 1 s here,
    and the test waits until introspection itself says the token is inactive (no time is
    asserted).
    """
    with OidcProviderServer(
        exchange=True, logins=False, extra_config={"ttl": {"ClientCredentials": 1}}
    ) as short:
        subject = client_token(short, http)
        assert short.introspect(subject)["active"] is True
        for _ in range(100):
            if not short.introspect(subject)["active"]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the 1 s token stayed active")
        response = exchange(short, http, subject, audience=ORDERS_RESOURCE)
        assert refusal(response, "invalid_grant", subject) == "the subject token is not active"
        assert short.stats() == {
            "client_credentials:ok": 1,
            f"{TOKEN_EXCHANGE_GRANT}:invalid_grant": 1,
        }


def test_an_actor_token_is_checked_like_a_subject(
    server: OidcProviderServer, http: httpx.Client
) -> None:
    """A revoked actor token refuses the exchange."""
    actor = revoked_token(server, http)
    response = exchange(
        server,
        http,
        client_token(server, http),
        actor_token=actor,
        actor_token_type=ACCESS_TOKEN_TYPE,
    )
    assert refusal(response, "invalid_grant", actor) == "the actor token is not active"


@pytest.mark.parametrize(
    ("extra", "error", "reason"),
    [
        ({"subject_token_type": ""}, "invalid_request", "missing required parameter"),
        ({"subject_token_type": "urn:example:other"}, "invalid_request", "unsupported"),
        ({"actor_token_type": ACCESS_TOKEN_TYPE}, "invalid_request", "actor_token_type"),
        ({"actor_token": "an-actor"}, "invalid_request", "actor_token_type"),
        ({"audience": "https://unknown.test"}, "invalid_target", "unknown resource"),
        ({"requested_token_type": JWT_TOKEN_TYPE}, "invalid_request", "JWT cannot be issued"),
        ({"requested_token_type": "urn:example:saml"}, "invalid_request", "requested_token_type"),
    ],
)
def test_an_exchange_request_the_server_cannot_serve_is_refused(
    server: OidcProviderServer,
    http: httpx.Client,
    extra: dict[str, str],
    error: str,
    reason: str,
) -> None:
    """Missing or unknown token types, an unknown target and an unsupported requested type
    are refused with RFC 8693 §2.2.2's errors; nothing is issued."""
    subject = client_token(server, http)
    data = {"subject_token_type": ACCESS_TOKEN_TYPE, "audience": ORDERS_RESOURCE, **extra}
    stats = Stats(server)
    response = exchange(server, http, subject, **data)
    assert reason in refusal(response, error, subject)
    assert stats.delta() == {f"{TOKEN_EXCHANGE_GRANT}:{error}": 1}


def test_two_audiences_are_refused(server: OidcProviderServer, http: httpx.Client) -> None:
    """One target per exchange: two audiences are invalid_target."""
    data = {
        "grant_type": TOKEN_EXCHANGE_GRANT,
        "subject_token": client_token(server, http),
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "client_id": EXCHANGE_CLIENT_IDS["client_secret_post"],
        "client_secret": PLAIN_SECRET,
    }
    body = "&".join(f"{k}={quote(v, safe='')}" for k, v in data.items())
    body += f"&audience={quote(ORDERS_RESOURCE, safe='')}&audience={quote(server.resource)}"
    response = http.post(
        server.token_url,
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert refusal(response, "invalid_target") == "only one audience is supported"


def test_a_client_not_registered_for_the_grant_is_refused(
    server: OidcProviderServer, http: httpx.Client
) -> None:
    """Only clients that list the grant type may use it (oidc-provider answers invalid_request
    where RFC 6749 §5.2 says unauthorized_client)."""
    plain = server.client("client_credentials", "client_secret_post")
    response = http.post(
        server.token_url,
        data={
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": client_token(server, http),
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "client_id": plain.client_id,
            "client_secret": plain.client_secret,
        },
    )
    assert refusal(response, "invalid_request") == (
        "requested grant type is not allowed for this client"
    )


# -- RFC 7523 §2.1 JWT bearer -------------------------------------------------------------------


@pytest.mark.parametrize("audience", ["token endpoint", "issuer"])
@pytest.mark.parametrize("method", AUTH_METHODS)
def test_a_signed_assertion_is_a_grant(
    server: OidcProviderServer, http: httpx.Client, method: str, audience: str
) -> None:
    """An assertion signed by the workload issuer's key, for the token endpoint or the
    issuer, answers an access token for its sub."""
    aud = server.token_url if audience == "token endpoint" else server.issuer
    stats = Stats(server)
    body = ok(
        post(
            server,
            http,
            {
                "grant_type": JWT_BEARER_GRANT,
                "assertion": server.workload_jwt(sub="svc-billing", aud=aud),
                "resource": server.resource,
                "scope": "api:read",
            },
            method,
        )
    )
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "api:read"
    seen = server.introspect(body["access_token"])
    assert seen["sub"] == "svc-billing"
    assert seen["aud"] == server.resource
    client_id = EXCHANGE_CLIENT_IDS.get(method, EXCHANGE_KEY_CLIENT_ID)
    assert seen["client_id"] == client_id
    assert stats.delta() == {BEARER_OK: 1, f"jwt-bearer:ok:{server.resource}": 1}
    assert api_status(server, http, body["access_token"]) == 200


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"key": "foreign"}, "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"),
        ({"aud": "https://elsewhere.test/token"}, "ERR_JWT_CLAIM_VALIDATION_FAILED (aud)"),
        ({"exp": -300, "iat": -600}, "ERR_JWT_EXPIRED (exp)"),
        ({"exp": None}, "ERR_JWT_CLAIM_VALIDATION_FAILED (exp)"),
        ({"jti": None}, "ERR_JWT_CLAIM_VALIDATION_FAILED (jti)"),
        ({"iss": "https://elsewhere.test"}, "ERR_JWT_CLAIM_VALIDATION_FAILED (iss)"),
    ],
    ids=["bad signature", "wrong aud", "expired", "no exp", "no jti", "wrong iss"],
)
def test_an_assertion_that_fails_its_check_is_refused(
    server: OidcProviderServer, http: httpx.Client, claims: dict[str, Any], reason: str
) -> None:
    """A bad signature, another audience, an expired assertion, no exp, no jti or another
    issuer is invalid_grant; the answer names the check and never echoes the assertion."""
    now = int(time.time())
    changed = {
        name: (now + value if name in {"exp", "iat"} and value is not None else value)
        for name, value in claims.items()
        if name != "key"
    }
    key = jwk.ECKey.generate_key("P-256") if "key" in claims else None
    assertion = server.workload_jwt(key=key, **changed)
    stats = Stats(server)
    response = post(
        server, http, {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}, "client_secret_post"
    )
    assert refusal(response, "invalid_grant", assertion) == f"assertion refused: {reason}"
    assert stats.delta() == {f"{JWT_BEARER_GRANT}:invalid_grant": 1}


def test_a_replayed_assertion_is_refused(server: OidcProviderServer, http: httpx.Client) -> None:
    """An assertion's jti is single use: the second use is refused, a fresh jti is not."""
    assertion = server.workload_jwt()
    data = {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}
    stats = Stats(server)
    ok(post(server, http, data, "client_secret_post"))
    replayed = post(server, http, data, "client_secret_basic")
    assert refusal(replayed, "invalid_grant", assertion) == "assertion refused: jti replayed"
    ok(post(server, http, {**data, "assertion": server.workload_jwt()}, "client_secret_post"))
    assert stats.delta() == {
        BEARER_OK: 2,
        "jwt-bearer:ok:-": 2,
        f"{JWT_BEARER_GRANT}:invalid_grant": 1,
    }


def test_a_missing_assertion_is_invalid_request(
    server: OidcProviderServer, http: httpx.Client
) -> None:
    """No assertion: invalid_request."""
    response = post(server, http, {"grant_type": JWT_BEARER_GRANT}, "client_secret_post")
    assert refusal(response, "invalid_request") == "missing required parameter 'assertion'"
