"""The token call without a server: plans driven by hand, what goes on the wire."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import pytest

from authplug import AuthError, BaseAuth, ConfigurationError, Token, TokenEndpointError
from authplug._call.client import TokenClient
from authplug._call.messages import RawResponse, TransportFailure
from authplug._call.plan import Send, Sleep
from authplug._redact import reveal
from authplug.providers.dakota import DAKOTA
from authplug.providers.telmai import TELMAI
from authplug.spec import GENERIC, ProviderSpec
from authplug.testing import FakeClock

SECRET = "q+Z/7r=%41 x~"
PASSWORD = 'pa ss+w/o=rd%41"é'


def make_client(spec: ProviderSpec = GENERIC, **options: Any) -> TokenClient:
    """The token client of an auth object built with ``options`` (its first use)."""
    kwargs: dict[str, Any] = {
        "spec": spec,
        "token_url": "https://login.example.com/token",
        "client_id": "my-app",
        "client_secret": SECRET,
        "username": "alice",
        "password": PASSWORD,
        "client_auth": "client_secret_post",
        "retries": 2,
        "clock": FakeClock(),
    }
    kwargs.update(options)
    return BaseAuth(**kwargs)._client


def answer(status: int, data: object = None, **headers: str) -> RawResponse:
    body = b"" if data is None else json.dumps(data).encode()
    return RawResponse(status, {"content-type": "application/json", **headers}, body)


# -- the plan, step by step --------------------------------------------------------------


def test_a_503_with_retry_after_waits_then_a_token_ends_the_plan() -> None:
    plan = make_client().grant()
    assert isinstance(next(plan), Send)
    assert plan.send(answer(503, {}, **{"retry-after": "2"})) == Sleep(2.0)
    assert isinstance(plan.send(None), Send)
    with pytest.raises(StopIteration) as done:
        plan.send(answer(200, {"access_token": "abcdef", "expires_in": 60}))
    token = done.value.value
    assert isinstance(token, Token)
    assert token.access_token == "abcdef"


def test_failures_to_reach_the_endpoint_run_out_as_a_token_endpoint_error() -> None:
    plan = make_client().grant()
    effect = next(plan)
    for _ in range(2):
        assert isinstance(effect, Send)
        assert isinstance(plan.throw(TransportFailure("ConnectError: refused")), Sleep)
        effect = plan.send(None)
    with pytest.raises(TokenEndpointError, match=r"after 3 attempt\(s\): ConnectError"):
        plan.throw(TransportFailure("ConnectError: refused"))


def test_each_attempt_is_prepared_afresh() -> None:
    """Retries send a newly prepared request (fresh assertions, fresh transaction ids)."""
    plan = make_client().grant()
    first = next(plan)
    plan.send(answer(502, {}))
    second = plan.send(None)
    assert isinstance(first, Send)
    assert isinstance(second, Send)
    assert first.request is not second.request
    assert first.request.stand_ins[0].text != second.request.stand_ins[0].text


# -- what goes on the wire ----------------------------------------------------------------


def wire(client: TokenClient) -> tuple[str, dict[str, str], bytes]:
    request = client.prepare_grant()
    return reveal(request.url, request.headers, request.body, request.body_kind, request.stand_ins)


def test_stand_ins_hold_no_secret_until_revealed() -> None:
    request = make_client(client_auth="client_secret_basic").prepare_grant()
    prepared = repr(request) + request.url + str(dict(request.headers)) + request.body.decode()
    for secret in (SECRET, PASSWORD, "cSUy"):
        assert secret not in prepared
    _, headers, body = wire(make_client(client_auth="client_secret_basic"))
    form = dict(parse_qsl(body.decode()))
    assert form["password"] == PASSWORD
    assert "client_secret" not in form
    scheme, credentials = headers["Authorization"].split()
    client_id, _, secret = base64.b64decode(credentials).decode().partition(":")
    assert scheme == "Basic"
    # RFC 6749 2.3.1: each part form-encoded before Base64; "+" is %2B, a space %20.
    assert "%2B" in secret
    assert "%20" in secret
    assert (unquote_plus(client_id), unquote_plus(secret)) == ("my-app", SECRET)


def test_a_json_body_carries_the_secrets_json_escaped() -> None:
    _, headers, body = wire(make_client(DAKOTA, client_id=None, client_secret=None))
    assert json.loads(body) == {"grant_type": "password", "username": "alice", "password": PASSWORD}
    assert headers["Content-Type"] == "application/json"


def test_secrets_in_the_query_are_form_encoded() -> None:
    from dataclasses import replace

    spec = replace(TELMAI, params_in="query")
    url, _, body = wire(make_client(spec, client_secret=None, client_auth="none"))
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["password"] == PASSWORD
    assert query["grantType"] == "password"
    assert body == b""


# -- the steps a plan adds: the DPoP nonce, revocation ---------------------------------


def test_a_dpop_server_asking_for_a_nonce_gets_one_more_attempt() -> None:
    """RFC 9449 §8: a use_dpop_nonce refusal with a new nonce is sent once more, and the
    token is bound to the key."""
    plan = make_client(dpop=True).grant()
    first = next(plan)
    refusal = answer(400, {"error": "use_dpop_nonce"}, **{"dpop-nonce": "n-1"})
    second = plan.send(refusal)
    assert isinstance(first, Send)
    assert isinstance(second, Send)
    assert first.request.headers["DPoP"] != second.request.headers["DPoP"]
    with pytest.raises(StopIteration) as done:
        plan.send(answer(200, {"access_token": "abcdef", "token_type": "DPoP"}))
    assert done.value.value.dpop_jkt is not None


def test_a_nonce_asked_for_twice_is_a_server_fault_not_a_refusal() -> None:
    """A server that still asks for a nonce after getting it broke the protocol: a
    TokenEndpointError, never CredentialsRejectedError."""
    plan = make_client(dpop=True).grant()
    next(plan)
    plan.send(answer(400, {"error": "use_dpop_nonce"}, **{"dpop-nonce": "n-1"}))
    with pytest.raises(TokenEndpointError, match="still asks for a DPoP nonce"):
        plan.send(answer(400, {"error": "use_dpop_nonce"}, **{"dpop-nonce": "n-1"}))


def test_a_refused_revocation_says_revocation() -> None:
    plan = make_client(revocation_url="https://login.example.com/revoke").revoke(
        Token(access_token="at-123456", refresh_token="rt-123456")
    )
    sent = next(plan)
    assert isinstance(sent, Send)
    assert sent.request.purpose == "revocation"
    with pytest.raises(AuthError, match="revocation refused") as info:
        plan.send(answer(401, {"error": "invalid_client"}))
    assert info.value.status_code == 401


def test_revocation_needs_an_endpoint() -> None:
    plan = make_client().revoke(Token(access_token="at-123456"))
    with pytest.raises(ConfigurationError, match="no revocation endpoint"):
        next(plan)
