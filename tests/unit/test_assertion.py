"""Client assertions (RFC 7523): each one decoded and its claims checked, a fresh one per
attempt, the key never shown, and every impossible combination named at construction."""

from __future__ import annotations

import json
import logging
import pickle
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from authplug import (
    ConfigurationError,
    MogoplusAuth,
    OAuth2ClientCredentialsAuth,
    OAuth2PasswordAuth,
    SemansysAuth,
    TokenEndpointError,
)
from authplug._redact import reveal
from authplug.testing import OAuth2Emulator

jwk = pytest.importorskip("joserfc.jwk")
jwt = pytest.importorskip("joserfc.jwt")

TOKEN_URL = "https://login.example.com/oauth2/token"
SECRET = "s3cret-" * 8


@pytest.fixture(scope="module")
def rsa() -> Any:
    return jwk.RSAKey.generate_key(2048)


def _body(auth: Any) -> dict[str, list[str]]:
    """The grant request's form (or JSON body) as it would go on the wire."""
    request = auth._client.prepare_grant()
    _url, _headers, body = reveal(
        request.url, request.headers, request.body, request.body_kind, request.stand_ins
    )
    if request.body_kind == "json":
        return {k: v if isinstance(v, list) else [v] for k, v in json.loads(body).items()}
    return parse_qs(body.decode())


def _checking(key: Any) -> OAuth2Emulator:
    """An emulator that verifies assertions with ``key``'s public half."""
    emulator = OAuth2Emulator(client_secret=None)
    emulator.client_key = key.as_dict(private=False)
    return emulator


def _claims(assertion: str, key: Any, alg: str) -> tuple[dict[str, Any], dict[str, Any]]:
    token = jwt.decode(assertion, key, algorithms=[alg])
    return dict(token.header), dict(token.claims)


@pytest.mark.parametrize(
    ("make", "alg", "expected"),
    [
        (lambda: jwk.RSAKey.generate_key(2048), None, "RS256"),
        (lambda: jwk.RSAKey.generate_key(2048), "PS256", "PS256"),
        (lambda: jwk.ECKey.generate_key("P-256"), None, "ES256"),
        (lambda: jwk.ECKey.generate_key("P-384"), None, "ES384"),
        (lambda: jwk.OKPKey.generate_key("Ed25519"), None, "Ed25519"),
    ],
)
def test_private_key_jwt_claims(make: Any, alg: str | None, expected: str) -> None:
    key = make()
    auth = OAuth2ClientCredentialsAuth(
        token_url=TOKEN_URL,
        client_id="my-client",
        private_key=key.as_dict(private=True, kid="key-1"),
        signing_alg=alg,
    )
    form = _body(auth)
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_assertion_type"] == [
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    ]
    assert "client_secret" not in form
    assert "client_id" not in form
    before = int(time.time())
    header, claims = _claims(form["client_assertion"][0], key, expected)
    assert header["alg"] == expected
    assert header["kid"] == "key-1"
    assert claims["iss"] == claims["sub"] == "my-client"
    assert claims["aud"] == TOKEN_URL
    assert before - 1 <= claims["iat"] <= before + 1
    assert claims["exp"] - claims["iat"] == 60
    assert len(claims["jti"]) >= 32


def test_client_secret_jwt_claims() -> None:
    auth = OAuth2ClientCredentialsAuth(
        token_url=TOKEN_URL,
        client_id="my-client",
        client_secret=SECRET,
        client_auth="client_secret_jwt",
        assertion_audience="https://login.example.com",
    )
    form = _body(auth)
    header, claims = _claims(form["client_assertion"][0], jwk.OctKey.import_key(SECRET), "HS256")
    assert header["alg"] == "HS256"
    assert "kid" not in header
    assert claims["aud"] == "https://login.example.com"
    assert SECRET not in json.dumps(form)


def test_every_attempt_gets_a_fresh_assertion(rsa: Any) -> None:
    """A retried call must not resend a jti the server may have seen (RFC 7523 §3)."""
    with _checking(rsa) as emulator:
        emulator.fail_next(2, status=503, retry_after="0")
        auth = OAuth2ClientCredentialsAuth(
            token_url=emulator.token_url, client_id="demo-client", private_key=rsa.as_dict(True)
        )
        auth.get_token()
        sent = [request.form()["client_assertion"] for request in emulator.token_requests]
    assert len(sent) == 3
    ids = {_claims(a, rsa, "RS256")[1]["jti"] for a in sent}
    assert len(ids) == 3


def test_assertion_grant_on_a_provider_class(rsa: Any) -> None:
    """Every class takes the options: Semansys with a key in place of its secret."""
    auth = SemansysAuth(
        client_id="semansys-client",
        private_key=rsa.as_dict(private=True),
        username="u",
        password="p",
    )
    form = _body(auth)
    assert form["grant_type"] == ["password"]
    assert "client_assertion" in form


# -- the key never shows -----------------------------------------------------------------


def test_the_key_never_shows(rsa: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pem = rsa.as_pem(private=True).decode()
    private = rsa.as_dict(private=True)
    secret_parts = [private["d"], private["p"], pem.splitlines()[1]]
    path = tmp_path / "key.pem"
    path.write_text(pem)
    caplog.set_level(logging.DEBUG)
    with _checking(rsa) as emulator:
        auth = OAuth2ClientCredentialsAuth(
            token_url=emulator.token_url, client_id="demo-client", private_key=path
        )
        auth.get_token()
        emulator.fail_next(4, retry_after="0")
        failing = OAuth2ClientCredentialsAuth(
            token_url=emulator.token_url, client_id="demo-client", private_key=path, retries=3
        )
        with pytest.raises(TokenEndpointError) as caught:
            failing.get_token()
    texts = [repr(auth), repr(auth.options), repr(auth.options.signing_key), str(caught.value)]
    texts += [record.getMessage() for record in caplog.records]
    for text in texts:
        for part in secret_parts:
            assert part not in text
    with pytest.raises(TypeError):
        pickle.dumps(auth.options.signing_key)


def test_a_bad_key_is_named_without_its_content(tmp_path: Path) -> None:
    broken = (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC-not-a-key\n"
        "-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(ConfigurationError) as caught:
        OAuth2ClientCredentialsAuth(token_url=TOKEN_URL, client_id="c", private_key=broken)
    assert "not a usable private key" in str(caught.value)
    assert "MIIEvQ" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# -- configuration mistakes ---------------------------------------------------------------


@pytest.fixture
def key_dict(rsa: Any) -> dict[str, Any]:
    return dict(rsa.as_dict(private=True))


@pytest.fixture
def assertion_file(tmp_path: Path) -> Path:
    path = tmp_path / "assertion"
    path.write_text("a.b.c")
    return path


def test_private_key_jwt_without_a_key() -> None:
    with pytest.raises(ConfigurationError, match="needs private_key="):
        OAuth2ClientCredentialsAuth(
            token_url=TOKEN_URL, client_id="c", client_auth="private_key_jwt"
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"client_auth": "tls_client_auth"}, "needs cert="),
        ({"client_auth": "client_secret_basic"}, "needs client_secret="),
        ({"client_auth": "client_secret_jwt"}, "needs client_secret="),
        ({"signing_alg": "RS256"}, "go with private_key="),
        ({"issuer": "https://login.example.com", "token_url": TOKEN_URL}, "not both"),
        ({"token_url": None}, "token_url= is required"),
        ({"issuer": "https://login.example.com?x=1", "token_url": None}, "no query"),
        ({"issuer": "http://login.example.com", "token_url": None}, "plain http"),
        ({"revocation_url": "ftp://x"}, "must be an https URL"),
        ({"revoke_on_close": "yes"}, "revoke_on_close="),
        ({"revoke_on_close": True}, "needs revocation_url="),
        ({"client_assertion": "eyJh.eyJz.sig"}, "looks like an assertion itself"),
        ({"client_assertion": "/nonexistent/token"}, "is not a file"),
        ({"client_assertion": 42}, "takes a callable"),
        ({"private_key": "/nonexistent/key.pem"}, "cannot be read"),
        ({"private_key": 42}, "takes a PEM string"),
    ],
)
def test_impossible_combinations(options: dict[str, Any], message: str) -> None:
    kwargs: dict[str, Any] = {"token_url": TOKEN_URL, "client_id": "c", "client_secret": None}
    if options.get("client_auth") == "client_secret_basic" or "signing_alg" in options:
        kwargs["client_secret"] = None
    kwargs.update(options)
    secret = kwargs.pop("client_secret")
    with pytest.raises(ConfigurationError, match=message):
        OAuth2PasswordAuth(username="u", password="p", client_secret=secret, **kwargs)


def test_key_and_assertion_mistakes(key_dict: dict[str, Any], assertion_file: Path) -> None:
    base: dict[str, Any] = {"token_url": TOKEN_URL, "client_id": "c"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"private_key": key_dict, "client_assertion": assertion_file}, "not both"),
        ({"private_key": key_dict, "client_auth": "client_secret_post"}, "leave client_auth="),
        ({"private_key": key_dict, "signing_alg": "ES256"}, "does not fit this RSA key"),
        ({"private_key": {k: v for k, v in key_dict.items() if k in ("kty", "n", "e")}}, "public"),
        ({"private_key": {"kty": "oct", "k": "c2VjcmV0" * 4}}, "symmetric key"),
        ({"client_secret": "short", "client_auth": "client_secret_jwt"}, "at least 32 bytes"),
        (
            {"client_secret": SECRET, "client_auth": "client_secret_jwt", "signing_alg": "RS256"},
            "signs with HS256",
        ),
    ]
    for options, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            OAuth2ClientCredentialsAuth(**base, **options)
    with pytest.raises(ConfigurationError, match="needs client_id="):
        OAuth2PasswordAuth(token_url=TOKEN_URL, username="u", password="p", private_key=key_dict)


def test_client_secret_is_optional_where_a_key_authenticates(
    key_dict: dict[str, Any], assertion_file: Path, tmp_path: Path
) -> None:
    assert OAuth2ClientCredentialsAuth(token_url=TOKEN_URL, client_id="c", private_key=key_dict)
    assert OAuth2ClientCredentialsAuth(
        token_url=TOKEN_URL, client_id="c", client_assertion=assertion_file
    )
    with pytest.raises(ConfigurationError, match="client_secret= is required"):
        OAuth2ClientCredentialsAuth(token_url=TOKEN_URL, client_id="c")
    cert = tmp_path / "client.pem"
    trustme = pytest.importorskip("trustme")
    trustme.CA().issue_cert("c@example.com").private_key_and_cert_chain_pem.write_to_path(cert)
    auth = MogoplusAuth(client_id="c", cert=str(cert), client_auth="tls_client_auth")
    assert auth.options.client_secret is None
    with pytest.raises(ConfigurationError, match="sends no secret"):
        MogoplusAuth(
            client_id="c", client_secret="s", cert=str(cert), client_auth="tls_client_auth"
        )
    with pytest.raises(ConfigurationError, match="client_secret= must be a non-empty"):
        MogoplusAuth(client_id="c", cert=str(cert))


def test_assertion_source_failures_are_auth_errors(tmp_path: Path) -> None:
    path = tmp_path / "assertion"
    path.write_text("a.b.c")
    with OAuth2Emulator(client_id=None, client_secret=None) as emulator:
        auth = OAuth2ClientCredentialsAuth(
            token_url=emulator.token_url, client_id="c", client_assertion=path
        )
        path.write_text("  \n")
        with pytest.raises(TokenEndpointError, match="gave an empty assertion"):
            auth.get_token()
        path.unlink()
        auth._manager._failure = None
        with pytest.raises(TokenEndpointError, match="cannot be read"):
            auth.get_token()

        def broken() -> str:
            raise RuntimeError("metadata server down")

        failing = OAuth2ClientCredentialsAuth(
            token_url=emulator.token_url, client_id="c", client_assertion=broken
        )
        with pytest.raises(TokenEndpointError, match="metadata server down") as caught:
            failing.get_token()
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert emulator.token_calls.total() == 0


def test_the_emulator_checks_assertions_strictly(rsa: Any) -> None:
    """The emulators' private_key_jwt knob (``client_key``) refuses what a server must."""
    emulator = OAuth2Emulator(client_secret=None)
    emulator.client_key = rsa.as_dict(private=False)
    with emulator:
        now = int(time.time())
        good = {
            "iss": "demo-client",
            "sub": "demo-client",
            "aud": emulator.token_url,
            "jti": "one",
            "iat": now,
            "exp": now + 60,
        }

        def check(claims: dict[str, Any], key: Any = rsa, **params: str) -> bool:
            assertion = jwt.encode({"alg": "RS256"}, claims, key)
            form = {
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
                **params,
            }
            return emulator.check_assertion(form) is None

        assert check(good)
        assert not check(good)  # the same jti again
        assert check({**good, "jti": "two", "aud": [emulator.issuer, "x"]})
        assert not check({**good, "jti": "3", "aud": "https://elsewhere.example/token"})
        assert not check({**good, "jti": "4", "exp": now - 1})
        assert not check({**good, "jti": "5", "exp": now + 3600})
        assert not check({**good, "jti": "6", "sub": "someone-else"})
        assert not check({**good, "jti": "7"}, key=jwk.RSAKey.generate_key(2048))
        assert not check({**good, "jti": "8"}, client_id="another-client")
        del good["jti"]
        assert not check(good)


def test_a_relative_assertion_file_with_dots_is_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``token.v1.jwt`` has the dots of a JWT; an existing file is still read as a file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "token.v1.jwt").write_text("a.b.c")
    auth = OAuth2ClientCredentialsAuth(
        token_url=TOKEN_URL, client_id="c", client_assertion="token.v1.jwt"
    )
    assert repr(auth.options.client_assertion) == "AssertionSource('token.v1.jwt')"


def test_every_provider_class_takes_a_key(rsa: Any) -> None:
    """Telmai (no client secret), Dakota and the login form take private_key= too."""
    from authplug import DakotaAuth, LoginFormAuth, TelmaiAuth

    key = rsa.as_dict(private=True)
    common: dict[str, Any] = {"username": "u", "password": "p", "private_key": key}
    made = [
        TelmaiAuth(auth_endpoint="https://telmai.example", client_id="t", **common),
        DakotaAuth(client_id="d", **common),
        LoginFormAuth(base_url="https://app.example/api", client_id="l", **common),
    ]
    for auth in made:
        assert auth.options.client_auth == "private_key_jwt"
        assert "client_assertion" in _body(auth)
    plain = TelmaiAuth(
        auth_endpoint="https://telmai.example", client_id="t", username="u", password="p"
    )
    assert plain.options.client_auth == "none"
