"""What a token is made from, each way it may be given, against the emulator's strict
grants: an async callable (async clients), a sync callable, a Kubernetes token file (as a
subject token and as an assertion), each obtained afresh at each token call."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from authplug import OAuth2JWTBearerAuth, OAuth2TokenExchangeAuth
from authplug.sources import KubernetesTokenFile
from authplug.testing import OAuth2Emulator

ISSUER = "https://kubernetes.default.svc"
ORDERS = "https://orders.internal"


@pytest.fixture
def key() -> ECKey:
    return ECKey.generate_key("P-256")


@pytest.fixture
def idp(key: ECKey) -> Iterator[OAuth2Emulator]:
    with OAuth2Emulator(trusted_issuers={ISSUER: key.as_dict(private=False)}) as emulator:
        emulator.refuse_replayed_assertions = False  # a projected token is presented again
        yield emulator


def _jwt(key: ECKey, subject: str, audience: str) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": subject, "aud": audience, "iat": now, "exp": now + 600}
    return jwt.encode({"alg": "ES256"}, claims, key)


def _exchange(idp: OAuth2Emulator, subject: object) -> OAuth2TokenExchangeAuth:
    return OAuth2TokenExchangeAuth(
        token_url=idp.token_url,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        subject_token=subject,
        audience=ORDERS,
    )


async def test_an_async_callable_subject_serves_an_async_client(
    idp: OAuth2Emulator, key: ECKey
) -> None:
    calls: list[str] = []

    async def subject() -> str:
        calls.append(_jwt(key, "job-1", idp.token_url))
        return calls[-1]

    auth = _exchange(idp, subject)
    async with httpx.AsyncClient(auth=auth) as client:
        assert (await client.get(idp.api_url())).status_code == 200
    assert len(calls) == 1
    token = auth.token
    assert token is not None
    seen = idp.issued_for(token.access_token)
    assert seen is not None
    assert seen["sub"] == "job-1"


def test_a_kubernetes_token_file_as_subject_and_as_assertion(
    idp: OAuth2Emulator, key: ECKey, tmp_path: Path
) -> None:
    """The file is read at each token call: a rotated token is the next call's."""
    path = tmp_path / "token"
    path.write_text(_jwt(key, "pod-a", idp.token_url))
    source = KubernetesTokenFile(path)
    exchange = _exchange(idp, source)
    bearer = OAuth2JWTBearerAuth(token_url=idp.token_url, assertion=source)
    first = exchange.get_token()
    assert bearer.get_token()
    path.write_text(_jwt(key, "pod-b", idp.token_url))  # kubelet rotated it
    assert exchange._manager.renew_rejected(first) is not None  # the API refused it
    renewed = exchange.token
    assert renewed is not None
    seen = idp.issued_for(renewed.access_token)
    assert seen is not None
    assert seen["sub"] == "pod-b"
    assert idp.token_calls["urn:ietf:params:oauth:grant-type:jwt-bearer"] == 1
    assert idp.exchanges_by_audience == {ORDERS: 2}


def test_a_sync_callable_assertion(idp: OAuth2Emulator, key: ECKey) -> None:
    made: list[str] = []

    def assertion() -> str:
        made.append(_jwt(key, "svc", idp.token_url))
        return made[-1]

    auth = OAuth2JWTBearerAuth(token_url=idp.token_url, assertion=assertion)
    assert httpx.get(idp.api_url(), auth=auth).status_code == 200
    assert len(made) == 1
