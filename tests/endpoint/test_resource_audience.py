"""``resource=`` (RFC 8707) and ``audience=``: on every grant and refresh, in the cache key.

The binding itself is proven on oidc-provider (tests/endpoint/test_real_servers.py); here the
wire, through the emulators: form and JSON bodies, renamed parameters, the cache key.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from authplug import ConfigurationError, DakotaAuth, OAuth2ClientCredentialsAuth
from authplug.cache import cache_key
from authplug.testing import DakotaEmulator, OAuth2Emulator

from ..conftest import password_auth

API_A = "https://api.example.com/"
API_B = "urn:example:billing"


def _sent(emulator: OAuth2Emulator) -> list[dict[str, list[str]]]:
    return [parse_qs(r.body.decode()) for r in emulator.token_requests]


def _auth(emulator: OAuth2Emulator, **options: Any) -> OAuth2ClientCredentialsAuth:
    assert emulator.client_id
    assert emulator.client_secret
    return OAuth2ClientCredentialsAuth(
        token_url=emulator.token_url,
        client_id=emulator.client_id,
        client_secret=emulator.client_secret,
        **options,
    )


def test_resources_and_audience_go_with_the_grant_and_the_refresh(
    emulator: OAuth2Emulator,
) -> None:
    auth = password_auth(emulator, resource=[API_A, API_B], audience="billing-api")
    with requests.Session() as session:
        session.auth = auth
        assert session.get(emulator.api_url(), timeout=10).status_code == 200
        emulator.revoke_all()
        assert session.get(emulator.api_url(), timeout=10).status_code == 200
    grant, refresh = _sent(emulator)
    assert grant["grant_type"] == ["password"]
    assert refresh["grant_type"] == ["refresh_token"]
    for sent in (grant, refresh):
        assert sent["resource"] == [API_A, API_B]
        assert sent["audience"] == ["billing-api"]


def test_nothing_extra_is_sent_by_default(emulator: OAuth2Emulator) -> None:
    _auth(emulator).get_token()
    (grant,) = _sent(emulator)
    assert "resource" not in grant
    assert "audience" not in grant


def test_a_json_body_lists_several_resources() -> None:
    with DakotaEmulator() as emulator:
        auth = DakotaAuth(**emulator.auth_kwargs(), resource=[API_A, API_B], audience="x")
        auth.get_token()
        body = json.loads(emulator.token_requests[-1].body)
    assert body["resource"] == [API_A, API_B]
    assert body["audience"] == "x"
    with DakotaEmulator() as emulator:
        DakotaAuth(**emulator.auth_kwargs(), resource=API_A).get_token()
        assert json.loads(emulator.token_requests[-1].body)["resource"] == API_A


def test_the_cache_key_tells_tokens_for_other_apis_apart() -> None:
    base: dict[str, Any] = {
        "provider": "p",
        "token_url": "https://login.example.com/token",
        "client_id": "c",
        "username": None,
        "scope": None,
    }
    plain = cache_key(**base)
    # Keys of tokens stored before these options existed do not change.
    assert plain == cache_key(**base, resource=(), audience=None)
    keys = {
        plain,
        cache_key(**base, resource=(API_A,)),
        cache_key(**base, resource=(API_B,)),
        cache_key(**base, audience="x"),
    }
    assert len(keys) == 4
    assert cache_key(**base, resource=(API_A, API_B)) == cache_key(**base, resource=(API_B, API_A))


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        ("api.example.com", "absolute URI"),
        ("https://api.example.com/#frag", "without a fragment"),
        ([API_A, ""], "takes a URI or a list"),
        ({"a": API_A}, "takes a URI or a list"),
        (5, "takes a URI or a list"),
    ],
)
def test_a_resource_that_is_not_an_absolute_uri_is_refused(
    emulator: OAuth2Emulator, resource: object, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _auth(emulator, resource=resource)


def test_an_empty_audience_is_refused(emulator: OAuth2Emulator) -> None:
    with pytest.raises(ConfigurationError, match="audience= must be a non-empty string"):
        _auth(emulator, audience="")
