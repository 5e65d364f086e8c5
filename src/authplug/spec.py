"""How a provider's token endpoint speaks: a small declarative description.

A provider is a :class:`ProviderSpec` plus, at most, a few hooks. The description is
public so that a user can describe a provider of their own in a few lines::

    from authplug import OAuth2PasswordAuth, ProviderSpec, problem_details_error

    ACME = ProviderSpec(
        name="acme",
        grant_type="password",
        body="json",
        param_names={"client_id": "clientId"},
        expires_in_field="ttl",
        parse_error=problem_details_error,
    )

    auth = OAuth2PasswordAuth(
        spec=ACME, token_url="https://login.acme.example/token", username="u", password="p"
    )
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, Protocol

from ._lazy import regex

__all__ = [
    "ErrorDetails",
    "ErrorParser",
    "ExtraParams",
    "ProviderSpec",
    "describe_body",
    "description_error",
    "message_error",
    "problem_details_error",
    "read_json",
    "rfc6749_error",
]

_INVALID: Any = object()


def read_json(body: bytes) -> Any:
    """The JSON value of ``body``, or a sentinel that is none of JSON's types.

    Never raises: a body that does not decode, does not parse, nests too deeply
    (``RecursionError``) or holds a number too long to read is simply not JSON.

    Args:
        body: the bytes of an answer.

    Returns:
        The decoded value, or the sentinel: an object that is no dict, list, string,
        number, bool or None, so that ``isinstance`` checks tell it apart.
    """
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _INVALID


class ErrorDetails(NamedTuple):
    """What a provider's error body says: its error code (if any) and its words.

    Attributes:
        error: the provider's error code (``"invalid_grant"``), or None.
        description: the provider's words, or what the body is when it says nothing.
    """

    error: str | None
    description: str


class ErrorParser(Protocol):
    """Reads a non-2xx answer of the token endpoint (:attr:`~authplug.ProviderSpec.parse_error`)."""

    def __call__(self, status: int, content_type: str, body: bytes) -> ErrorDetails:
        """Return the error code and message; never raise.

        A parser that raises is not believed: the body is then described instead.

        Args:
            status: the answer's HTTP status.
            content_type: the answer's ``Content-Type``.
            body: the answer's body.

        Returns:
            The provider's error code (None when it gives none) and its words.
        """


class ExtraParams(Protocol):
    """Adds parameters to each token request (:attr:`~authplug.ProviderSpec.extra_params`)."""

    def __call__(self, grant_type: str) -> Mapping[str, str]:
        """Return the parameters to add; a name already present is left alone.

        Args:
            grant_type: which kind of token request: ``"password"``,
                ``"client_credentials"`` or ``"refresh_token"``.

        Returns:
            Parameters under their standard names; ``param_names`` renames them as it
            renames the others.
        """


_TITLE = regex(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def describe_body(status: int, content_type: str, body: bytes, *, excerpt: bool = True) -> str:
    """Say what an unexpected body is, without echoing more than a short excerpt.

    With ``excerpt=False`` nothing of the body's text is shown: a broken 2xx answer
    may hold (part of) a token.

    Args:
        status: the answer's HTTP status.
        content_type: the answer's ``Content-Type``.
        body: the answer's body.
        excerpt: show the start of a body that is neither empty nor HTML (at most
            120 characters).

    Returns:
        A short phrase, such as ``an HTML page titled 'Bad Gateway' (HTTP 502)``.
    """
    text = body.strip()
    if not text:
        return f"an empty body (HTTP {status})"
    if b"<html" in text[:512].lower() or "html" in content_type.lower():
        title = _TITLE().search(text)
        name = title.group(1).decode("utf-8", "replace").strip() if title else ""
        return f"an HTML page{f' titled {name!r}' if name else ''} (HTTP {status})"
    if not excerpt:
        value = read_json(text)
        if value is _INVALID:
            looks_json = text[:1] in (b"{", b"[")
            kind = (
                "JSON that does not parse (truncated?)" if looks_json else "a body that is not JSON"
            )
        else:
            what = type(value).__name__
            kind = "a JSON object" if what == "dict" else f"JSON that is not an object (a {what})"
        return f"{kind}, {len(body)} bytes (HTTP {status})"
    shown = text[:120].decode("utf-8", "replace")
    return f"an unexpected body (HTTP {status}): {shown!r}"


def _json_object(body: bytes) -> dict[str, Any] | None:
    value = read_json(body)
    return value if isinstance(value, dict) else None


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (ValueError, TypeError, RecursionError):
        return type(value).__name__


def rfc6749_error(status: int, content_type: str, body: bytes) -> ErrorDetails:
    """RFC 6749 §5.2: ``{"error", "error_description", "error_uri"}``.

    Args:
        status: the answer's HTTP status.
        content_type: the answer's ``Content-Type``.
        body: the answer's body.

    Returns:
        ``error`` and ``error_description`` (the code again when there is no
        description). A body of another shape is read by the usual field names,
        else described.
    """
    data = _json_object(body)
    if data is not None and data.get("error"):
        error = _text(data["error"])
        description = _text(data.get("error_description")) or error or ""
        return ErrorDetails(error, description)
    return _fallback(status, content_type, body)


def problem_details_error(status: int, content_type: str, body: bytes) -> ErrorDetails:
    """RFC 9457 problem details: ``{"type", "title", "status", "detail"}``.

    Args:
        status: the answer's HTTP status.
        content_type: the answer's ``Content-Type``.
        body: the answer's body.

    Returns:
        ``title`` as the error code and ``detail`` (else the title) as the words.
        A body of another shape is read by the usual field names, else described.
    """
    data = _json_object(body)
    if data is not None and (data.get("title") or data.get("detail")):
        title = _text(data.get("title"))
        return ErrorDetails(title, _text(data.get("detail")) or title or "")
    return _fallback(status, content_type, body)


def description_error(status: int, content_type: str, body: bytes) -> ErrorDetails:
    """A bare ``{"description": …}`` object.

    Args:
        status: the answer's HTTP status.
        content_type: the answer's ``Content-Type``.
        body: the answer's body.

    Returns:
        No error code, and the description. A body of another shape is read by the
        usual field names, else described.
    """
    data = _json_object(body)
    if data is not None and data.get("description"):
        return ErrorDetails(None, _text(data["description"]) or "")
    return _fallback(status, content_type, body)


def message_error(status: int, content_type: str, body: bytes) -> ErrorDetails:
    """Plain text, or JSON carrying a message under a usual name.

    The names tried, in order: ``message``, ``error_description``, ``detail``,
    ``description``, ``error``. Plain text longer than 300 characters, or HTML, is
    described by :func:`~authplug.spec.describe_body` instead.

    Args:
        status: the answer's HTTP status.
        content_type: the answer's ``Content-Type``.
        body: the answer's body.

    Returns:
        No error code, and the message.
    """
    data = _json_object(body)
    if data is not None:
        for name in ("message", "error_description", "detail", "description", "error"):
            if data.get(name):
                return ErrorDetails(None, _text(data[name]) or "")
        return _fallback(status, content_type, body)
    text = body.strip()
    looks_like_text = text and b"<" not in text[:64] and "html" not in content_type.lower()
    if looks_like_text and len(text) <= 300:
        return ErrorDetails(None, text.decode("utf-8", "replace"))
    return _fallback(status, content_type, body)


def _fallback(status: int, content_type: str, body: bytes) -> ErrorDetails:
    """Any shape at all: every parser ends here when the body is not its own."""
    data = _json_object(body)
    if data is not None:
        for name in ("error_description", "detail", "description", "message", "title", "error"):
            if data.get(name):
                error = _text(data.get("error")) if name != "error" else None
                return ErrorDetails(error, _text(data[name]) or "")
    return ErrorDetails(None, describe_body(status, content_type, body))


def _frozen(mapping: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """Everything that differs between token endpoints, as data.

    Attributes:
        name: lower-case provider name, carried by errors and log lines.
        grant_type: the full grant, ``"password"`` or ``"client_credentials"``; the
            login classes use ``"authorization_code"`` and the device grant's
            ``"urn:ietf:params:oauth:grant-type:device_code"``; the token exchange and JWT
            bearer classes theirs (RFC 8693, RFC 7523).
        body: ``"form"`` (application/x-www-form-urlencoded) or ``"json"``.
        grant_type_in: ``"body"``, or ``"query"`` for a grant type in the URL.
        params_in: ``"body"``, or ``"query"`` to send every parameter in the URL
            with an empty body.
        param_names: renames of the standard parameter names (``client_id`` →
            ``clientId``).
        headers: extra request headers (``Accept`` is ``application/json`` unless set).
        expires_in_field: the answer's field holding the lifetime in seconds.
        refresh_expires_in_field: the answer's field holding the refresh token's
            lifetime, when the provider has one.
        parse_error: reads the provider's error bodies.
        extra_params: adds parameters to each token request.
    """

    name: str
    grant_type: Literal[
        "password",
        "client_credentials",
        "authorization_code",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ] = "password"
    body: Literal["form", "json"] = "form"
    grant_type_in: Literal["body", "query"] = "body"
    params_in: Literal["body", "query"] = "body"
    param_names: Mapping[str, str] = field(default_factory=_frozen)
    headers: Mapping[str, str] = field(default_factory=_frozen)
    expires_in_field: str = "expires_in"
    refresh_expires_in_field: str | None = None
    parse_error: ErrorParser = rfc6749_error
    extra_params: ExtraParams | None = None

    def __post_init__(self) -> None:
        for name in ("param_names", "headers"):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, _frozen(value))


GENERIC = ProviderSpec(name="oauth2")
