"""The token value, its state, and the header it makes.

A :class:`Token` is frozen and never shows a secret in its ``repr``: the access and
refresh tokens appear shortened to their last four characters.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._lazy import regex
from ._redact import mask
from .errors import ConfigurationError

__all__ = ["DeviceCode", "Token", "TokenState", "authorization", "parse_number"]

# What an access token may hold to travel in a header: visible ASCII, no space. CR or LF
# would split the header (h11 and urllib3 refuse them at request time, quoting the
# token); RFC 6750's b64token is narrower still.
_HEADER_UNSAFE = regex(r"[^\x21-\x7e]")

_KNOWN = frozenset(
    {
        "access_token",
        "token_type",
        "expires_at",
        "expires_in",
        "refresh_token",
        "scope",
        "issued_at",
        "refresh_expires_at",
        "dpop_jkt",
    }
)


class TokenState(enum.Enum):
    """How usable a token is right now."""

    FRESH = "fresh"  #: Use it; a token with no known expiry is fresh until a 401.
    STALE = "stale"  #: Still valid, but renewal is due.
    INVALID = "invalid"  #: Expired: do not send it.


def parse_number(value: object) -> float | None:
    """A finite number from an int, float or numeric string, else None.

    Never raises: an integer too large for a float (a 400-digit ``expires_in``) is
    not a usable number either.
    """
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str) and len(value) <= 64:
            number = float(value.strip())
        else:
            return None
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """What a person needs to log in a device (RFC 8628 §3.2), as ``on_user_code`` gets it.

    The device code itself (the device's secret for polling) is not part of it.

    Attributes:
        verification_uri: the page where the person enters the code.
        verification_uri_complete: the same page with the code in it (to open, or to
            show as a QR code), when the server gives one.
        user_code: the code the person types (short, case-insensitive at most servers).
        expires_in: seconds the code stays valid.
        interval: seconds between two polls of the token endpoint.
    """

    verification_uri: str
    verification_uri_complete: str | None
    user_code: str
    expires_in: float
    interval: float


@dataclass(frozen=True, slots=True, repr=False)
class Token:
    """An access token and what the provider said about it.

    Attributes:
        access_token: the bearer credential.
        token_type: what the provider called it (``"bearer"``, ``"Bearer"``, ``"DPoP"``
            or None). authplug sends ``Authorization: Bearer …`` whatever this says,
            unless the token is DPoP-bound (``dpop_jkt``).
        expires_at: when the access token expires, in epoch seconds, or None when the
            provider gave no lifetime. For persistence and display; renewal decisions
            use a monotonic clock.
        refresh_token: the refresh token, or None.
        scope: the granted scope as a space-separated string, or None.
        extra: every other field of the provider's answer (read-only).
        issued_at: when the answer arrived, in epoch seconds (None for a token handed
            in by the caller, whose lifetime is unknown).
        refresh_expires_at: when the refresh token expires, in epoch seconds, when the
            provider says so.
        dpop_jkt: the thumbprint (RFC 7638) of the DPoP key the token is bound to, or
            None for a Bearer token. A bound token is sent as ``Authorization: DPoP …``
            with a proof made by that key, and by no other.
    """

    access_token: str
    token_type: str | None = None
    expires_at: float | None = None
    refresh_token: str | None = None
    scope: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    issued_at: float | None = None
    refresh_expires_at: float | None = None
    dpop_jkt: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.access_token, str) or not self.access_token:
            raise ValueError("the token has no access_token string")
        if _HEADER_UNSAFE().search(self.access_token):
            # Never quote the token: the message may reach a log.
            raise ValueError(
                "the access token holds characters an HTTP header cannot carry "
                "(control characters, spaces or non-ASCII)"
            )
        if not isinstance(self.extra, MappingProxyType):
            object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    def __reduce__(self) -> tuple[object, ...]:
        # The read-only ``extra`` view cannot be pickled or deep-copied as it is.
        return (_restore, (self.to_dict(),))

    def __repr__(self) -> str:
        return (
            f"Token(access_token={mask(self.access_token)}, token_type={self.token_type!r}, "
            f"expires_at={self.expires_at!r}, refresh_token={mask(self.refresh_token)}, "
            f"scope={self.scope!r}, extra_keys={sorted(self.extra)!r})"
        )

    __str__ = __repr__

    @property
    def lifetime(self) -> float | None:
        """Seconds between issue and expiry, when both are known."""
        if self.expires_at is None or self.issued_at is None:
            return None
        return self.expires_at - self.issued_at

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict that :meth:`from_dict` reads back."""
        data: dict[str, Any] = dict(self.extra)
        data["access_token"] = self.access_token
        for name in ("token_type", "expires_at", "refresh_token", "scope", "issued_at"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.refresh_expires_at is not None:
            data["refresh_expires_at"] = self.refresh_expires_at
        if self.dpop_jkt is not None:
            data["dpop_jkt"] = self.dpop_jkt
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, now: float | None = None) -> Token:
        """Build a token from a stored dict or a provider's answer.

        ``expires_at`` wins over ``expires_in``; ``expires_in`` is counted from ``now``.
        Fields that are not the token's own go to :attr:`extra`.

        Args:
            data: a dict as :meth:`to_dict` wrote it, or a provider's answer.
            now: when the answer arrived, in epoch seconds; needed for an
                ``expires_in`` without ``expires_at``.

        Returns:
            The token.

        Raises:
            ValueError: the dict is unusable (no access token string, an expiry that is
                not a number, a scope that is neither a string nor a list, ...).
        """
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise ValueError("the token has no access_token string")
        expires_at = parse_number(data.get("expires_at"))
        if data.get("expires_at") is not None and expires_at is None:
            raise ValueError("expires_at is not a number")
        if expires_at is None and data.get("expires_in") is not None:
            expires_in = parse_number(data.get("expires_in"))
            if expires_in is None:
                raise ValueError("expires_in is not a number")
            if now is None:
                raise ValueError("expires_in needs the time the answer arrived")
            expires_at = now + max(expires_in, 0.0)
        scope = data.get("scope")
        if isinstance(scope, (list, tuple)):
            scope = " ".join(str(s) for s in scope)
        elif scope is not None and not isinstance(scope, str):
            raise ValueError("scope is neither a string nor a list")
        refresh = data.get("refresh_token")
        if refresh is not None and not isinstance(refresh, str):
            raise ValueError("refresh_token is not a string")
        token_type = data.get("token_type")
        if token_type is not None and not isinstance(token_type, str):
            raise ValueError("token_type is not a string")
        jkt = data.get("dpop_jkt")
        if jkt is not None and not isinstance(jkt, str):
            raise ValueError("dpop_jkt is not a string")
        return cls(
            access_token=access,
            token_type=token_type,
            expires_at=expires_at,
            refresh_token=refresh or None,
            scope=scope or None,
            extra={k: v for k, v in data.items() if k not in _KNOWN},
            issued_at=parse_number(data.get("issued_at")),
            refresh_expires_at=parse_number(data.get("refresh_expires_at")),
            dpop_jkt=jkt or None,
        )

    @classmethod
    def coerce(cls, value: Token | Mapping[str, Any], *, now: float) -> Token:
        """Accept a Token or a provider's dict as handed in through ``token=``.

        A handed-in token has no known lifetime, so ``issued_at`` is dropped.

        Args:
            value: a :class:`Token`, or a dict as :meth:`from_dict` reads it.
            now: the current time in epoch seconds (a dict's ``expires_in`` counts from it).

        Returns:
            The token, without ``issued_at``.

        Raises:
            ConfigurationError: ``value`` is neither a Token nor a usable dict.
        """
        if isinstance(value, Token):
            token = value
        elif isinstance(value, Mapping):
            try:
                token = cls.from_dict(value, now=now)
            except ValueError as exc:
                raise ConfigurationError(f"token=: {exc}") from None
        else:
            raise ConfigurationError(
                "token= takes an authplug.Token or the dict a provider returned, "
                f"not {type(value).__name__}"
            )
        return dataclasses.replace(token, issued_at=None)


def _restore(data: dict[str, Any]) -> Token:
    return Token.from_dict(data)


def authorization(token: Token) -> str:
    """The Authorization header value: capital B whatever the provider's token_type says
    (``DPoP`` for a DPoP-bound token, RFC 9449 §7.1).

    RFC 6750 §2.1; the scheme is case-insensitive, but some servers compare it exactly.
    """
    if token.dpop_jkt is not None:
        return f"DPoP {token.access_token}"
    return f"Bearer {token.access_token}"
