"""The options value: each mistake named at construction, secrets never shown."""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any

import pytest

from authplug import BaseAuth, ConfigurationError, MemoryTokenCache, OAuth2PasswordAuth
from authplug._options import Options
from authplug._redact import Secret
from authplug.spec import GENERIC, ProviderSpec
from authplug.testing import FakeClock

CC = ProviderSpec(name="cc", grant_type="client_credentials")
#: What BaseAuth passes for an option not given: its signature's defaults.
DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(BaseAuth.__init__).parameters.items()
    if parameter.default is not inspect.Parameter.empty
}


def _options(**overrides: Any) -> Options:
    kwargs: dict[str, Any] = {
        **DEFAULTS,
        "spec": GENERIC,
        "token_url": "https://login.example.com/token",
        "username": "alice",
        "password": Secret("pa55word"),
        "client_id": "app",
        "client_secret": Secret("s3cret"),
    }
    kwargs.update(overrides)
    return Options.from_kwargs(**kwargs)


def test_defaults_are_filled_in() -> None:
    options = _options()
    assert options.leeway == 60.0
    assert options.timeout == 10.0
    assert options.retries == 3
    assert options.refresh_status_codes == frozenset({401})
    assert options.client_auth == "client_secret_post"
    assert isinstance(options.cache, MemoryTokenCache)
    assert options.token is None


def test_the_value_is_frozen_and_shows_no_secret() -> None:
    options = _options(token={"access_token": "at-123456789", "refresh_token": "rt-987654321"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.leeway = 1  # type: ignore[misc]
    shown = repr(options)
    for secret in ("pa55word", "s3cret", "at-123456789", "rt-987654321"):
        assert secret not in shown
    assert "token_url='https://login.example.com/token'" in shown


def test_a_handed_in_token_is_read_on_the_options_clock() -> None:
    clock = FakeClock()
    options = _options(token={"access_token": "at", "expires_in": 60}, clock=clock)
    assert options.clock is clock
    assert options.token is not None
    assert options.token.expires_at == clock.time() + 60


def test_without_a_secret_the_client_authenticates_by_id_alone() -> None:
    assert _options(client_secret=None).client_auth == "none"
    with pytest.raises(ConfigurationError, match=r"client_secret_basic.*needs client_secret"):
        _options(client_secret=None, client_auth="client_secret_basic")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"token_url": "ftp://login.example.com/token"}, "must be an https URL"),
        ({"token_url": "http://login.example.com/token"}, "plain http"),
        ({"token_url": "https://u:p@login.example.com/token"}, "credentials in the URL"),
        ({"refresh_url": "https://"}, "refresh_url="),
        ({"username": None}, "username= must be a non-empty string"),
        ({"password": Secret("")}, "password= must be a non-empty string"),
        ({"client_secret": "plain"}, "client_secret= must be a non-empty string"),
        ({"scope": 5}, "scope= takes"),
        ({"leeway": -1}, "leeway= must be >= 0"),
        ({"timeout": 0}, "timeout= must be > 0"),
        ({"timeout": True}, "timeout= must be a number of seconds"),
        ({"retries": 1.5}, "retries= must be a whole number"),
        ({"client_auth": "client_secret_jws"}, "client_auth= must be one of"),
        ({"refresh_status_codes": (401, 99)}, "refresh_status_codes="),
        ({"on_token": "print"}, "on_token= must be callable"),
        ({"cache": {}}, "cache= takes a token cache"),
        ({"cert": "/nonexistent/client.pem"}, "cannot read"),
        ({"timeout": math.nan}, "timeout= must be a finite number"),
        ({"leeway": math.inf}, "leeway= must be a finite number"),
        ({"verify": "/nonexistent/ca.pem"}, "verify=: cannot read"),
        ({"verify": 1}, "verify= takes True, False"),
        ({"proxy": "http://proxy.example:70000"}, "proxy=.* port must be a number"),
    ],
)
def test_each_mistake_is_named(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _options(**overrides)


def test_client_credentials_need_no_user() -> None:
    options = _options(spec=CC, username=None, password=None)
    assert (options.username, options.password) == (None, None)


def test_the_auth_object_keeps_its_options() -> None:
    auth = OAuth2PasswordAuth(
        token_url="https://login.example.com/token",
        username="alice",
        password="pa55word",
        client_id="app",
        client_secret="s3cret",
        scope=["read", "write"],
        leeway=30,
    )
    assert auth.options.scope == "read write"
    assert auth.options.leeway == 30.0
    assert isinstance(auth.options.password, Secret)
    assert "pa55word" not in repr(auth.options)


def test_every_default_is_written_once_in_the_auth_signature() -> None:
    """Options.from_kwargs takes every option of BaseAuth's signature and has no default
    of its own: the two cannot drift apart."""
    shown = inspect.signature(BaseAuth.__init__).parameters
    taken = inspect.signature(Options.from_kwargs).parameters
    assert set(shown) - {"self"} == set(taken)
    assert all(p.default is inspect.Parameter.empty for p in taken.values())


def test_the_documented_defaults() -> None:
    """The API reference's defaults: renew 60 s early, 10 s per call, 3 retries, renew
    on 401, close within 5 s, the JWT bearer assertion type."""
    shown = inspect.signature(BaseAuth.__init__).parameters
    assert shown["leeway"].default == 60
    assert shown["timeout"].default == 10.0
    assert shown["retries"].default == 3
    assert tuple(shown["refresh_status_codes"].default) == (401,)
    assert shown["close_timeout"].default == 5.0
    assert shown["client_assertion_type"].default == (
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
