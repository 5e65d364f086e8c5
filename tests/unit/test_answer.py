"""Reading the token endpoint's answer: status to error class, field names, lifetimes;
any answer at all ends as a Token or an AuthError."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authplug import (
    AuthError,
    CredentialsRejectedError,
    Token,
    TokenEndpointError,
    TokenResponseError,
)
from authplug._call.answer import REJECTED_STATUSES, AnswerReader
from authplug._call.messages import RawResponse
from authplug._redact import Scrubber, Secret
from authplug.providers.dakota import DAKOTA
from authplug.providers.loginform import LOGINFORM
from authplug.providers.mogoplus import MOGOPLUS
from authplug.providers.semansys import SEMANSYS
from authplug.providers.telmai import TELMAI
from authplug.spec import GENERIC, ProviderSpec, rfc6749_error
from authplug.testing import FakeClock

SPECS = [GENERIC, SEMANSYS, MOGOPLUS, TELMAI, DAKOTA, LOGINFORM]
RFC6749 = ProviderSpec(name="acme", parse_error=rfc6749_error)
NO_SECRETS = Scrubber(())


def answer(status: int, data: object = None, content_type: str = "application/json") -> RawResponse:
    body = b"" if data is None else json.dumps(data).encode()
    return RawResponse(status, {"content-type": content_type}, body)


def read(
    raw: RawResponse, spec: ProviderSpec = GENERIC, clock: FakeClock | None = None
) -> Token | AuthError:
    reader = AnswerReader(spec, clock or FakeClock())
    try:
        return reader.token(raw, NO_SECRETS)
    except AuthError as exc:
        return exc


# -- status -> error class ------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(REJECTED_STATUSES))
def test_a_refusal_status_is_rejected_credentials(status: int) -> None:
    """400, 401, 403 and 422 mean the credentials were refused."""
    error = read(answer(status, {"error": "invalid_grant", "error_description": "bad"}), RFC6749)
    assert isinstance(error, CredentialsRejectedError)
    assert (error.status_code, error.error, error.description) == (status, "invalid_grant", "bad")
    assert error.provider == "acme"


@pytest.mark.parametrize("status", [404, 405, 429, 500, 502, 503])
def test_any_other_error_status_is_a_token_endpoint_error(status: int) -> None:
    """Any other non-2xx answer is the endpoint's fault, to be tried again later."""
    error = read(answer(status, {"error": "temporarily_unavailable"}), RFC6749)
    assert type(error) is TokenEndpointError
    assert (error.status_code, error.error) == (status, "temporarily_unavailable")


def test_a_refusal_prefixed_says_what_was_refused() -> None:
    """A revocation's refusal reads like a token call's, its words prefixed."""
    reader = AnswerReader(RFC6749, FakeClock())
    error = reader.refused(answer(401, {"error": "invalid_client"}), NO_SECRETS, "revocation: ")
    assert isinstance(error, CredentialsRejectedError)
    assert error.description == "revocation: invalid_client"


def test_the_error_words_are_scrubbed_of_the_calls_secrets() -> None:
    """An error body that echoes a secret shows ``***`` in the error's code and words."""
    reader = AnswerReader(RFC6749, FakeClock())
    body = {"error": "bad hunter2-secret", "error_description": "got hunter2-secret"}
    error = reader.refused(answer(400, body), Scrubber((Secret("hunter2-secret"),)))
    assert "hunter2" not in str(error)
    assert (error.error, error.description) == ("bad ***", "got ***")


def test_no_answer_names_the_endpoint_and_the_attempts() -> None:
    """A call that never got an answer is a TokenEndpointError without a status."""
    reader = AnswerReader(GENERIC, FakeClock())
    error = reader.unreachable("ConnectError: refused", NO_SECRETS, "revocation", 4)
    assert type(error) is TokenEndpointError
    assert error.status_code is None
    assert error.description == (
        "no answer from the revocation endpoint after 4 attempt(s): ConnectError: refused"
    )


@pytest.mark.parametrize(
    ("data", "content_type", "words"),
    [
        ([1, 2], "application/json", "expected a JSON token object"),
        (None, "text/html", "expected a JSON token object"),
        ({"token_type": "Bearer"}, "application/json", "no access_token"),
        ({"error": "invalid_scope"}, "application/json", "error in a 2xx answer"),
    ],
)
def test_a_2xx_that_is_no_token_is_a_token_response_error(
    data: object, content_type: str, words: str
) -> None:
    """A success status with a body that holds no usable token is the provider's fault."""
    error = read(answer(200, data, content_type))
    assert isinstance(error, TokenResponseError)
    assert error.status_code == 200
    assert words in error.description


def test_an_error_named_in_a_2xx_keeps_its_code() -> None:
    """``{"error": ...}`` with a 200 is an error with that code, not a token."""
    error = read(answer(200, {"error": "invalid_scope", "error_description": "no such"}))
    assert isinstance(error, TokenResponseError)
    assert (error.error, error.description) == ("invalid_scope", "no such")


# -- field names and lifetimes --------------------------------------------------------------


def test_a_lifetime_becomes_a_deadline_on_the_clocks_time() -> None:
    """``expires_in`` counts from the moment the answer is read; the provider's own
    ``expires_at`` is not trusted."""
    clock = FakeClock()
    data = {"access_token": "at", "expires_in": 300, "expires_at": 1}
    token = read(answer(200, data), clock=clock)
    assert isinstance(token, Token)
    assert token.issued_at == clock.time()
    assert token.expires_at == clock.time() + 300


def test_the_specs_field_names_are_read() -> None:
    """A provider's renamed lifetime fields (Telmai's ``expires``, Dakota's refresh
    lifetime) are read as RFC 6749's."""
    clock = FakeClock()
    telmai = read(answer(200, {"access_token": "at", "expires": 120}), TELMAI, clock)
    assert isinstance(telmai, Token)
    assert telmai.expires_at == clock.time() + 120
    data = {"access_token": "at", "expires_in": 60, "refresh_expires_in": 1800}
    dakota = read(answer(200, data), DAKOTA, clock)
    assert isinstance(dakota, Token)
    assert dakota.refresh_expires_at == clock.time() + 1800


def test_a_lifetime_as_a_numeric_string_is_read() -> None:
    clock = FakeClock()
    token = read(answer(200, {"access_token": "at", "expires_in": "90"}), clock=clock)
    assert isinstance(token, Token)
    assert token.expires_at == clock.time() + 90


@pytest.mark.parametrize("lifetime", [0, -5, None])
def test_a_lifetime_not_positive_means_none(lifetime: Any) -> None:
    """0, a negative number or null: the token is used until the API refuses it."""
    token = read(answer(200, {"access_token": "at", "expires_in": lifetime}))
    assert isinstance(token, Token)
    assert token.expires_at is None


def test_a_lifetime_not_positive_is_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    """One WARNING per reader, however many such answers come."""
    reader = AnswerReader(GENERIC, FakeClock())
    with caplog.at_level(logging.WARNING, logger="authplug"):
        for _ in range(3):
            reader.token(answer(200, {"access_token": "at", "expires_in": 0}), NO_SECRETS)
    said = (
        "oauth2: the token endpoint gave expires_in=0, not a positive lifetime; the token "
        "is used until the API refuses it"
    )
    assert [r.getMessage() for r in caplog.records] == [said]


def test_a_refresh_lifetime_of_zero_is_no_refresh_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Keycloak's ``refresh_expires_in: 0`` means no expiry, and is not warned about."""
    data = {"access_token": "at", "expires_in": 60, "refresh_expires_in": 0}
    with caplog.at_level(logging.WARNING, logger="authplug"):
        token = read(answer(200, data), DAKOTA)
    assert isinstance(token, Token)
    assert token.refresh_expires_at is None
    assert not caplog.records


@pytest.mark.parametrize("lifetime", ["soon", [60], {"s": 60}, True])
def test_a_lifetime_that_is_no_number_is_a_token_response_error(lifetime: Any) -> None:
    error = read(answer(200, {"access_token": "at", "expires_in": lifetime}))
    assert isinstance(error, TokenResponseError)
    assert "'expires_in' is not a usable number" in error.description


def test_the_token_keeps_what_is_not_its_own_in_extra() -> None:
    """Fields the token does not name (an id token, a provider's own) stay reachable."""
    token = read(answer(200, {"access_token": "at", "id_token": "x.y.z", "tenant": "t1"}))
    assert isinstance(token, Token)
    assert token.extra["id_token"] == "x.y.z"
    assert token.extra["tenant"] == "t1"


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
        return reader.token(raw, NO_SECRETS)
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
        reader.token(answer(401, {"error": "x"}), NO_SECRETS)
    assert info.value.status_code == 401
    assert "JSON" in info.value.description or "body" in info.value.description
