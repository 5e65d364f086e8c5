"""The token call without a server: plans driven by hand, answers of every shape."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authplug import AuthError, Token, TokenEndpointError
from authplug._call.answer import AnswerReader
from authplug._call.client import TokenClient
from authplug._call.messages import RawResponse, TransportFailure
from authplug._call.plan import Send, Sleep
from authplug._options import Options
from authplug._redact import Scrubber, Secret, reveal
from authplug.providers.dakota import DAKOTA
from authplug.providers.loginform import LOGINFORM
from authplug.providers.mogoplus import MOGOPLUS
from authplug.providers.semansys import SEMANSYS
from authplug.providers.telmai import TELMAI
from authplug.spec import GENERIC, ProviderSpec
from authplug.testing import FakeClock

SPECS = [GENERIC, SEMANSYS, MOGOPLUS, TELMAI, DAKOTA, LOGINFORM]
SECRET = "q+Z/7r=%41 x~"
PASSWORD = 'pa ss+w/o=rd%41"é'


def make_client(spec: ProviderSpec = GENERIC, **options: Any) -> TokenClient:
    kwargs: dict[str, Any] = {
        "spec": spec,
        "token_url": "https://login.example.com/token",
        "client_id": "my-app",
        "client_secret": Secret(SECRET),
        "username": "alice",
        "password": Secret(PASSWORD),
        "client_auth": "client_secret_post",
        "retries": 2,
        "clock": FakeClock(),
    }
    kwargs.update(options)
    return TokenClient(Options.from_kwargs(**kwargs))


SCRUB = Scrubber((Secret(SECRET), Secret(PASSWORD)))


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


# -- every answer ends as a Token or an AuthError -----------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
token_like = st.fixed_dictionaries(
    {},
    optional={
        name: json_values | st.text(max_size=30)
        for name in (
            "access_token",
            "token_type",
            "expires_in",
            "expires",
            "expires_at",
            "refresh_token",
            "refresh_expires_in",
            "scope",
            "error",
            "error_description",
            "description",
            "detail",
            "title",
            "message",
        )
    },
)
bodies = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | token_like.map(lambda v: json.dumps(v).encode())
    | st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth)
    | st.integers(300, 1000).map(
        lambda n: b'{"access_token": "abc", "expires_in": 1%s}' % (b"0" * n)
    )
)


READERS = [AnswerReader(spec, FakeClock()) for spec in SPECS]


def _outcome(reader: AnswerReader, raw: RawResponse) -> Token | AuthError:
    try:
        return reader.token(raw, SCRUB)
    except AuthError as exc:
        return exc


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    status=st.sampled_from([200, 201, 204, 400, 401, 403, 404, 422, 429, 500, 503]),
    body=bodies,
    content_type=st.sampled_from(["application/json", "text/html", "", "text/plain"]),
)
def test_any_answer_is_a_token_or_an_auth_error(
    status: int, body: bytes, content_type: str
) -> None:
    """Whatever the provider answers: no RecursionError, OverflowError, TypeError…

    The message stays short and holds no control character (no forged log line).
    """
    raw = RawResponse(status, {"content-type": content_type}, body)
    for reader in READERS:
        outcome = _outcome(reader, raw)
        if isinstance(outcome, Token):
            assert 200 <= status < 300
            continue
        assert outcome.provider == reader.spec.name
        assert len(str(outcome)) < 450
        assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in str(outcome))


@settings(max_examples=100, deadline=None)
@given(body=bodies, content_type=st.sampled_from(["application/json", "text/html", ""]))
def test_error_parsers_never_raise(body: bytes, content_type: str) -> None:
    for spec in SPECS:
        error, description = spec.parse_error(400, content_type, body)
        assert error is None or isinstance(error, str)
        assert isinstance(description, str)


def test_a_parse_error_hook_that_raises_is_not_believed() -> None:
    def broken(status: int, content_type: str, body: bytes) -> Any:
        raise KeyError("oops")

    reader = AnswerReader(ProviderSpec(name="acme", parse_error=broken), FakeClock())
    with pytest.raises(AuthError) as info:
        reader.token(answer(401, {"error": "x"}), SCRUB)
    assert info.value.status_code == 401
    assert "JSON" in info.value.description or "body" in info.value.description
