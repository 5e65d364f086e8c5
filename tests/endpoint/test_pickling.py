"""Tokens pickle and copy to an equal value; auth objects refuse to, saying what to do."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable, Iterator

import pytest

from authplug import (
    BaseAuth,
    OAuth2ClientCredentialsAuth,
    OAuth2PasswordAuth,
    Token,
)
from authplug.providers import PROVIDERS
from authplug.testing import EMULATORS, OAuth2Emulator

from ..conftest import password_auth


def _unpickled(token: Token, protocol: int) -> Token:
    """The token through a pickle round trip (our own bytes, nothing untrusted)."""
    twin = pickle.loads(pickle.dumps(token, protocol))  # noqa: S301
    assert isinstance(twin, Token)
    return twin


def test_token_pickles_and_copies_to_an_equal_value(emulator: OAuth2Emulator) -> None:
    """A Token survives pickle, copy and deepcopy equal, and still masks secrets.

    Its ``extra`` is a read-only mapping view, which cannot be pickled or deep-copied
    as it is.
    """
    fetched = password_auth(emulator).get_token()
    built = Token.from_dict(
        {
            "access_token": "access-0123456789abcdef-WXYZ",
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": "refresh-0123456789abcdef-QRST",
            "scope": ["read", "write"],
            "refresh_expires_at": 1_800_003_600.0,
            "id_token": "header.payload.signature",
            "nested": {"a": [1, 2, {"b": None}]},
        },
        now=1_800_000_000.0,
    )
    for token in (fetched, built):
        copies = [_unpickled(token, p) for p in range(pickle.HIGHEST_PROTOCOL + 1)]
        copies += [copy.copy(token), copy.deepcopy(token)]
        for twin in copies:
            assert isinstance(twin, Token)
            assert twin == token
            assert dict(twin.extra) == dict(token.extra)
            shown = repr(twin)
            assert token.access_token not in shown
            assert token.refresh_token is None or token.refresh_token not in shown
    assert built.refresh_token is not None
    restored = _unpickled(built, pickle.DEFAULT_PROTOCOL)
    assert restored.refresh_token == built.refresh_token
    assert restored.extra["nested"] == {"a": [1, 2, {"b": None}]}


def _every_auth_class() -> Iterator[tuple[str, BaseAuth, list[str]]]:
    """One object of every auth class in authplug, after a token call, with its secrets."""
    with OAuth2Emulator() as generic:
        password = password_auth(generic)
        credentials = OAuth2ClientCredentialsAuth(
            token_url=generic.token_url,
            client_id=generic.client_id or "",
            client_secret=generic.client_secret or "",
        )
        for name, auth in (("password", password), ("client_credentials", credentials)):
            token = auth.get_token()
            secrets = [generic.password, generic.client_secret or "", token.access_token]
            yield name, auth, secrets
    for name, emulator_class in EMULATORS.items():
        with emulator_class() as emulator:
            kwargs = emulator.auth_kwargs()
            auth = PROVIDERS[name](**kwargs)
            token = auth.get_token()
            secrets = [token.access_token]
            secrets += [kwargs[k] for k in ("password", "client_secret") if kwargs.get(k)]
            yield name, auth, secrets


def _refusals(auth: BaseAuth) -> list[str]:
    """The TypeError messages of pickling (every protocol), copying and deep-copying."""
    attempts: list[tuple[Callable[..., object], tuple[object, ...]]] = [
        (pickle.dumps, (auth, protocol)) for protocol in range(pickle.HIGHEST_PROTOCOL + 1)
    ]
    attempts += [(copy.copy, (auth,)), (copy.deepcopy, (auth,))]
    messages = []
    for function, args in attempts:
        with pytest.raises(TypeError) as info:
            function(*args)
        messages.append(str(info.value))
    return messages


def test_auth_objects_refuse_pickling_with_advice() -> None:
    """Pickling or copying any auth object is a TypeError that says what to do.

    They hold credentials and live state (locks, a flight): a copy would share the
    flight, a pickle would carry the secrets. The message names the way out (one object
    per process, a shared token cache) and no secret.
    """
    seen: set[type[BaseAuth]] = set()
    for name, auth, secrets in _every_auth_class():
        seen.add(type(auth))
        for message in _refusals(auth):
            assert type(auth).__name__ in message, name
            assert "cannot be pickled or copied" in message
            assert "Build one in each process" in message
            assert "FileTokenCache" in message
            assert "RedisTokenCache" in message
            for secret in secrets:
                assert secret not in message, name
    assert seen == {OAuth2PasswordAuth, OAuth2ClientCredentialsAuth, *PROVIDERS.values()}
