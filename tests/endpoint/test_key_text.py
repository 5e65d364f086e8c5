"""Text given as ``private_key=``, ``dpop_key=`` or ``client_assertion=`` that is neither a
key, an assertion nor an existing file is described, never repeated: no part of it in the
message, a log record, the locals of the package's frames, or the command's stderr."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest

from authplug import BaseAuth, ConfigurationError, OAuth2ClientCredentialsAuth

serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
rsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")
jwe = pytest.importorskip("joserfc.jwe")
jwk = pytest.importorskip("joserfc.jwk")

TOKEN_URL = "https://login.example.com/oauth2/token"
SECRET = "client-secret-" * 3
SAML = (
    '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
    'ID="_8e8dc5f69a98cc4c1ff3427e5ce34606fd672f91e6" Version="2.0">'
    '<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_d71a3a8e9fcc45">'
    "<saml:Subject><saml:NameID>client-7f3a91</saml:NameID></saml:Subject>"
    "</saml:Assertion></samlp:Response>"
)

OPTIONS = ("private_key", "dpop_key", "client_assertion")
# What each message says of the value: for a key option, and for client_assertion=.
SHAPES: dict[str, tuple[str, str]] = {
    "base64 of a PEM": (
        "is base64 text that decodes to a PEM key: give the decoded PEM or a file",
        "is base64 text that decodes to a PEM key, not an assertion",
    ),
    "PEM body without BEGIN/END lines": (
        "without the BEGIN/END lines of a PEM",
        "without the BEGIN/END lines of a PEM (a PEM key's body, or a DER key), not an",
    ),
    "PEM body on one line": ("without the BEGIN/END lines of a PEM", "not an assertion"),
    "PEM with BEGN": ("whose BEGIN or END line is damaged", "is damaged, not an assertion"),
    "PEM with four dashes": ("whose BEGIN or END line is damaged", "is damaged, not an"),
    "PEM with a typo in its kind": (
        "its BEGIN line names no kind of private key",
        "is a PEM key, not an assertion",
    ),
    "JWE": (
        "is a JWE (an encrypted token), not a key",
        "looks like an assertion itself (a JWE)",
    ),
    "base64 SAML": (
        "decodes to XML (a SAML assertion), not a key",
        "looks like an assertion itself (base64 SAML)",
    ),
}


@pytest.fixture(scope="module")
def values() -> dict[str, str]:
    """Each shape, made from a real RSA key, a real JWE and a SAML response."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    body = pem.strip().splitlines()[1:-1]
    algorithms = ["RSA-OAEP-256", "A256GCM"]
    encrypted = jwe.encrypt_compact(
        {"alg": "RSA-OAEP-256", "enc": "A256GCM"},
        b'{"iss": "client-7f3a91", "sub": "client-7f3a91"}',
        jwk.RSAKey.generate_key(2048),
        algorithms=algorithms,
    )
    made = {
        "base64 of a PEM": base64.b64encode(pem.encode()).decode(),
        "PEM body without BEGIN/END lines": "\n".join(body),
        "PEM body on one line": "".join(body),
        "PEM with BEGN": pem.replace("-----BEGIN", "-----BEGN"),
        "PEM with four dashes": pem.replace("-----BEGIN", "----BEGIN"),
        "PEM with a typo in its kind": pem.replace("PRIVATE KEY", "PRIVTE KEY"),
        "JWE": encrypted,
        "base64 SAML": base64.b64encode(SAML.encode()).decode(),
    }
    assert made["JWE"].count(".") == 4
    return made


def fragments(value: str, size: int = 8) -> set[str]:
    """Every run of ``size`` characters of ``value``."""
    return {value[i : i + size] for i in range(len(value) - size + 1)}


def assert_no_part(value: str, *texts: str) -> None:
    parts = fragments(value)
    for text in texts:
        shown = sorted(part for part in parts if part in text)
        assert not shown, f"{shown[:3]} of the value in: {text[:300]}"


def package_frames(error: BaseException) -> str:
    """The traceback with locals from the base class's constructor down: the frames that
    receive the value (a caller's own frames, a subclass's included, hold it as given)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code is not BaseAuth.__init__.__code__:
        tb = tb.tb_next
    assert tb is not None
    return "".join(
        traceback.TracebackException(type(error), error, tb, capture_locals=True).format()
    )


def _construct(option: str, value: object) -> None:
    secret = SECRET if option == "dpop_key" else None  # the key options stand in for it
    OAuth2ClientCredentialsAuth(
        token_url=TOKEN_URL, client_id="c", client_secret=secret, **{option: value}
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("option", OPTIONS)
def test_key_text_is_described_never_repeated(
    values: dict[str, str], option: str, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The message says which option and what the value looks like; no 8 characters of
    the value are in it, its repr, a log record or the package's traceback locals."""
    caplog.set_level(logging.DEBUG)
    value = values[shape]
    with pytest.raises(ConfigurationError) as caught:
        _construct(option, value)
    message = str(caught.value)
    assert message.startswith(f"{option}= ")
    for_key, for_assertion = SHAPES[shape]
    assert (for_assertion if option == "client_assertion" else for_key) in message
    rendered = package_frames(caught.value)
    assert "_assertion.py" in rendered  # the frames that read the value are there
    assert "Hidden('***')" in rendered
    records = [record.getMessage() for record in caplog.records]
    assert_no_part(value, message, repr(caught.value), rendered, *records)


@pytest.mark.parametrize("option", ["private_key", "dpop_key"])
def test_a_plausible_path_is_shown_other_text_is_not(option: str, tmp_path: Path) -> None:
    """A missing file is named when the text is shaped like a path; text that is not, or a
    "path" with a long base64 run in it, is described without being repeated."""
    missing = str(tmp_path / "keys" / "client.pem")
    with pytest.raises(ConfigurationError) as caught:
        _construct(option, missing)
    assert f"{option}={missing!r} cannot be read (No such file or directory)" in str(caught.value)
    with pytest.raises(ConfigurationError, match="cannot be read") as caught:
        _construct(option, "client.pem")
    assert "'client.pem'" in str(caught.value)
    secretish = ["s3cr3t-Value_" * 4, "/run/secrets/" + "QmFzZTY0IGtleSBtYXRlcmlhbA" * 3]
    for text in secretish:
        with pytest.raises(ConfigurationError) as caught:
            _construct(option, text)
        assert str(caught.value).startswith(f"{option}= is neither a key nor an existing file")
        assert_no_part(text, str(caught.value))


def test_an_unrecognised_assertion_text_is_not_repeated(tmp_path: Path) -> None:
    """``client_assertion=`` text that is no assertion and no file: described; a missing
    file shaped like a path: named."""
    text = "opaque-token-" * 5
    with pytest.raises(ConfigurationError) as caught:
        _construct("client_assertion", text)
    assert "is neither an assertion nor an existing file" in str(caught.value)
    assert_no_part(text, str(caught.value))
    missing = str(tmp_path / "token")
    with pytest.raises(ConfigurationError, match="is not a file") as caught:
        _construct("client_assertion", missing)
    assert repr(missing) in str(caught.value)


def test_key_file_contents_are_described_not_repeated(
    values: dict[str, str], tmp_path: Path
) -> None:
    """A key file holding the base64 of a PEM or a PEM's body: what it holds, not its text."""
    for shape, words in (
        ("base64 of a PEM", "decodes to a PEM key"),
        ("PEM body without BEGIN/END lines", "without the BEGIN/END lines"),
    ):
        path = tmp_path / "key.pem"
        path.write_text(values[shape])
        with pytest.raises(ConfigurationError, match="not a usable private key") as caught:
            _construct("private_key", path)
        assert words in str(caught.value)
        assert_no_part(values[shape], str(caught.value))


def _command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authplug", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("flag", ["--private-key", "--client-assertion"])
def test_the_command_never_prints_key_text(values: dict[str, str], flag: str) -> None:
    """``authplug token`` with key text in ``--private-key`` or ``--client-assertion``:
    exit status 2, a message naming the option, no 8 characters of the value."""
    env = {
        "AUTHPLUG_SEMANSYS_CLIENT_ID": "semansys-client",
        "AUTHPLUG_SEMANSYS_USERNAME": "u",
        "AUTHPLUG_SEMANSYS_PASSWORD": "p",
        "AUTHPLUG_SEMANSYS_TOKEN_URL": TOKEN_URL,
    }
    option = flag[2:].replace("-", "_")
    for shape, value in values.items():
        result = _command("token", "semansys", f"{flag}={value}", env=env)
        assert result.returncode == 2, (shape, result.stderr)
        assert f"{option}= " in result.stderr, shape
        assert_no_part(value, result.stderr, result.stdout)


def test_a_hidden_value_is_not_pickled(values: dict[str, Any]) -> None:
    """The holder of key text refuses to be pickled or copied, like a Secret."""
    import copy
    import pickle

    from authplug._redact import Hidden, hidden, unhidden

    held = hidden(values["JWE"])
    assert isinstance(held, Hidden)
    assert repr(held) == "Hidden('***')"
    assert unhidden(held) == values["JWE"]
    assert hidden(None) is None
    with pytest.raises(TypeError):
        pickle.dumps(held)
    with pytest.raises(TypeError):
        copy.copy(held)
