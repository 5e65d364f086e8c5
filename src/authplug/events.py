"""What an auth object tells observers: small frozen values, one per thing that happened.

Give ``on_event=`` any callable and it receives these as they happen, in the thread or
task where they happen; with ``opentelemetry-api`` installed (``authplug[otel]``), the
same events become spans and metrics (see :doc:`/observability`). An event never holds
a secret or a token: only the provider's name, reasons and outcomes from a short fixed
list, counts, HTTP statuses, the provider's error code, and durations in seconds.

A callback that raises is logged (its exception's type only) and otherwise ignored:
observing must never break a request. A callback should return quickly; one that needs
to do I/O should hand the event to a queue.

Example:
    .. code-block:: python

        import collections

        from authplug import OAuth2ClientCredentialsAuth
        from authplug.events import Event, TokenCall

        counts: collections.Counter[str] = collections.Counter()

        def observe(event: Event) -> None:
            if isinstance(event, TokenCall):
                counts[event.outcome] += 1

        auth = OAuth2ClientCredentialsAuth(
            token_url="https://auth.example.com/token",
            client_id="my-client",
            client_secret="...",
            on_event=observe,
        )
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._lazy import regex

__all__ = [
    "CacheLookup",
    "Event",
    "Fallback",
    "Reason",
    "Renewal",
    "Replay",
    "TokenCall",
    "error_code",
]

#: Why a renewal started: the first token; a token due for renewal but still valid
#: (renewed in the background); an expired token; the API refused the token (a 401);
#: a token of unknown lifetime that is no longer usable.
Reason = Literal["first_use", "stale", "expired", "refused", "unknown_expiry"]

_SAFE_CODE = regex(r"[A-Za-z0-9_.:-]{1,64}")


def error_code(code: str | None) -> str | None:
    """The provider's error code as events carry it: as it is when it looks like an
    error code (``invalid_grant``), else ``"unrecognised"``: a provider's free text
    stays out of metrics and traces (it may quote what it was sent)."""
    if code is None:
        return None
    return code if _SAFE_CODE().fullmatch(code) else "unrecognised"


@dataclass(frozen=True, slots=True)
class Renewal:
    """A renewal started: the token is fetched, refreshed or taken from the cache.

    Attributes:
        provider: the provider's lower-case name (``"oauth2"`` for the generic classes).
        reason: why it started (:data:`Reason`).
        time_left: seconds the current token had left before it expires, or None when
            there was no token or its lifetime is unknown. Negative when it had expired.
        background: True for a renewal started ahead of expiry, off the request path.
    """

    provider: str
    reason: Reason
    time_left: float | None
    background: bool


@dataclass(frozen=True, slots=True)
class TokenCall:
    """A call to the token endpoint ended (one grant: a refused refresh token followed by
    the full grant makes two).

    Attributes:
        provider: the provider's lower-case name.
        grant: the grant type sent (``"client_credentials"``, ``"password"``,
            ``"refresh_token"``).
        reason: why the renewal started (:data:`Reason`).
        outcome: ``"ok"``, ``"refused"`` (the endpoint refused the credentials: 400 or
            401 with an OAuth2 error), or ``"failed"`` (anything else: unreachable, 5xx
            after the retries, an unreadable answer, cancelled).
        attempts: HTTP requests sent to the token endpoint, retries included (0 when
            the call failed before sending, e.g. at discovery).
        status_code: the HTTP status of the last answer, or None without an answer.
        error: the provider's error code (see :func:`error_code`), or None.
        duration: seconds from the start of the call to its outcome: the retries and
            their waits included, and the read of the issuer's metadata when the call
            needed it.
    """

    provider: str
    grant: str
    reason: Reason
    outcome: Literal["ok", "refused", "failed"]
    attempts: int
    status_code: int | None
    error: str | None
    duration: float


@dataclass(frozen=True, slots=True)
class Replay:
    """The API refused a token (``status_code``, a 401 by default) and the request is
    sent once more with a renewed token.

    Attributes:
        provider: the provider's lower-case name.
        status_code: the API's answer that caused the replay.
    """

    provider: str
    status_code: int


@dataclass(frozen=True, slots=True)
class Fallback:
    """A renewal failed while the current token was still valid: requests go on with
    that token until it expires (a background renewal is tried again after a pause).

    Attributes:
        provider: the provider's lower-case name.
        time_left: seconds the token still had.
        error: the provider's error code of the failed renewal, or None.
    """

    provider: str
    time_left: float
    error: str | None


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """A renewal consulted the token cache.

    Attributes:
        provider: the provider's lower-case name.
        result: ``"hit"`` (another process or an earlier renewal stored a fresh token:
            used, no token call), ``"miss"`` (nothing usable: a token call follows), or
            ``"outage"`` (the cache failed: requests go on with this process's token).
    """

    provider: str
    result: Literal["hit", "miss", "outage"]


#: Any of the events.
Event = Renewal | TokenCall | Replay | Fallback | CacheLookup
