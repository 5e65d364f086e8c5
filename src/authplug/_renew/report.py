"""One report per happening; logging is one observer of them, the user's hook another.

The manager and the renewer tell what happened once, with :class:`Reporter`
(``report(Renewed(failures=2))``). Each happening goes to the log observer
(:class:`LogObserver`: every log line of the token brain, its wording and level, and the
policies that choose them), then, as the public event of :mod:`authplug.events` when it
has one, to the outside observers: ``on_event=`` and OpenTelemetry (:mod:`.otel`). The
shape is stamina's: one ``RetryDetails`` per retry, logging one hook beside the others.

Two kinds of happening travel here. The public events (:class:`~authplug.events.Renewal`,
:class:`~authplug.events.TokenCall`, :class:`~authplug.events.CacheLookup`) are reported
as they are, and built only when someone outside listens (:attr:`Reporter.listening`).
The others are the small records below: they carry what a log line needs beyond the
event (the error's text, the pause before the next try), and the public event is taken
from them (:meth:`Replaying.event`, :meth:`RenewalFailed.event`). A record never holds
a token: a token is reported masked (:func:`authplug._redact.mask`).

The log policies:

* a background renewal that fails on refused credentials logs ERROR once, until a
  renewal succeeds; any other failure logs WARNING the first time, INFO after that;
* a cache that fails logs WARNING once, DEBUG while it stays down, INFO when it is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import AuthError, CredentialsRejectedError
from ..events import CacheLookup, Event, Fallback, Renewal, Replay, TokenCall, error_code

__all__ = [
    "AdoptedRefused",
    "CacheFailed",
    "CacheReached",
    "CallStarting",
    "CallbackRaised",
    "FallingBack",
    "FlightAbandoned",
    "ForeignKey",
    "Happening",
    "LateLeader",
    "LogObserver",
    "NewToken",
    "NothingToRevoke",
    "RefreshExpired",
    "RefreshRefused",
    "RefusalsQuiet",
    "RenewalFailed",
    "Renewed",
    "Replaying",
    "Reporter",
    "Revoked",
    "Unexpected",
    "UsingShared",
]

log = logging.getLogger("authplug")


# -- happenings that have a public event ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Replaying:
    """An adapter sends a refused request once more, with a renewed token."""

    where: str
    status: int

    def event(self, provider: str) -> Replay:
        return Replay(provider, self.status)


@dataclass(frozen=True, slots=True)
class RenewalFailed:
    """A renewal ended in ``error``; ``pause`` seconds until a background one may start.

    Attributes:
        error: the failure (its caller, if any, gets it raised).
        background: the renewal ran ahead of expiry, with no caller waiting for it.
        failures: failed renewals in a row, this one included.
        pause: seconds the backoff waits before the next background renewal.
        time_left: seconds the current token still has (None: no token, or unknown).
    """

    error: AuthError
    background: bool
    failures: int
    pause: float
    time_left: float | None

    def event(self, provider: str) -> Fallback | None:
        """A :class:`~authplug.events.Fallback` when a still-valid token stays in use."""
        left = self.time_left
        if left is None or left <= 0:
            return None
        return Fallback(provider, left, error_code(self.error.error))


# -- happenings that are only logged --------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallStarting:
    """A token call starts (its :class:`~authplug.events.TokenCall` comes when it ends)."""

    grant: str
    reason: str


@dataclass(frozen=True, slots=True)
class RefreshRefused:
    """The endpoint refused the refresh token: the full grant follows."""

    status: int | None


@dataclass(frozen=True, slots=True)
class RefreshExpired:
    """The refresh token outlived its lifetime: the full grant is used."""


@dataclass(frozen=True, slots=True)
class Renewed:
    """A renewal ended with a token, after ``failures`` failed ones in a row."""

    failures: int


@dataclass(frozen=True, slots=True)
class FallingBack:
    """A caller's renewal failed; the current token, due but valid, goes out anyway."""

    error: AuthError


@dataclass(frozen=True, slots=True)
class CacheFailed:
    """A cache operation failed; the renewal goes on without the cache."""

    error: Exception


@dataclass(frozen=True, slots=True)
class CacheReached:
    """A read of the cache worked."""


@dataclass(frozen=True, slots=True)
class UsingShared:
    """A fresh token another process stored is adopted (``masked``: its masked form)."""

    masked: str


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """The cached token is bound to another DPoP key (RFC 9449): never sent from here."""


@dataclass(frozen=True, slots=True)
class FlightAbandoned:
    """A flight its leader cannot finish is dropped (``loop_closed``: why)."""

    loop_closed: bool


@dataclass(frozen=True, slots=True)
class LateLeader:
    """The leader of an abandoned flight ended; a newer flight owns the state."""


@dataclass(frozen=True, slots=True)
class RefusalsQuiet:
    """A freshly renewed token was refused too: refusals go unanswered a while."""

    seconds: float


@dataclass(frozen=True, slots=True)
class AdoptedRefused:
    """A token adopted from the cache was refused: the next refusal renews."""


@dataclass(frozen=True, slots=True)
class Revoked:
    """The token was revoked at the server and forgotten (``which``: what was revoked)."""

    which: str


@dataclass(frozen=True, slots=True)
class NothingToRevoke:
    """A revocation found no token."""


@dataclass(frozen=True, slots=True)
class NotRevoked:
    """A logout forgot the login without revoking it at the server (``reason``: why)."""

    reason: str


@dataclass(frozen=True, slots=True)
class LoggedOut:
    """A logout forgot the login here and in the cache (``revoked``: at the server too)."""

    revoked: bool


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token call gave a new token (``masked``: its masked form)."""

    masked: str


@dataclass(frozen=True, slots=True)
class CallbackRaised:
    """The ``on_token`` callback raised (``kind``: the exception's type name)."""

    kind: str


@dataclass(frozen=True, slots=True)
class Unexpected:
    """A leader nobody waits on failed outside the package's errors."""

    error: Exception


#: Anything the token brain reports.
Happening = (
    Renewal
    | TokenCall
    | CacheLookup
    | Replaying
    | RenewalFailed
    | CallStarting
    | RefreshRefused
    | RefreshExpired
    | Renewed
    | FallingBack
    | CacheFailed
    | CacheReached
    | UsingShared
    | ForeignKey
    | FlightAbandoned
    | LateLeader
    | RefusalsQuiet
    | AdoptedRefused
    | Revoked
    | NothingToRevoke
    | NotRevoked
    | LoggedOut
    | NewToken
    | CallbackRaised
    | Unexpected
)


def public(happening: Happening, provider: str) -> Event | None:
    """The event of :mod:`authplug.events` that tells ``happening``, if there is one."""
    if isinstance(happening, (Renewal, TokenCall, CacheLookup)):
        return happening
    if isinstance(happening, (Replaying, RenewalFailed)):
        return happening.event(provider)
    return None


class Reporter:
    """Tells each happening to the log, and its public event to the outside observers."""

    __slots__ = ("_log", "observers", "provider")

    def __init__(self, provider: str, observers: Sequence[Callable[[Event], object]] = ()) -> None:
        self.provider = provider
        #: Told of each public event (``on_event=``, OpenTelemetry).
        self.observers = tuple(observers)
        self._log = LogObserver(provider)

    def __repr__(self) -> str:
        return f"Reporter(provider={self.provider!r})"

    @property
    def listening(self) -> bool:
        """Someone outside listens: without, no public event is built (nor counted)."""
        return bool(self.observers)

    def __call__(self, happening: Happening) -> None:
        self._log(happening)
        if not self.observers:
            return
        event = public(happening, self.provider)
        if event is None:
            return
        for observe in self.observers:
            try:
                observe(event)
            except Exception as exc:  # observing must never break a request
                log.warning("%s: an event observer raised %s", self.provider, type(exc).__name__)


class LogObserver:
    """Every log line of the token brain, with the policies that choose their level."""

    __slots__ = ("cache_down", "provider", "refusal_logged")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        #: The ERROR about refused credentials was logged; cleared by a renewal.
        self.refusal_logged = False
        #: The cache failed last time: WARNING once, INFO when it is back.
        self.cache_down = False

    def __call__(self, happening: Happening) -> None:
        name = self.provider
        match happening:
            case Replaying(where, status):
                log.info(
                    "%s: the API answered %d; replaying the request with a renewed token",
                    where,
                    status,
                )
            case RenewalFailed():
                self._renewal_failed(happening)
            case Renewed(failures):
                self.refusal_logged = False
                if failures:
                    log.info("%s: token renewed after %d failed attempts", name, failures)
            case CallStarting(grant, reason):
                log.info("%s: token call, %s grant (reason: %s)", name, grant, reason)
            case RefreshRefused(status):
                log.info(
                    "%s: the refresh token was refused (HTTP %s); falling back to the full grant",
                    name,
                    status,
                )
            case RefreshExpired():
                log.info("%s: the refresh token has expired; using the full grant", name)
            case FallingBack(error):
                log.warning(
                    "%s: token renewal failed (%s); using the current token until it expires",
                    name,
                    error,
                )
            case CacheFailed(error):
                self._cache_failed(error)
            case CacheReached():
                if self.cache_down:
                    self.cache_down = False
                    log.info("%s: the token cache is reachable again", name)
            case UsingShared(masked):
                log.info("%s: using a token renewed elsewhere (%s), no token call", name, masked)
            case ForeignKey():
                log.warning("%s: the cached token is bound to another DPoP key; not used", name)
            case FlightAbandoned(loop_closed):
                log.warning(
                    "%s: the token call in progress was abandoned (%s); starting a new one",
                    name,
                    "its event loop was closed" if loop_closed else "stuck",
                )
            case LateLeader():
                log.debug("%s: a token call ended after it was abandoned", name)
            case RefusalsQuiet(seconds):
                log.warning(
                    "%s: the API refused a freshly renewed token too; the credentials work "
                    "but the permission does not. Refusals are handed back without renewing "
                    "for %.0fs",
                    name,
                    seconds,
                )
            case AdoptedRefused():
                log.info(
                    "%s: the API refused the token adopted from the cache too; it may have "
                    "been rotated since: the next refusal renews",
                    name,
                )
            case Revoked(which):
                log.info("%s: revoked the %s; the token is forgotten", name, which)
            case NothingToRevoke():
                log.info("%s: no token to revoke", name)
            case NotRevoked(reason):
                log.warning(
                    "%s: logging out without revoking the refresh token at the server (%s)",
                    name,
                    reason,
                )
            case LoggedOut(revoked):
                log.info(
                    "%s: logged out%s; the login is forgotten here and in the cache",
                    name,
                    " (revoked at the server)" if revoked else "",
                )
            case NewToken(masked):
                log.debug("%s: new token %s", name, masked)
            case CallbackRaised(kind):
                log.warning("%s: the on_token callback raised %s", name, kind)
            case Unexpected(error):
                # The traceback at DEBUG only: its frames may show request data.
                log.warning("%s: the token call failed unexpectedly: %r", name, error)
                log.debug("%s: traceback of the failed token call", name, exc_info=error)
            case _:  # the public events alone (Renewal, TokenCall, CacheLookup): no line
                pass

    def _renewal_failed(self, failed: RenewalFailed) -> None:
        """How a background renewal failed (its caller, if any, gets the exception).

        Refused credentials: ERROR, once until a renewal succeeds. Anything else:
        WARNING at the first failure, INFO at the next ones.
        """
        if not failed.background:
            return
        if isinstance(failed.error, CredentialsRejectedError):
            if not self.refusal_logged:
                self.refusal_logged = True
                log.error(
                    "%s: the token endpoint refused the credentials (%s); the current token "
                    "is used until it expires, renewal is retried every %.0fs",
                    self.provider,
                    failed.error,
                    failed.pause,
                )
            return
        log.log(
            logging.WARNING if failed.failures == 1 else logging.INFO,
            "%s: background token renewal failed (%s); the current token is used for its "
            "last %.0fs, next attempt in %.0fs",
            self.provider,
            failed.error,
            max(failed.time_left or 0.0, 0.0),
            failed.pause,
        )

    def _cache_failed(self, error: Exception) -> None:
        """One warning when the cache goes down; requests go on with our own token."""
        if not self.cache_down:
            self.cache_down = True
            log.warning(
                "%s: the token cache is unavailable (%s); going on with this process's "
                "own token until it is back",
                self.provider,
                error,
            )
        else:
            log.debug("%s: the token cache is still unavailable (%s)", self.provider, error)
