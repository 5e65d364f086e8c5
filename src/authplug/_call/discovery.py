"""The token endpoint read from the issuer: OpenID Connect Discovery and RFC 8414.

With ``issuer=``, the first token call first reads
``{issuer}/.well-known/openid-configuration`` (or, when that is 404,
``https://host/.well-known/oauth-authorization-server{path}``, RFC 8414 §3), checks that
the document's ``issuer`` is the one given (RFC 8414 §3.3: else no credential is sent),
and takes its ``token_endpoint`` and ``revocation_endpoint``. The document is kept for a
day; a refetch that fails keeps the old copy (and is tried again five minutes later).

The fetch is a plan (:mod:`authplug._call.plan`), run inside the token call that needs it:
token calls are single-flight, so discovery is too, with the same timeouts and retries.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._redact import safe_url
from ..errors import ConfigurationError, DiscoveryError, IssuerMismatchError
from ..spec import describe_body, read_json
from .messages import RawResponse, TokenRequest, TransportFailure
from .plan import Plan
from .retry import RetryPolicy, attempts

__all__ = ["MAX_AGE", "Discovery", "Metadata", "well_known_urls"]

log = logging.getLogger("authplug")

MAX_AGE = 24 * 3600.0  # a document is kept this long
RETRY_AFTER_FAILURE = 300.0  # after a failed refetch, the old copy is used this long


@dataclass(frozen=True, slots=True)
class Metadata:
    """What authplug uses of an authorization server's metadata document."""

    issuer: str
    token_endpoint: str
    revocation_endpoint: str | None
    fetched_at: float  # the clock's time
    #: Where a person logs in (the authorization code flow), when the server says.
    authorization_endpoint: str | None = None
    #: Where a device asks for a user code (RFC 8628), when the server says.
    device_authorization_endpoint: str | None = None


def well_known_urls(issuer: str) -> tuple[str, ...]:
    """Where the metadata of ``issuer`` may be: OpenID Connect's place, then RFC 8414's."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    oidc = issuer.rstrip("/") + "/.well-known/openid-configuration"
    rfc8414 = urlunsplit(
        (parts.scheme, parts.netloc, "/.well-known/oauth-authorization-server" + path, "", "")
    )
    return (oidc, rfc8414)


class Discovery:
    """The metadata of one issuer, fetched when first needed and kept for a day."""

    def __init__(
        self,
        issuer: str,
        *,
        retry: RetryPolicy,
        now: Callable[[], float],
        name: str,
        check_url: Callable[[str, object], str],
    ) -> None:
        self.issuer = issuer
        self._retry = retry
        self._now = now
        self._name = name
        self._check_url = check_url
        self._current: Metadata | None = None
        self._retry_at = 0.0

    def __repr__(self) -> str:
        return f"Discovery(issuer={self.issuer!r})"

    @property
    def current(self) -> Metadata | None:
        """The document in use, or None before the first fetch."""
        return self._current

    def metadata(self) -> Plan[Metadata]:
        """The metadata: the kept copy while it is fresh, else a new fetch."""
        now = self._now()
        current = self._current
        if current is not None and (now - current.fetched_at < MAX_AGE or now < self._retry_at):
            return current
        try:
            fresh = yield from self._fetch(now)
        except DiscoveryError as exc:
            if current is None:
                raise
            self._retry_at = now + RETRY_AFTER_FAILURE
            log.warning(
                "%s: the metadata of %s could not be read again (%s); going on with the "
                "copy read %.0f s ago",
                self._name,
                self.issuer,
                exc.description,
                now - current.fetched_at,
            )
            return current
        if current is None:
            log.info(
                "%s: discovered the token endpoint %s from %s",
                self._name,
                safe_url(fresh.token_endpoint),
                self.issuer,
            )
        self._current = fresh
        return fresh

    def _fetch(self, now: float) -> Plan[Metadata]:
        urls = well_known_urls(self.issuer)
        for url in urls:
            outcome = yield from attempts(
                self._retry, functools.partial(_get, url), now=self._now, name=self._name
            )
            if isinstance(outcome, TransportFailure):
                raise self._error(f"no answer from {safe_url(url)}: {outcome.description}")
            if outcome.status_code == 404 and url != urls[-1]:
                continue
            return self._read_metadata(url, outcome, now)
        raise AssertionError("unreachable")  # pragma: no cover - the last URL returns or raises

    def _read_metadata(self, url: str, raw: RawResponse, now: float) -> Metadata:
        where = safe_url(url)
        if not 200 <= raw.status_code < 300:
            what = describe_body(raw.status_code, raw.content_type, raw.content)
            raise self._error(f"{where} answered {what}", raw.status_code)
        data = read_json(raw.content)
        if not isinstance(data, dict):
            what = describe_body(raw.status_code, raw.content_type, raw.content)
            raise self._error(f"{where}: expected a JSON metadata document, got {what}")
        issuer = data.get("issuer")
        if issuer != self.issuer:
            named = repr(issuer) if isinstance(issuer, str) else f"no issuer ({_kind(issuer)})"
            hint = (
                f"; if that server is the right one, give issuer={issuer!r}"
                if isinstance(issuer, str) and issuer
                else ""
            )
            raise IssuerMismatchError(
                f"the metadata at {where} names {named[:120]}, not {self.issuer!r}: no "
                f"credential was sent (RFC 8414 §3.3){hint[:160]}",
                provider=self._name,
            )
        return Metadata(
            issuer=self.issuer,
            token_endpoint=self._endpoint(data, "token_endpoint", where, required=True) or "",
            revocation_endpoint=self._endpoint(data, "revocation_endpoint", where, required=False),
            fetched_at=now,
            authorization_endpoint=self._endpoint(
                data, "authorization_endpoint", where, required=False
            ),
            device_authorization_endpoint=self._endpoint(
                data, "device_authorization_endpoint", where, required=False
            ),
        )

    def _endpoint(
        self, data: dict[str, Any], field: str, where: str, *, required: bool
    ) -> str | None:
        value = data.get(field)
        if value is None and not required:
            return None
        try:
            return self._check_url(field, value)
        except ConfigurationError as exc:
            if required:
                raise self._error(f"{where}: {exc}") from None
            log.warning("%s: ignoring the metadata's %s (%s)", self._name, field, exc)
            return None

    def _error(self, description: str, status: int | None = None) -> DiscoveryError:
        return DiscoveryError(
            f"discovery of {self.issuer}: {description}", provider=self._name, status_code=status
        )


def _get(url: str) -> TokenRequest:
    headers = {"Accept": "application/json", "User-Agent": "authplug"}
    return TokenRequest("GET", url, headers, b"", purpose="metadata")


def _kind(value: object) -> str:
    return "missing" if value is None else type(value).__name__
