"""Waiting for an auth object's background renewal, in tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..auth import BaseAuth

__all__ = ["asettle", "settle"]


def settle(auth: BaseAuth, timeout: float = 10.0) -> None:
    """Block until no token call of ``auth`` is under way (background renewals included).

    A request that finds its token due for renewal returns at once and renews in the
    background; call this before counting token calls.

    Args:
        auth: the auth object whose token calls to wait for.
        timeout: the longest to wait, in seconds.

    Raises:
        AssertionError: a token call is still under way after ``timeout`` seconds.
    """
    if not auth._manager.settle(timeout):
        raise AssertionError(f"a token call of {auth!r} is still under way after {timeout:g}s")


async def asettle(auth: BaseAuth, timeout: float = 10.0) -> None:
    """Async :func:`settle`: waits without blocking the event loop, which runs the
    detached task of an async renewal meanwhile.

    Args:
        auth: the auth object whose token calls to wait for.
        timeout: the longest to wait, in seconds.

    Raises:
        AssertionError: a token call is still under way after ``timeout`` seconds.
    """
    if not await auth._manager.asettle(timeout):
        raise AssertionError(f"a token call of {auth!r} is still under way after {timeout:g}s")
