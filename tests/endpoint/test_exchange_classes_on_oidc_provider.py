"""authplug's OAuth2TokenExchangeAuth and OAuth2JWTBearerAuth on node oidc-provider, whose
RFC 8693 and RFC 7523 grants are registered through its own ``registerGrantType``: the
subject token checked by introspection (or a JWT by its signature), the assertion's
signature, audience, expiry and ``jti`` checked by the server."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from authplug import (
    CredentialsRejectedError,
    OAuth2ClientCredentialsAuth,
    OAuth2JWTBearerAuth,
    OAuth2TokenExchangeAuth,
)
from authplug.testing import FakeClock
from tests.servers import PLAIN_SECRET
from tests.servers.oidc_provider import (
    ACCESS_TOKEN_TYPE,
    EXCHANGE_CLIENT_IDS,
    JWT_BEARER_GRANT,
    ORDERS_RESOURCE,
    TOKEN_EXCHANGE_GRANT,
    WORKLOAD_ISSUER,
    OidcProviderServer,
)

CLIENT = EXCHANGE_CLIENT_IDS["client_secret_post"]
BASIC = EXCHANGE_CLIENT_IDS["client_secret_basic"]


@pytest.fixture(scope="module")
def server() -> Iterator[OidcProviderServer]:
    with OidcProviderServer(exchange=True, logins=False) as running:
        yield running


def _calls(server: OidcProviderServer, before: Counter[str], grant: str) -> int:
    return server.stats()[f"{grant}:ok"] - before[f"{grant}:ok"]


def upstream(server: OidcProviderServer, **options: object) -> OAuth2ClientCredentialsAuth:
    return OAuth2ClientCredentialsAuth(
        token_url=server.token_url, client_id=CLIENT, client_secret=PLAIN_SECRET, **options
    )


def test_an_auth_objects_token_is_exchanged_for_another_audience(
    server: OidcProviderServer,
) -> None:
    """The subject is another auth object's current token (type access_token by
    default); the exchanged token is for the orders audience, the answer's
    issued_token_type is kept, and the exchanged token never outlives its subject."""
    subject = upstream(server)
    auth = OAuth2TokenExchangeAuth(
        token_url=server.token_url,
        client_id=BASIC,
        client_secret=PLAIN_SECRET,
        client_auth="client_secret_basic",
        subject_token=subject,
        resource=ORDERS_RESOURCE,
        scope="orders:read",
    )
    token = auth.get_token()
    seen = server.introspect(token.access_token)
    assert seen["aud"] == ORDERS_RESOURCE
    assert seen["scope"] == "orders:read"
    assert token.extra["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert subject.token is not None
    assert subject.token.expires_at is not None
    assert token.expires_at is not None
    assert token.expires_at <= subject.token.expires_at


def test_the_exchanged_token_calls_the_api_through_requests(server: OidcProviderServer) -> None:
    auth = OAuth2TokenExchangeAuth(
        token_url=server.token_url,
        client_id=CLIENT,
        client_secret=PLAIN_SECRET,
        subject_token=upstream(server),
        resource=server.resource,
    )
    answer = requests.get(server.api_url, auth=auth, timeout=10)
    assert answer.status_code == 200


def test_a_jwt_subject_from_a_callable_and_an_actor(server: OidcProviderServer) -> None:
    """A callable gives a fresh JWT at each token call (type jwt by default); the actor
    token is another auth object's; the server records who acts."""
    made: list[str] = []

    def workload() -> str:
        made.append(server.workload_jwt())
        return made[-1]

    auth = OAuth2TokenExchangeAuth(
        token_url=server.token_url,
        client_id=CLIENT,
        client_secret=PLAIN_SECRET,
        subject_token=workload,
        actor_token=upstream(server),
        resource=ORDERS_RESOURCE,
    )
    token = auth.get_token()
    seen = server.introspect(token.access_token)
    assert seen["sub"] == "workload-1"
    assert seen["act"] == {"sub": CLIENT}
    assert len(made) == 1


def test_a_refused_subject_token_is_refused_credentials(server: OidcProviderServer) -> None:
    auth = OAuth2TokenExchangeAuth(
        token_url=server.token_url,
        client_id=CLIENT,
        client_secret=PLAIN_SECRET,
        subject_token="not-a-token-this-server-issued",
        subject_token_type="access_token",
        resource=ORDERS_RESOURCE,
    )
    with pytest.raises(CredentialsRejectedError) as info:
        auth.get_token()
    assert "not-a-token" not in str(info.value)


def test_renewing_the_exchange_renews_its_subject_once(server: OidcProviderServer) -> None:
    """When the exchanged token is due, its renewal asks the subject's auth object for a
    token it has not used: one client credentials call and one exchange per renewal."""
    clock = FakeClock()
    subject = upstream(server, clock=clock)
    auth = OAuth2TokenExchangeAuth(
        token_url=server.token_url,
        client_id=CLIENT,
        client_secret=PLAIN_SECRET,
        subject_token=subject,
        resource=ORDERS_RESOURCE,
        clock=clock,
    )
    before = server.stats()
    first = auth.get_token()
    assert first.expires_at is not None
    clock.advance(first.expires_at - clock.time() + 1)  # this object's clock: both expired
    second = auth.get_token()
    assert second.access_token != first.access_token
    assert _calls(server, before, TOKEN_EXCHANGE_GRANT) == 2
    assert _calls(server, before, "client_credentials") == 2


def test_siblings_for_two_resources_share_the_subject(server: OidcProviderServer) -> None:
    subject = upstream(server)
    auth = OAuth2TokenExchangeAuth(
        token_url=server.token_url,
        client_id=CLIENT,
        client_secret=PLAIN_SECRET,
        subject_token=subject,
        resource=ORDERS_RESOURCE,
    )
    api = auth.for_resource(server.resource)
    before = server.stats()
    assert requests.get(server.api_url, auth=api, timeout=10).status_code == 200
    orders = auth.get_token()
    assert server.introspect(orders.access_token)["aud"] == ORDERS_RESOURCE
    assert _calls(server, before, TOKEN_EXCHANGE_GRANT) == 2
    assert _calls(server, before, "client_credentials") == 1  # one subject for both


def test_jwt_bearer_signed_here_with_a_fresh_jti_each_call(server: OidcProviderServer) -> None:
    """authplug signs the assertion (iss, sub, aud, exp, a new jti); the server refuses a
    replayed jti, so a second token call succeeding proves each jti is fresh."""
    clock = FakeClock()
    auth = OAuth2JWTBearerAuth(
        token_url=server.token_url,
        private_key=server.workload_key.as_pem(private=True).decode(),
        key_id="workload",
        assertion_issuer=WORKLOAD_ISSUER,
        assertion_subject="workload-7",
        client_id=CLIENT,
        client_secret=PLAIN_SECRET,
        resource=server.resource,
        clock=clock,
    )
    before = server.stats()
    first = auth.get_token()
    assert first.expires_at is not None
    clock.advance(first.expires_at - clock.time() + 1)
    second = auth.get_token()
    assert second.access_token != first.access_token
    assert server.introspect(second.access_token)["sub"] == "workload-7"
    assert _calls(server, before, JWT_BEARER_GRANT) == 2
    assert requests.get(server.api_url, auth=auth, timeout=10).status_code == 200


def test_jwt_bearer_from_a_file(server: OidcProviderServer, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "assertion.jwt"
    path.write_text(server.workload_jwt(sub="from-file"))
    auth = OAuth2JWTBearerAuth(
        token_url=server.token_url,
        assertion=path,
        client_id=CLIENT,
        client_secret=PLAIN_SECRET,
        resource=server.resource,
    )
    assert server.introspect(auth.get_token().access_token)["sub"] == "from-file"
