"""Configuration mistakes are ConfigurationError (a ValueError) at construction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from authplug import (
    ConfigurationError,
    OAuth2ClientCredentialsAuth,
    OAuth2PasswordAuth,
    Token,
)


def build(**changes: Any) -> OAuth2PasswordAuth:
    options: dict[str, Any] = {
        "token_url": "https://login.example.com/token",
        "username": "u",
        "password": "p",
    }
    options.update(changes)
    return OAuth2PasswordAuth(**options)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/token",
        "http://127.0.0.1/token",
        "http://127.8.9.10/t",
        "http://[::1]:9000/token",
        "https://login.example.com/token",
    ],
)
def test_accepted_urls(url: str) -> None:
    """https anywhere, http on loopback only."""
    assert build(token_url=url).token_url == url


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://login.example.com/token", "plain http"),
        ("http://10.0.0.1/token", "plain http"),
        ("ftp://login.example.com/token", "https URL"),
        ("https://user:pw@login.example.com/token", "credentials"),
        ("not a url", "no host"),
        ("", "URL string"),
    ],
)
def test_refused_urls(url: str, words: str) -> None:
    """A token URL that would leak credentials, or is not a URL, is refused."""
    with pytest.raises(ConfigurationError, match=words):
        build(token_url=url)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"username": ""}, "username"),
        ({"password": None}, "password"),
        ({"leeway": -1}, "leeway"),
        ({"leeway": "60"}, "leeway"),
        ({"timeout": 0}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"retries": True}, "retries"),
        ({"client_auth": "private_key_jwt"}, "client_auth"),
        ({"client_auth": "client_secret_basic"}, "client_secret"),
        ({"refresh_status_codes": (401, 99)}, "refresh_status_codes"),
        ({"on_token": "print"}, "on_token"),
        ({"token": "abc"}, "token="),
        ({"token": {"token_type": "bearer"}}, "access_token"),
        ({"token": {"access_token": "x", "expires_in": "soon"}}, "expires_in"),
        ({"scope": 42}, "scope"),
        ({"cache": object()}, "cache"),
    ],
)
def test_bad_options(changes: dict[str, Any], words: str) -> None:
    """Each mistake names the argument."""
    with pytest.raises(ConfigurationError, match=words):
        build(**changes)


def test_configuration_error_is_value_error() -> None:
    assert issubclass(ConfigurationError, ValueError)


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        build(leway=60)


def test_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        OAuth2PasswordAuth("https://x.example/token", "u", "p")  # type: ignore[misc]


def test_unreadable_certificate_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "client.pem"
    with pytest.raises(ConfigurationError, match=r"client\.pem"):
        build(cert=str(missing))
    missing.write_text("x")
    with pytest.raises(ConfigurationError, match=r"key\.pem"):
        build(cert=(str(missing), str(tmp_path / "key.pem")))


def test_client_credentials_need_both() -> None:
    with pytest.raises(ConfigurationError, match="client_secret"):
        OAuth2ClientCredentialsAuth(
            token_url="https://x.example/token", client_id="id", client_secret=""
        )


def test_auth_is_never_falsy() -> None:
    """requests and httpx test ``if auth:``; the object must always be true."""
    assert bool(build())


def test_token_argument_accepts_token_and_dict() -> None:
    token = Token(access_token="abc", expires_at=1e12)
    assert build(token=token).token is not None
    assert build(token={"access_token": "abc", "expires_in": 60}).token is not None
