"""Reading an API's ``WWW-Authenticate`` challenge (RFC 7235 §4.1, RFC 6750 §3).

A refusal whose Bearer (or DPoP) challenge says ``error="insufficient_scope"`` is about
the permission, not the token, and one that asks for a DPoP nonce (``use_dpop_nonce``,
answered by one retry with the nonce first) is about the proof: renewing would cost a
token call and change nothing.
``invalid_token``, no error code, or no challenge at all mean the token may be stale.

The adapters of every client also say here what they did about a refusal: replayed it
with a renewed token, or handed it back because its body cannot be sent twice.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from ._lazy import regex

__all__ = [
    "asks_for_nonce",
    "bearer_params",
    "insufficient_scope",
    "log_not_replayed",
    "renewal_useless",
]

log = logging.getLogger("authplug")

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_SCHEME = regex(rf"\s*({_TOKEN})")
_PARAM = regex(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*(?:,|$)')
_TOKEN68 = regex(r"\s*[A-Za-z0-9\-._~+/]+=*\s*(?:,|$)")
_SEPARATORS = regex(r"[\s,]*")
_MAX_HEADER = 8192  # a challenge longer than this is not read


def _challenges(header: str) -> Iterable[tuple[str, dict[str, str]]]:
    """``(scheme, params)`` for each challenge of one header value."""
    position = _SEPARATORS().match(header, 0).end()  # type: ignore[union-attr]
    while position < len(header):
        scheme = _SCHEME().match(header, position)
        if scheme is None:
            return  # not RFC 7235: stop reading rather than guess
        position = scheme.end()
        params: dict[str, str] = {}
        token68 = _TOKEN68().match(header, position)
        param = _PARAM().match(header, position)
        if token68 is not None and param is None:
            position = token68.end()
        else:
            while param is not None:
                value = param.group(2)
                value = re.sub(r"\\(.)", r"\1", value) if value is not None else param.group(3)
                params.setdefault(param.group(1).lower(), value)
                position = param.end()
                param = _PARAM().match(header, position)
        yield scheme.group(1).lower(), params
        position = _SEPARATORS().match(header, position).end()  # type: ignore[union-attr]


def challenge_params(values: Iterable[str], wanted: str) -> dict[str, str] | None:
    """The parameters of the first challenge of scheme ``wanted`` (lower case) among
    header values, or None."""
    for header in values:
        if len(header) > _MAX_HEADER:
            continue
        for scheme, params in _challenges(header):
            if scheme == wanted:
                return params
    return None


def bearer_params(values: Iterable[str]) -> dict[str, str] | None:
    """The parameters of the first Bearer challenge among header values, or None."""
    return challenge_params(values, "bearer")


def insufficient_scope(values: Iterable[str]) -> str | None:
    """The scope the server asks for (maybe ``""``) when it refused for lack of scope
    (in a Bearer or a DPoP challenge).

    None when the challenge does not say ``insufficient_scope``: renew and replay.
    """
    values = list(values)
    params = bearer_params(values) or challenge_params(values, "dpop")
    if params is None or params.get("error") != "insufficient_scope":
        return None
    return params.get("scope", "")


def asks_for_nonce(values: Iterable[str]) -> bool:
    """A DPoP challenge with ``error="use_dpop_nonce"`` (RFC 9449 §9)."""
    params = challenge_params(values, "dpop")
    return params is not None and params.get("error") == "use_dpop_nonce"


def renewal_useless(values: Iterable[str], where: str) -> bool:
    """True, with one INFO line, when a refusal is not about the token: it asks for more
    scope, or (after the one nonce retry) for a DPoP nonce again. Do not renew."""
    values = list(values)
    scope = insufficient_scope(values)
    if scope is not None:
        log.info(
            "%s: the API refused the request for lack of scope (it asks for %s); a new "
            "token would not help, so none is fetched",
            where,
            repr(scope[:200]) if scope else "no particular scope",
        )
        return True
    if asks_for_nonce(values):
        log.info(
            "%s: the API asks for a DPoP nonce again after the retry with its nonce; the "
            "refusal is handed back",
            where,
        )
        return True
    return False


def log_not_replayed(where: str, status: int) -> None:
    log.warning(
        "%s: the API answered %d; the token was renewed but the request was not "
        "sent again because its body is a one-shot stream; retry it",
        where,
        status,
    )
