"""requests (and niquests' Session): the Bearer header, a response hook, rewind, replay once.

Modelled on ``requests.auth.HTTPDigestAuth.handle_401``: remember where the body
started, and on a refusal seek back, consume and close the refused response, copy the
request, carry its cookies, send the copy on the same connection adapter and put the
refused response in the history. The copy is sent with the adapter directly, so the
hook does not run for it: one replay at most.

niquests' Session has the same objects and the same hook; only its cookie helpers live in
its own package, found from the request's type.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._challenge import scope_refusal
from ._redact import safe_url
from .token import Token, bearer

if TYPE_CHECKING:
    import requests

    from ._manager import TokenManager
    from ._net import PlainHttpWarner

__all__ = ["apply"]

log = logging.getLogger("authplug")


def apply(
    manager: TokenManager,
    codes: Collection[int],
    warner: PlainHttpWarner,
    request: requests.PreparedRequest,
) -> requests.PreparedRequest:
    token = manager.get()
    url = request.url or ""
    if url.startswith("http://"):
        parts = urlsplit(url)
        warner.check("http", parts.hostname or "", parts.port)
    request.headers["Authorization"] = bearer(token)
    body: object = request.body  # the stubs say bytes | str; files and iterators happen too
    position: int | None = None
    if body is not None and not isinstance(body, (bytes, str)) and hasattr(body, "tell"):
        try:
            position = body.tell()
        except OSError:
            position = None

    def handle(response: requests.Response, **kwargs: Any) -> requests.Response:
        return _handle(manager, codes, token, position, response, **kwargs)

    request.register_hook("response", handle)  # type: ignore[no-untyped-call]
    return request


def _replayable(body: object, position: int | None) -> bool:
    return body is None or isinstance(body, (bytes, str)) or position is not None


def _handle(
    manager: TokenManager,
    codes: Collection[int],
    sent: Token,
    position: int | None,
    response: requests.Response,
    **kwargs: Any,
) -> requests.Response:
    request = response.request
    if response.status_code not in codes:
        return response
    # Only a request that carried this token (not, say, one redirected elsewhere).
    if request.headers.get("Authorization") != bearer(sent):
        return response
    challenge = response.headers.get("WWW-Authenticate")
    if scope_refusal([challenge] if challenge else [], safe_url(request.url or "")):
        return response
    body: object = request.body
    try:
        fresh = manager.renew_rejected(sent)
    except BaseException:
        _release(response)
        raise
    if fresh is None:  # refusals go unanswered for now (a renewed token was refused too)
        return response
    if not _replayable(body, position):
        log.warning(
            "%s: the API answered %d; the token was renewed but the request was not "
            "sent again because its body is a one-shot stream; retry it",
            safe_url(request.url or ""),
            response.status_code,
        )
        return response
    if position is not None:
        body.seek(position)  # type: ignore[attr-defined]
    cookies = importlib.import_module(type(request).__module__.split(".")[0] + ".cookies")
    _release(response)
    replay = request.copy()
    # As HTTPDigestAuth.handle_401 does: cookies set by the refusal go with the replay.
    jar = replay._cookies  # type: ignore[attr-defined]
    cookies.extract_cookies_to_jar(jar, request, response.raw)
    replay.prepare_cookies(jar)
    replay.headers["Authorization"] = bearer(fresh)
    # requests follows a redirect of the replay from the *original* request object
    # (Session.send's own variable): it must carry the new token, not the refused one.
    # The refused response keeps a copy of what was really sent, for its history.
    response.request = request.copy()
    request.headers["Authorization"] = bearer(fresh)
    log.info(
        "%s: the API answered %d; replaying the request with a renewed token",
        safe_url(replay.url or ""),
        response.status_code,
    )
    second: requests.Response = response.connection.send(replay, **kwargs)
    second.history.append(response)
    second.request = replay
    if second.status_code in codes:
        manager.replay_refused(fresh)
    return second


def _release(response: requests.Response) -> None:
    """Consume and close a refused response so its connection goes back to the pool."""
    response.content  # noqa: B018 - reading is the point
    response.close()
