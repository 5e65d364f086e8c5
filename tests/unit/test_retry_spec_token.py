"""Pure values: Retry-After and backoff, error parsers, body descriptions, Token, specs."""

from __future__ import annotations

import email.utils

import pytest

from authplug import (
    ConfigurationError,
    CredentialsRejectedError,
    OAuth2PasswordAuth,
    ProviderSpec,
    Token,
    TokenEndpointError,
)
from authplug._call.retry import RetryPolicy, parse_retry_after
from authplug.spec import (
    describe_body,
    description_error,
    message_error,
    problem_details_error,
    rfc6749_error,
)

NOW = 1_800_000_000.0


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("12", now=NOW) == 12.0
    assert parse_retry_after(email.utils.formatdate(NOW + 30, usegmt=True), now=NOW) == 30.0
    assert parse_retry_after(email.utils.formatdate(NOW - 30, usegmt=True), now=NOW) == 0.0
    assert parse_retry_after("soon", now=NOW) is None
    assert parse_retry_after(None, now=NOW) is None


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(retries=10, backoff=1.0, max_backoff=5.0)
    assert 0.5 <= policy.delay(0) <= 1.0
    assert 2.0 <= policy.delay(2) <= 4.0
    assert policy.delay(8) <= 5.0
    assert policy.delay(0, retry_after=120.0) == 5.0
    assert policy.should_retry_status(429)
    assert policy.should_retry_status(503)
    assert not policy.should_retry_status(400)


@pytest.mark.parametrize(
    ("parser", "body", "expected"),
    [
        (rfc6749_error, b'{"error": "invalid_client"}', ("invalid_client", "invalid_client")),
        (rfc6749_error, b'{"error": "x", "error_description": "y"}', ("x", "y")),
        (
            problem_details_error,
            b'{"title": "Unauthorized", "detail": "bad"}',
            ("Unauthorized", "bad"),
        ),
        (description_error, b'{"description": "Forbidden"}', (None, "Forbidden")),
        (
            message_error,
            b"Please provide correct username and password",
            (None, "Please provide correct username and password"),
        ),
        (
            message_error,
            b'{"message": "Could Not Find Resource"}',
            (None, "Could Not Find Resource"),
        ),
        (rfc6749_error, b'{"detail": "fell back"}', (None, "fell back")),
    ],
)
def test_error_parsers(parser: object, body: bytes, expected: tuple[str | None, str]) -> None:
    assert tuple(parser(400, "application/json", body)) == expected  # type: ignore[operator]


def test_describe_body() -> None:
    assert describe_body(502, "text/html", b"<html><title>Bad</title>") == (
        "an HTML page titled 'Bad' (HTTP 502)"
    )
    assert describe_body(200, "", b"  ") == "an empty body (HTTP 200)"


def test_token_round_trip() -> None:
    token = Token.from_dict(
        {"access_token": "abc", "expires_in": 60, "scope": ["a", "b"], "custom": 1}, now=NOW
    )
    assert token.expires_at == NOW + 60
    assert token.scope == "a b"
    assert token.extra == {"custom": 1}
    assert Token.from_dict(token.to_dict()) == token
    with pytest.raises(AttributeError):
        token.access_token = "other"  # type: ignore[misc]


def test_spec_must_match_the_grant() -> None:
    with pytest.raises(ConfigurationError, match="grant_type"):
        OAuth2PasswordAuth(
            token_url="https://x.example/t",
            username="u",
            password="p",
            spec=ProviderSpec(name="cc", grant_type="client_credentials"),
        )


def test_error_message_names_provider_status_code_and_words() -> None:
    """The message says provider, status, code and description, each once."""
    both = CredentialsRejectedError(
        "user authentication failed", provider="semansys", status_code=403, error="invalid_grant"
    )
    assert str(both) == "semansys: HTTP 403: invalid_grant: user authentication failed"
    bare = CredentialsRejectedError(
        "invalid_client", provider="mogoplus", status_code=401, error="invalid_client"
    )
    assert str(bare) == "mogoplus: HTTP 401: invalid_client"
    assert str(TokenEndpointError("unreachable")) == "oauth2: unreachable"


def test_describe_body_without_excerpt_quotes_nothing() -> None:
    """A 2xx answer is described by kind and size only."""
    for body, kind in [
        (b'{"access_token": "secret-part', "JSON that does not parse (truncated?)"),
        (b"secret-part", "a body that is not JSON"),
        (b'["secret-part"]', "JSON that is not an object (a list)"),
        (b'{"access_token": "secret-part"}', "a JSON object"),
    ]:
        described = describe_body(200, "application/json", body, excerpt=False)
        assert described == f"{kind}, {len(body)} bytes (HTTP 200)"
