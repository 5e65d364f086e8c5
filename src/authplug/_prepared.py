"""What requests and niquests share: the decisions of their hooks, without the I/O.

Both clients hand the auth a ``PreparedRequest`` and run its response hooks; they
differ in whether sending and reading are awaited. The adapters
(:mod:`._requests_adapter`, :mod:`._niquests_adapter`) do the I/O; this module decides
what to send, when to renew and how the replay looks. ``request`` and ``response`` are
requests' or niquests' objects (typed loosely: the two packages share no types).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

from ._challenge import renewal_useless
from ._dpop import DPoP, present
from ._net import PlainHttpWarner
from ._redact import safe_url
from .token import Token, authorization

__all__ = [
    "attach",
    "nonce_replay",
    "position_of",
    "renewable",
    "replay_of",
    "replayable",
]


def attach(warner: PlainHttpWarner, request: Any, token: Token, dpop: DPoP | None) -> None:
    """Set the token on ``request`` (one WARNING per origin over plain http)."""
    url = request.url or ""
    if url.startswith("http://"):
        parts = urlsplit(url)
        warner.check("http", parts.hostname or "", parts.port)
    present(request.headers, token, dpop, request.method, url)


def position_of(body: object) -> int | None:
    """Where a file body stands, to seek back for a replay; None for anything else (an
    async file included: it is a one-shot stream here)."""
    tell = getattr(body, "tell", None)
    if tell is None or isinstance(body, (bytes, str)) or inspect.iscoroutinefunction(tell):
        return None
    try:
        told = tell()
    except OSError:
        return None
    return told if isinstance(told, int) else None


def replayable(body: object, position: int | None) -> bool:
    return body is None or isinstance(body, (bytes, str)) or position is not None


def renewable(codes: Collection[int], sent: Token, response: Any) -> bool:
    """The API refused the token ``sent``, and not for lack of scope: renewing may help.

    Only a request that carried this token counts (not one redirected elsewhere).
    """
    request = response.request
    if response.status_code not in codes:
        return False
    if request.headers.get("Authorization") != authorization(sent):
        return False
    challenge = response.headers.get("WWW-Authenticate")
    return not renewal_useless([challenge] if challenge else [], safe_url(request.url or ""))


def nonce_replay(dpop: DPoP | None, response: Any, sent: Token, position: int | None) -> Any:
    """The request to send again when the API asked for a DPoP nonce (the same token, a
    new proof with the nonce; RFC 9449 §9), or None. Call it before the renewal check:
    a nonce retry is not a renewal."""
    if dpop is None:
        return None
    request = response.request
    headers = response.headers
    challenge = headers.get("WWW-Authenticate")
    if not dpop.retry_for_nonce(
        request.url or "",
        response.status_code,
        [challenge] if challenge else [],
        headers.get("DPoP-Nonce"),
    ):
        return None
    body = request.body
    if not replayable(body, position):
        return None
    if position is not None:
        body.seek(position)
    return replay_of(response, sent, dpop)


def replay_of(response: Any, fresh: Token, dpop: DPoP | None) -> Any:
    """The request to send again with ``fresh``; call it once ``response`` is released.

    As ``HTTPDigestAuth.handle_401`` does: a copy of the request, with the cookies the
    refusal set. requests follows a redirect of the replay from the *original* request
    object (``Session.send``'s own variable), so that one carries the new token too; the
    refused response keeps a copy of what was really sent, for its history.
    """
    request = response.request
    cookies = importlib.import_module(type(request).__module__.split(".")[0] + ".cookies")
    replay = request.copy()
    jar = replay._cookies
    cookies.extract_cookies_to_jar(jar, request, response.raw)
    replay.prepare_cookies(jar)
    present(replay.headers, fresh, dpop, replay.method, replay.url or "")
    response.request = request.copy()
    present(request.headers, fresh, dpop, request.method, request.url or "")
    return replay
