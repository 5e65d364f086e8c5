"""What requests and niquests share: their objects read and written, without the I/O.

Both clients hand the auth a ``PreparedRequest`` and run its response hooks; they
differ in whether sending and reading are awaited. Their drivers
(:mod:`.requests_hook`, :mod:`.niquests_hook`) do the I/O and the per-request rule
(:mod:`.exchange`) decides; this module reads an answer for the rule, and says how the
token is set, how the replay looks and what each redirect hop carries. ``request`` and
``response`` are requests' or niquests' objects (typed loosely: the two packages share
no types).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any
from urllib.parse import urlsplit

from .._dpop import DPoP, present
from .._net import PlainHttpWarner
from ..token import Token
from .exchange import Answer

__all__ = [
    "answer_of",
    "attach",
    "before_redirect",
    "position_of",
    "refresh_hop",
    "replay_of",
    "replayable",
    "seek_back",
]

# requests' rebuild_method: the statuses whose redirect turns a request into a GET.
_SEE_OTHER, _FOUND, _MOVED = 303, 302, 301
_DEFAULT_PORTS = {"http": 80, "https": 443}


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


def answer_of(response: Any, position: int | None) -> Answer:
    """What the per-request rule needs of ``response`` (its request's body stood at
    ``position`` before the first send)."""
    request = response.request
    headers = response.headers

    def header(name: str) -> list[str]:
        value = headers.get(name)  # repeats come joined, as urllib3 reads them
        return [value] if value else []

    return Answer(
        response.status_code,
        replayable(request.body, position),
        request.url or "",
        request.headers,
        header,
    )


def seek_back(body: Any, position: int | None) -> None:
    """Put a file body back where it stood before the first send."""
    if position is not None:
        body.seek(position)


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


def refresh_hop(dpop: DPoP | None, hop: Any) -> None:
    """A redirect hop niquests is about to send, after its ``rebuild_auth``: a fresh
    DPoP proof for its method and URL when it kept the token, no proof when it lost it
    (a proof never goes alone, and never twice)."""
    headers = hop.headers
    if dpop is None or "DPoP" not in headers:
        return
    scheme, _, access = (headers.get("Authorization") or "").partition(" ")
    if scheme == "DPoP" and access:
        headers["DPoP"] = dpop.proof(hop.method, hop.url or "", access)
    else:
        del headers["DPoP"]


def before_redirect(dpop: DPoP | None, response: Any, request: Any) -> None:
    """requests is about to follow ``response``'s redirect with a copy of ``request``
    (its hooks have no say after that): give ``request`` the next hop's own DPoP proof,
    or, when the hop leaves the origin, neither the token nor a proof.

    The next hop's method and URL are worked out as ``Session.resolve_redirects`` and
    ``rebuild_method`` do, and whether the token follows as ``should_strip_auth``
    does. ``response`` keeps a copy of what was really sent, for its history.
    """
    if dpop is None or "DPoP" not in request.headers or not response.is_redirect:
        return
    hop = _next_hop(response, request)
    if response.request is request:
        response.request = request.copy()
    scheme, _, access = (request.headers.get("Authorization") or "").partition(" ")
    if hop is not None and scheme == "DPoP" and access and _keeps_auth(request.url, hop[1]):
        request.headers["DPoP"] = dpop.proof(hop[0], hop[1], access)
        return
    del request.headers["DPoP"]
    request.headers.pop("Authorization", None)


def _next_hop(response: Any, request: Any) -> tuple[str, str] | None:
    """The method and URL of the request requests sends to follow ``response``."""
    from urllib.parse import urljoin

    utils = importlib.import_module(type(request).__module__.split(".")[0] + ".utils")
    try:
        # get_redirect_target: the header's bytes read as UTF-8
        location = response.headers["location"].encode("latin1").decode("utf8")
        if location.startswith("//"):
            location = f"{urlsplit(response.url).scheme}:{location}"
        if urlsplit(location).netloc:
            url = utils.requote_uri(location)
        else:
            url = urljoin(response.url, utils.requote_uri(location))
    except ValueError:  # requests will not follow it either (InvalidURL is one)
        return None
    method = request.method
    status = response.status_code
    if (status in (_SEE_OTHER, _FOUND) and method != "HEAD") or (
        status == _MOVED and method == "POST"
    ):
        method = "GET"
    return method, str(url)


def _keeps_auth(old_url: str, new_url: str) -> bool:
    """Whether requests keeps the Authorization header on a redirect from ``old_url``
    to ``new_url`` (``Session.should_strip_auth``): the same host, and the same scheme
    and port, or the upgrade from http on port 80 to https on port 443."""
    old, new = urlsplit(old_url), urlsplit(new_url)
    try:
        old_port, new_port = old.port, new.port
    except ValueError:  # not a port: nothing to keep
        return False
    if old.hostname != new.hostname:
        return False
    upgrade = old.scheme == "http" and new.scheme == "https"
    if upgrade and old_port in (80, None) and new_port in (443, None):
        return True
    if old.scheme != new.scheme:
        return False
    default = (_DEFAULT_PORTS.get(old.scheme), None)
    return old_port == new_port or (old_port in default and new_port in default)
