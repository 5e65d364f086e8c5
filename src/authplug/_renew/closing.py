"""Closing an auth object within one time budget, whatever the token calls' retries.

``close()`` (and ``with auth:``) stops background renewals at once. With
``revoke_on_close=True`` it then revokes the token, and that is where a hung
revocation endpoint used to hold it: every attempt's ``timeout`` and the pauses
between the retries, 43 seconds with the defaults, longer than the 30 seconds a
Kubernetes pod is given between SIGTERM and SIGKILL. Now the whole of closing (a
renewal under way finishing first, so that the newest token is revoked, then the
revocation) gets ``close_timeout`` seconds (:data:`CLOSE_TIMEOUT` by default). A
revocation that has not finished by then is abandoned, with a WARNING: the token then
stays valid at the server until it expires, as it would without ``revoke_on_close``.

Imported by the first ``close()``; the default lives in :mod:`.._clock`, which
``import authplug`` loads anyway.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from .._clock import CLOSE_TIMEOUT
from .._inputs import Overdue, run_within
from ..errors import AuthError

if TYPE_CHECKING:
    from .manager import TokenManager

__all__ = ["CLOSE_TIMEOUT", "aclose", "close"]

log = logging.getLogger("authplug")


def _abandoned(provider: str, budget: float) -> None:
    log.warning(
        "%s: revoking the token on close did not finish within close_timeout=%gs; "
        "abandoned (the token stays valid at the server until it expires)",
        provider,
        budget,
    )


def _failed(provider: str, exc: AuthError) -> None:
    log.warning("%s: revoking the token on close failed: %s", provider, exc)


def close(manager: TokenManager, *, revoke: bool, budget: float, provider: str) -> bool:
    """Close ``manager``, revoking its token first if asked; False when the revocation
    was abandoned for want of time (or failed)."""
    manager.close()
    if not revoke:
        return True
    end = time.monotonic() + budget
    manager.settle(budget)  # a renewal under way: revoke the token it brings
    # In a daemon thread of its own: given up after the budget, it cannot hold the
    # process (the revocation may still end meanwhile; its outcome is then unused).
    try:
        run_within(manager.revoke, max(0.0, end - time.monotonic()), name="authplug-close")
    except Overdue:
        _abandoned(provider, budget)
        return False
    except AuthError as exc:
        _failed(provider, exc)
        return False
    return True


async def aclose(manager: TokenManager, *, revoke: bool, budget: float, provider: str) -> bool:
    """:func:`close` without blocking the event loop."""
    end = time.monotonic() + budget
    await manager.aclose(budget)
    if not revoke:
        return True
    await manager.asettle(max(0.0, end - time.monotonic()))
    from .. import _aio

    try:
        finished, _ = await _aio.within(manager.arevoke(), max(0.0, end - time.monotonic()))
    except AuthError as exc:
        _failed(provider, exc)
        return False
    if not finished:
        _abandoned(provider, budget)
    return finished
