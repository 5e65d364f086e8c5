"""Token exchange, the JWT bearer grant and siblings on every client: the first request
gets an exchanged token, a refusal renews the exchange (and its subject, once) and replays
the request, and a sibling for another audience sends its own token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from joserfc.jwk import ECKey

from authplug import OAuth2JWTBearerAuth, OAuth2PasswordAuth, OAuth2TokenExchangeAuth
from authplug.testing import OAuth2Emulator

from ..conftest import Driver

ORDERS = "https://orders.internal"
BILLING = "https://billing.internal"
WORKLOAD = "https://ci.example.com"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


@pytest.fixture
def key() -> ECKey:
    return ECKey.generate_key("P-256")


@pytest.fixture
def idp(key: ECKey) -> Iterator[OAuth2Emulator]:
    with OAuth2Emulator(trusted_issuers={WORKLOAD: key.as_dict(private=False)}) as emulator:
        yield emulator


def _exchange(idp: OAuth2Emulator) -> OAuth2TokenExchangeAuth:
    upstream = OAuth2PasswordAuth(
        token_url=idp.token_url,
        username=idp.username,
        password=idp.password,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
    )
    return OAuth2TokenExchangeAuth(
        token_url=idp.token_url,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        subject_token=upstream,
        audience=ORDERS,
    )


def test_an_exchanged_token_is_sent_and_renewed_on_a_refusal(
    driver: Driver, idp: OAuth2Emulator
) -> None:
    auth = _exchange(idp)
    first = driver.send(auth, "GET", idp.api_url())
    assert first.status == 200
    assert idp.exchanges_by_audience == {ORDERS: 1}
    idp.revoke_all()  # the API refuses every token issued so far
    again = driver.send(auth, "GET", idp.api_url())
    assert again.status == 200  # renewed and replayed
    assert idp.exchanges_by_audience == {ORDERS: 2}
    # The subject renewed once, for the exchange (by its refresh token).
    assert idp.token_calls["password"] + idp.token_calls["refresh_token"] == 2


def test_a_sibling_for_another_audience_sends_its_own_token(
    driver: Driver, idp: OAuth2Emulator
) -> None:
    auth = _exchange(idp)
    billing = auth.for_audience(BILLING)
    assert driver.send(auth, "GET", idp.api_url()).status == 200
    assert driver.send(billing, "GET", idp.api_url()).status == 200
    assert idp.exchanges_by_audience == {ORDERS: 1, BILLING: 1}
    assert idp.token_calls["password"] == 1  # one subject token serves both
    assert auth.token is not None
    assert billing.token is not None
    assert auth.token.access_token != billing.token.access_token


def test_a_jwt_bearer_grant_signed_here(driver: Driver, idp: OAuth2Emulator, key: ECKey) -> None:
    auth = OAuth2JWTBearerAuth(
        token_url=idp.token_url,
        private_key=key.as_dict(private=True),
        assertion_issuer=WORKLOAD,
        assertion_subject="job-42",
    )
    assert driver.send(auth, "GET", idp.api_url()).status == 200
    assert idp.token_calls["urn:ietf:params:oauth:grant-type:jwt-bearer"] == 1
    assert idp.token_calls[EXCHANGE] == 0


def test_a_replaced_subject_token_renews_the_exchange(driver: Driver, idp: OAuth2Emulator) -> None:
    """When the auth object the subject comes from replaces its token (here: the API
    refused it), the exchanged token is renewed at the next request (in the background,
    the current one still sent), with the new subject: no surprise past its subject."""
    auth = _exchange(idp)
    upstream = auth.options.derived.subject.upstream  # type: ignore[union-attr]
    assert driver.send(auth, "GET", idp.api_url()).status == 200
    first = auth.token
    assert first is not None
    upstream._manager.renew_rejected(upstream.token)  # the subject's token is replaced
    assert driver.send(auth, "GET", idp.api_url()).status == 200
    assert idp.exchanges_by_audience == {ORDERS: 2}
    assert auth.token is not None
    assert auth.token.access_token != first.access_token
    assert idp.token_calls["password"] + idp.token_calls["refresh_token"] == 2


def test_a_late_word_of_a_subject_already_used_changes_nothing(idp: OAuth2Emulator) -> None:
    """The subject's object tells its followers after it wakes its waiters: an exchange
    that already made its token from the new subject meanwhile is not renewed again
    (the race that cost extra token calls under load)."""
    from authplug import TokenState

    auth = _exchange(idp)
    upstream = auth.options.derived.subject.upstream  # type: ignore[union-attr]
    auth.get_token()
    upstream._manager.renew_rejected(upstream.token)  # a new subject; the exchange is due
    assert auth._manager.state() is TokenState.STALE
    auth._manager.renew_rejected(auth.token)  # renewed from the new subject
    assert auth._manager.state() is TokenState.FRESH
    auth._manager.subject_changed(upstream.token)  # the word comes late
    assert auth._manager.state() is TokenState.FRESH
    assert idp.exchanges_by_audience == {ORDERS: 2}
