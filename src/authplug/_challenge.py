"""Reading an API's ``WWW-Authenticate`` challenge (RFC 7235 §4.1, RFC 6750 §3), once.

A refusal's header values are read into one :class:`Challenge`, which the per-request
rule (:mod:`authplug._adapters.exchange`) hands on: to DPoP's nonce retry and to the
renewal decision. A refusal whose Bearer (or DPoP) challenge says
``error="insufficient_scope"`` is about the permission, not the token, and one that asks
for a DPoP nonce (``use_dpop_nonce``, answered by one retry with the nonce first) is about
the proof: renewing would cost a token call and change nothing. ``invalid_token``, no
error code, or no challenge at all mean the token may be stale.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ._lazy import regex

__all__ = ["NO_CHALLENGE", "Challenge"]

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_AUTH_SCHEME = regex(rf"\s*({_TOKEN})")
_PARAM = regex(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*(?:,|$)')
_TOKEN68 = regex(r"\s*[A-Za-z0-9\-._~+/]+=*\s*(?:,|$)")
_LIST_SEPARATORS = regex(r"[\s,]*")
_MAX_HEADER = 8192  # a challenge longer than this is not read


def _challenges(header: str) -> Iterable[tuple[str, dict[str, str]]]:
    """``(scheme, params)`` for each challenge of one header value."""
    position = _LIST_SEPARATORS().match(header, 0).end()  # type: ignore[union-attr]
    while position < len(header):
        scheme = _AUTH_SCHEME().match(header, position)
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
        position = _LIST_SEPARATORS().match(header, position).end()  # type: ignore[union-attr]


@dataclass(frozen=True, slots=True)
class Challenge:
    """What the ``WWW-Authenticate`` values of one answer say, read once.

    Attributes:
        schemes: the schemes offered, lower case, in the order given.
        error: the ``error`` of the first Bearer challenge, or of the first DPoP one
            when that Bearer challenge has no parameters or there is none: what the
            refusal of the token is about.
        scope: the ``scope`` parameter of that same challenge.
        asks_for_nonce: the first DPoP challenge says ``error="use_dpop_nonce"``
            (RFC 9449 §9).
    """

    schemes: tuple[str, ...] = ()
    error: str | None = None
    scope: str | None = None
    asks_for_nonce: bool = False

    @classmethod
    def parse(cls, values: Iterable[str]) -> Challenge:
        """The challenge of an answer's header values (a value over 8 KiB is not read)."""
        schemes: list[str] = []
        bearer: dict[str, str] | None = None
        dpop: dict[str, str] | None = None
        for header in values:
            if len(header) > _MAX_HEADER:
                continue
            for scheme, params in _challenges(header):
                schemes.append(scheme)
                if scheme == "bearer" and bearer is None:
                    bearer = params
                elif scheme == "dpop" and dpop is None:
                    dpop = params
        if not schemes:
            return NO_CHALLENGE
        # A bare "Bearer" says nothing about the refusal: a DPoP challenge may.
        about = bearer or dpop or {}
        return cls(
            schemes=tuple(schemes),
            error=about.get("error"),
            scope=about.get("scope"),
            asks_for_nonce=dpop is not None and dpop.get("error") == "use_dpop_nonce",
        )

    @property
    def insufficient_scope(self) -> bool:
        """The refusal is for lack of scope (RFC 6750 §3.1): a new token would not help."""
        return self.error == "insufficient_scope"


#: An answer without a readable challenge (most answers): nothing to parse.
NO_CHALLENGE = Challenge()
