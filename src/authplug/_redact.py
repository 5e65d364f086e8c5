"""Everything that keeps a secret out of sight, in one file to audit.

- :class:`Secret` wraps a credential: its ``repr``, its ``str`` and a traceback's
  locals show ``***``.
- Token requests are prepared with stand-ins (:class:`StandIn`) in place of every
  secret; :func:`reveal` puts the real values in, each encoded for where it stands,
  at the last moment, inside the transport. Authlib, the provider's encoding and the
  user's hooks only ever see the stand-ins, so no frame they run in holds a secret.
- :class:`Scrubber` replaces every spelling of a secret that authplug put on the wire
  (raw, form-encoded, percent-encoded, JSON-escaped, Base64 Basic credentials) in a
  text: error messages, log records of the HTTP stack.
- :class:`Hidden` holds an argument that may be key material or an assertion
  (``private_key=``, ``dpop_key=``, ``client_assertion=``) from the moment the
  constructor receives it until :mod:`authplug._inputs` reads it.
- :func:`mask` shows a token by its last four characters; :func:`safe_url` drops a
  URL's query and credentials for a log line.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

__all__ = [
    "Hidden",
    "Scrubber",
    "Secret",
    "StandIn",
    "basic_credentials",
    "hidden",
    "mask",
    "reveal",
    "safe_url",
    "stand_in",
    "unhidden",
]

#: Shorter secrets are not scrubbed from texts: replacing every "ab" would garble them.
_MIN_SCRUB = 3


class Secret:
    """A string that never shows itself in a repr, a str or a traceback's locals."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled or copied")


class Hidden:
    """Text, bytes or a mapping that may be a key or an assertion, shown as ``***``.

    Unlike :class:`Secret` it holds any of the shapes those options take (PEM text, a
    JWK dict, the path of a file: nobody knows which until it is read).
    """

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Hidden('***')"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Hidden value cannot be pickled or copied")


def hidden(value: Any) -> Any:
    """``value`` in a :class:`Hidden` when it may be key material (text, bytes, a
    mapping); a callable, a path object or None as it is."""
    return Hidden(value) if isinstance(value, (str, bytes, Mapping)) else value


def unhidden(value: object) -> object:
    """What :func:`hidden` was given."""
    return value.value if isinstance(value, Hidden) else value


def mask(secret: str | None) -> str:
    """Show at most the last four characters of a secret (none of a short one)."""
    if not secret:
        return "None" if secret is None else "''"
    keep = 4 if len(secret) >= 16 else 0
    return "'…" + secret[-keep:] + "'" if keep else "'…'"


def safe_url(url: str) -> str:
    """Scheme, host, port and path: never the query or credentials, which may be secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _form(value: str) -> str:
    """application/x-www-form-urlencoded, as ``urlencode`` writes it."""
    return quote_plus(value, safe="")


def _json_string(value: str) -> str:
    """The inside of a JSON string, as ``json.dumps`` writes it."""
    return json.dumps(value)[1:-1]


def basic_credentials(client_id: str, secret: Secret) -> Secret:
    """RFC 6749 §2.3.1: each part form-encoded, joined by ``:``, then Base64.

    Every byte outside ``A-Za-z0-9-._~`` is percent-encoded (a space as ``%20``), so a
    secret with ``+``, ``/``, ``=`` or ``%`` reaches the server intact. A plain secret
    encodes to itself: nothing changes for it.
    """
    joined = quote(client_id, safe="") + ":" + quote(secret.reveal(), safe="")
    return Secret(base64.b64encode(joined.encode("utf-8")).decode("ascii"))


class StandIn:
    """What a prepared request carries in place of a secret.

    A plain class, not a dataclass: this module is imported by ``import authplug``, and
    a dataclass costs a millisecond to define.
    """

    __slots__ = ("secret", "text")

    def __init__(self, text: str, secret: Secret) -> None:
        self.text = text  # unreserved characters only: it survives any encoding untouched
        self.secret = secret

    def __repr__(self) -> str:
        return f"StandIn({self.text!r}, {self.secret!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StandIn):
            return NotImplemented
        return (self.text, self.secret) == (other.text, other.secret)

    def __hash__(self) -> int:
        return hash(self.text)


def stand_in(secret: Secret) -> StandIn:
    import secrets  # here: the first token call needs it, not the import

    return StandIn("authplug0" + secrets.token_hex(16), secret)


def reveal(
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    body_kind: Literal["form", "json"],
    stand_ins: Iterable[StandIn],
) -> tuple[str, dict[str, str], bytes]:
    """The request as it goes on the wire: each stand-in replaced, encoded for its place.

    In the query and a form body a secret is form-encoded, in a JSON body JSON-escaped,
    in a header (Basic credentials, already encoded) it stands as it is.
    """
    text = body.decode("utf-8")
    out = dict(headers)
    for item in stand_ins:
        value = item.secret.reveal()
        url = url.replace(item.text, _form(value))
        encoded = _json_string(value) if body_kind == "json" else _form(value)
        text = text.replace(item.text, encoded)
        for name, header in out.items():
            out[name] = header.replace(item.text, value)
    return url, out, text.encode("utf-8")


class Scrubber:
    """Replaces every spelling of the secrets it knows with ``***``."""

    __slots__ = ("_spellings",)

    def __init__(self, values: Iterable[Secret | None]) -> None:
        spellings: set[str] = set()
        for value in values:
            if value is None:
                continue
            raw = value.reveal()
            forms = {
                raw,
                _form(raw),
                quote(raw, safe=""),
                _json_string(raw),
                json.dumps(raw, ensure_ascii=False)[1:-1],
            }
            spellings.update(s for s in forms if len(s) >= _MIN_SCRUB)
        # Longest first: a secret's encoded form may contain a shorter secret.
        self._spellings = tuple(sorted(spellings, key=len, reverse=True))

    def __repr__(self) -> str:
        return f"Scrubber({len(self._spellings)} spellings)"

    def with_secrets(self, values: Iterable[Secret | None]) -> Scrubber:
        """This scrubber plus more secrets (a refresh token, for one call)."""
        extra = Scrubber(values)
        merged = Scrubber(())
        merged._spellings = tuple(
            sorted(set(self._spellings) | set(extra._spellings), key=len, reverse=True)
        )
        return merged

    def learn(self, values: Iterable[Secret | None]) -> None:
        """Know these secrets too, from now on: a secret made while the call runs (the
        assertion signed for each attempt). Only for a scrubber of one call, made by
        :meth:`with_secrets`; a shared one would grow with every call."""
        self._spellings = self.with_secrets(values)._spellings

    def __call__(self, text: str) -> str:
        for spelling in self._spellings:
            if spelling in text:
                text = text.replace(spelling, "***")
        return text
