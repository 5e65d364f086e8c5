"""``settle``/``asettle`` fail, naming the auth object, when a token call outlasts the wait."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from authplug.testing import asettle, settle


class Manager:
    def __init__(self, ended: bool) -> None:
        self.ended = ended
        self.waited: list[float] = []

    def settle(self, timeout: float) -> bool:
        self.waited.append(timeout)
        return self.ended

    async def asettle(self, timeout: float) -> bool:
        self.waited.append(timeout)
        return self.ended


class Auth:
    def __init__(self, ended: bool) -> None:
        self._manager = Manager(ended)

    def __repr__(self) -> str:
        return "<Auth under test>"


def test_settle_returns_once_the_token_calls_ended() -> None:
    """The manager's wait is given the timeout; nothing is raised when it ends in time."""
    auth: Any = Auth(ended=True)
    settle(auth, timeout=3)
    asyncio.run(asettle(auth, timeout=4))
    assert auth._manager.waited == [3, 4]


def test_a_token_call_still_under_way_is_an_assertion_error() -> None:
    """Past the timeout, sync and async both raise, naming the object and the wait."""
    auth: Any = Auth(ended=False)
    expected = r"^a token call of <Auth under test> is still under way after 2.5s$"
    with pytest.raises(AssertionError, match=expected):
        settle(auth, timeout=2.5)
    with pytest.raises(AssertionError, match=expected):
        asyncio.run(asettle(auth, timeout=2.5))
