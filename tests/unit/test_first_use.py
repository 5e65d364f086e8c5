"""An auth object checks its options when built and assembles its machinery on first use."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from authplug import ConfigurationError, FileTokenCache, OAuth2PasswordAuth, Token
from authplug.testing import FakeClock

PARTS = ("_manager", "_client", "_binding")


def _auth(**options: Any) -> OAuth2PasswordAuth:
    return OAuth2PasswordAuth(
        token_url="https://login.example.com/token",
        username="alice",
        password="pa55word",
        client_id="app",
        client_secret="s3cret",
        **options,
    )


def test_building_assembles_nothing() -> None:
    """A built object holds its checked options; its working parts wait for its first use."""
    auth = _auth()
    assert auth.options.username == "alice"
    assert not [name for name in PARTS if name in vars(auth)]


def test_a_mistake_still_raises_when_the_object_is_built() -> None:
    """Laziness never moves a ConfigurationError from construction to the first request."""
    with pytest.raises(ConfigurationError, match="timeout="):
        _auth(timeout=0)


def test_the_first_use_assembles_every_part_at_once() -> None:
    """The first part asked for brings all of them; a handed-in token is there."""
    auth = _auth(token={"access_token": "at-1", "expires_in": 600}, clock=FakeClock())
    token = auth.token
    assert isinstance(token, Token)
    assert token.access_token == "at-1"
    assert all(name in vars(auth) for name in PARTS)


def test_threads_that_first_use_an_object_together_share_one_assembly() -> None:
    """Eight threads asking at once get the same manager: one assembly, no half-built parts."""
    auth = _auth()
    start = threading.Barrier(8)
    seen: list[object] = []

    def first_use() -> None:
        start.wait()
        seen.append(auth._manager)
        seen.append(auth._client)

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 16
    assert len({id(part) for part in seen[::2]}) == 1
    assert len({id(part) for part in seen[1::2]}) == 1


def test_a_cache_that_outlives_the_process_assembles_at_once(tmp_path: Path) -> None:
    """With a persistent cache the manager is built with the object (on the main thread,
    where it can guard SIGTERM for a renewal under way)."""
    auth = _auth(cache=FileTokenCache(tmp_path / "tokens.json"))
    assert all(name in vars(auth) for name in PARTS)


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    """Only the parts are assembled on demand; any other name fails as usual."""
    auth = _auth()
    with pytest.raises(AttributeError, match="'OAuth2PasswordAuth' object has no attribute"):
        auth.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    assert not [name for name in PARTS if name in vars(auth)]


def test_a_half_built_object_assembles_nothing() -> None:
    """An object whose construction failed (a traceback's locals may show it) has no
    options, so asking for a part is an AttributeError, not a second failure."""
    auth = OAuth2PasswordAuth.__new__(OAuth2PasswordAuth)
    with pytest.raises(AttributeError):
        auth._manager  # noqa: B018
    assert repr(auth) == "OAuth2PasswordAuth(token_url=None)"
