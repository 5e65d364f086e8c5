"""Options that would fail every token call are refused when the object is built.

A proxy port out of range, a CA file that is not there or holds no certificate, a
``timeout`` or ``leeway`` that is not a finite number: each is a ConfigurationError
naming the option at construction (it was a ValueError, a FileNotFoundError or an
ssl.SSLError on each token call, or a timeout no connection could use), and no message
shows a proxy's password.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from authplug import ConfigurationError, MogoplusAuth, OAuth2PasswordAuth
from authplug._call import transport as transport_module
from authplug.testing import MogoplusEmulator, OAuth2Emulator

from ..conftest import password_auth

PROXY_PASSWORD = "pr0xy-pa55"


def _proxy(tail: str, password: str = PROXY_PASSWORD) -> str:
    return f"http://proxy-user:{password}@{tail}"


@pytest.fixture
def not_a_ca(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_text("this is not a certificate\n")
    return str(path)


BAD: dict[str, tuple[str, object]] = {
    "proxy port out of range": ("proxy", _proxy("127.0.0.1:99999")),
    "proxy port zero": ("proxy", _proxy("127.0.0.1:0")),
    "proxy port not a number": ("proxy", _proxy("127.0.0.1:31x8")),
    "proxy password with a slash": ("proxy", _proxy("127.0.0.1:99999", "pr0xy/pa55")),
    "proxy password with a hash": ("proxy", _proxy("127.0.0.1:3x", "pr0xy#pa55")),
    "verify a missing file": ("verify", "/nonexistent/ca-bundle.pem"),
    "verify a missing path object": ("verify", Path("/nonexistent/ca-bundle.pem")),
    "verify an empty string": ("verify", ""),
    "verify a number": ("verify", 1),
    "cert a missing path object": ("cert", Path("/nonexistent/client.pem")),
    "cert three files": ("cert", ("a.pem", "b.pem", "c.pem")),
    "timeout NaN": ("timeout", math.nan),
    "timeout infinite": ("timeout", math.inf),
    "leeway NaN": ("leeway", math.nan),
    "leeway infinite": ("leeway", math.inf),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_value_that_would_fail_every_token_call_is_refused_at_construction(
    emulator: OAuth2Emulator, case: str
) -> None:
    """The ConfigurationError names the option, shows no secret, and nothing was sent."""
    name, value = BAD[case]
    with pytest.raises(ConfigurationError) as info:
        password_auth(emulator, **{name: value})
    message = str(info.value)
    assert message.startswith(f"{name}="), message
    for secret in ("pr0xy", "pa55", emulator.password, str(emulator.client_secret)):
        assert secret not in message, message
    assert emulator.token_calls.total() == 0


def test_a_file_that_holds_no_ca_certificate_is_refused(
    emulator: OAuth2Emulator, not_a_ca: str
) -> None:
    """verify= a readable file without a certificate: named, with OpenSSL's reason."""
    with pytest.raises(ConfigurationError, match=r"^verify='.*ca\.pem' holds no usable CA"):
        password_auth(emulator, verify=not_a_ca)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_seconds_must_be_finite(value: float) -> None:
    """timeout= and leeway= say they want a finite number of seconds."""
    for name in ("timeout", "leeway"):
        with pytest.raises(ConfigurationError, match=f"^{name}= must be a finite number"):
            OAuth2PasswordAuth(
                token_url="https://login.example.com/token",
                username="u",
                password="p",
                **{name: value},  # type: ignore[arg-type]
            )


def test_tls_paths_are_loaded_once_at_construction() -> None:
    """verify= and cert= given as path objects work: the SSL context is built when the
    object is, and the mutual-TLS token call uses that one context."""
    with MogoplusEmulator() as emulator:
        kwargs: dict[str, Any] = emulator.auth_kwargs()
        certfile, keyfile = kwargs["cert"]
        kwargs["verify"] = Path(kwargs["verify"])
        kwargs["cert"] = (Path(certfile), Path(keyfile))
        ca_file = emulator.ca_file

        def settings() -> list[tuple[object, ...]]:
            return [key for key in transport_module._contexts if key[0] == ca_file]

        assert settings() == []
        auth = MogoplusAuth(**kwargs)
        assert auth.options.verify == ca_file
        assert auth.options.cert == (certfile, keyfile)
        assert len(settings()) == 1  # built at construction
        assert auth.get_token().access_token
        assert len(settings()) == 1  # and used by the token call
        assert emulator.token_calls == {"client_credentials": 1}


def test_a_proxy_with_a_path_or_no_port_is_still_accepted(emulator: OAuth2Emulator) -> None:
    """Only ports token calls cannot use are refused: no port means the scheme's."""
    for proxy in ("http://proxy.example", "https://proxy.example:8443/", _proxy("[::1]:3128")):
        assert password_auth(emulator, proxy=proxy).options.proxy == proxy
