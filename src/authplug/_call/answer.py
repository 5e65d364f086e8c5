"""An answer of the token endpoint read into a :class:`~authplug.Token` or an error.

Every answer, whatever its shape, ends as a Token or one of the package's errors:

- a non-2xx status is refused credentials (:data:`REJECTED_STATUSES`:
  :class:`~authplug.CredentialsRejectedError`) or a server fault
  (:class:`~authplug.TokenEndpointError`), with the spec's reading of the error body
  (a parser that raises is not believed: the body is described instead);
- a 2xx answer is a JSON object whose field names the spec maps onto RFC 6749's, read
  by Authlib (:func:`authplug._call.authlib.parse_token`); anything else is a
  :class:`~authplug.TokenResponseError`;
- lifetimes become deadlines on the clock's time; a lifetime that is not positive is
  taken as none given; the provider's own absolute time is not trusted.

Every message goes through the call's scrubber, so an answer that echoes a secret
shows ``***``. Nothing here sends anything: every rule is a unit test away.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import (
    AuthError,
    CredentialsRejectedError,
    TokenEndpointError,
    TokenResponseError,
)
from ..spec import ErrorDetails, describe_body, read_json
from ..token import Token, parse_number
from .authlib import parse_token

if TYPE_CHECKING:
    from .._clock import Clock
    from .._redact import Scrubber
    from ..spec import ProviderSpec
    from .messages import RawResponse

__all__ = ["REJECTED_STATUSES", "AnswerReader"]

log = logging.getLogger("authplug")

#: Statuses of an error answer that mean "these credentials are refused".
REJECTED_STATUSES = frozenset({400, 401, 403, 422})


class _Unusable(Exception):
    """A 2xx answer that is not a usable token (raised and caught inside this module)."""


class AnswerReader:
    """Reads the token endpoint's answers for one provider, on one clock."""

    def __init__(self, spec: ProviderSpec, clock: Clock) -> None:
        self.spec = spec
        self._clock = clock
        self._warned_lifetime = False

    def token(self, raw: RawResponse, scrub: Scrubber) -> Token:
        """Turn the endpoint's answer into a Token, or raise one of the package's errors."""
        outcome = self._token_or_error(raw, scrub)
        if isinstance(outcome, AuthError):
            raise outcome
        return outcome

    def _token_or_error(self, raw: RawResponse, scrub: Scrubber) -> Token | AuthError:
        # Returns the error instead of raising it: this frame holds the answer's data
        # (a token), and a raised error would carry it in its traceback's locals.
        status = raw.status_code
        if not 200 <= status < 300:
            return self.refused(raw, scrub)
        data = read_json(raw.content)
        if not isinstance(data, dict):
            what = describe_body(status, raw.content_type, raw.content, excerpt=False)
            return self.error(
                TokenResponseError, status, None, f"expected a JSON token object, got {what}", scrub
            )
        try:
            fields = self._fields(status, data)
        except _Unusable as exc:
            return self.error(TokenResponseError, status, None, str(exc), scrub)
        except Exception as exc:
            # Not expected of any answer; reported by kind, never by content.
            return self.error(
                TokenResponseError, status, None, f"unusable token ({type(exc).__name__})", scrub
            )
        if isinstance(fields, ErrorDetails):
            description = fields.description or "error in a 2xx answer"
            return self.error(TokenResponseError, status, fields.error, description, scrub)
        try:
            return Token.from_dict(fields)
        except ValueError as exc:
            return self.error(TokenResponseError, status, None, f"unusable token: {exc}", scrub)

    def _fields(self, status: int, data: dict[str, Any]) -> dict[str, Any] | ErrorDetails:
        """The token's fields, read by Authlib, or the error the object holds."""
        data = self._normalize(data)
        for field in ("error", "error_description"):
            # Authlib checks each character of these: a number or a list breaks it.
            if data.get(field) is not None and not isinstance(data[field], str):
                data[field] = str(data[field])
        parsed = parse_token(status, dict(data))
        # Authlib's OAuth2Token rounds expires_at to whole seconds (in the dict it is
        # given, hence the copy above); keep ours.
        if isinstance(parsed, dict) and data.get("expires_at") is not None:
            parsed["expires_at"] = data["expires_at"]
        return parsed

    def _normalize(self, data: dict[str, Any]) -> dict[str, Any]:
        """Map the provider's field names onto RFC 6749's; lifetimes to deadlines."""
        data = dict(data)
        now = self._clock.time()
        data["issued_at"] = now
        data.pop("expires_at", None)  # a provider's absolute time is not ours to trust
        expires_in = self._lifetime(data, self.spec.expires_in_field, warn=True)
        data.pop("expires_in", None)
        if expires_in is not None:
            data["expires_in"] = expires_in
            data["expires_at"] = now + expires_in
        if self.spec.refresh_expires_in_field:
            refresh_in = self._lifetime(data, self.spec.refresh_expires_in_field, warn=False)
            if refresh_in is not None:
                data["refresh_expires_at"] = now + refresh_in
        return data

    def _lifetime(self, data: dict[str, Any], name: str, *, warn: bool) -> float | None:
        """The lifetime field ``name`` in seconds (taken out of ``data``); None when
        absent, null or not positive.

        A lifetime that is not positive is treated as none given: the token is used
        until the API refuses it (a 0 would otherwise mean a token call before every
        request). Keycloak, for one, sends ``refresh_expires_in: 0`` for "no expiry".
        """
        value = data.pop(name, None)
        if value is None:
            return None
        seconds = parse_number(value)
        if seconds is None:
            raise _Unusable(f"the token answer's {name!r} is not a usable number")
        if seconds > 0:
            return seconds
        if warn and not self._warned_lifetime:
            self._warned_lifetime = True
            log.warning(
                "%s: the token endpoint gave %s=%g, not a positive lifetime; the token "
                "is used until the API refuses it",
                self.spec.name,
                name,
                seconds,
            )
        return None

    def details(self, raw: RawResponse) -> ErrorDetails:
        """The spec's reading of an error body; a parser that fails is not believed."""
        try:
            error, description = self.spec.parse_error(
                raw.status_code, raw.content_type, raw.content
            )
            return ErrorDetails(_str_or_none(error), _str_or_none(description) or "")
        except Exception:
            log.debug("%s: the error parser failed; describing the body", self.spec.name)
            return ErrorDetails(None, describe_body(raw.status_code, raw.content_type, raw.content))

    def refused(self, raw: RawResponse, scrub: Scrubber, what: str = "") -> AuthError:
        """The error of a non-2xx answer: refused credentials, or a server fault.
        ``what`` goes before the server's words (``"revocation refused: "``)."""
        details = self.details(raw)
        status = raw.status_code
        cls = CredentialsRejectedError if status in REJECTED_STATUSES else TokenEndpointError
        return self.error(cls, status, details.error, what + details.description, scrub)

    def error(
        self,
        cls: type[AuthError],
        status: int | None,
        error: str | None,
        description: str,
        scrub: Scrubber,
    ) -> AuthError:
        """An error of this provider, its words scrubbed of the call's secrets."""
        return cls(
            scrub(description),
            provider=self.spec.name,
            status_code=status,
            error=scrub(error) if error is not None else None,
        )

    def unreachable(
        self, description: str, scrub: Scrubber, endpoint: str, attempts: int
    ) -> AuthError:
        """No answer at all after ``attempts`` tries: a TokenEndpointError."""
        return self.error(
            TokenEndpointError,
            None,
            None,
            f"no answer from the {endpoint} endpoint after {attempts} attempt(s): {description}",
            scrub,
        )


def _str_or_none(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)
