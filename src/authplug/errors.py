"""The exceptions authplug raises.

The tree, named after what the caller does next::

    Exception
    ├── AuthError                     a token could not be had; carries provider,
    │   │                             status_code, error and description
    │   ├── CredentialsRejectedError  the token endpoint refused the credentials
    │   │                             (400, 401, 403, 422): fix them, do not retry
    │   ├── LoginRequiredError        a person must log in, and none can be asked here
    │   │                             (no terminal, no on_authorize/on_user_code, a
    │   │                             background renewal): log in, then try again
    │   ├── TokenEndpointError        no usable answer (unreachable, TLS, timeout,
    │   │   │                         404, 5xx or 429 after the retries, a DPoP
    │   │   │                         nonce asked for twice): try later
    │   │   └── DiscoveryError        the issuer's metadata could not be read or used
    │   │       └── IssuerMismatchError   it names another issuer (also a
    │   │                             ConfigurationError): no credential was sent
    │   └── TokenResponseError        a 2xx answer that is not a usable token:
    │                                 the provider is misbehaving, report it
    └── ValueError
        └── ConfigurationError        a mistake in the arguments, found at construction

No message, attribute or ``repr`` of these exceptions carries a password, a client
secret or a token: descriptions are scrubbed of every secret the package knows of
before the exception is built.
"""

from __future__ import annotations

from ._lazy import regex

__all__ = [
    "AuthError",
    "ConfigurationError",
    "CredentialsRejectedError",
    "DiscoveryError",
    "IssuerMismatchError",
    "LoginRequiredError",
    "TokenEndpointError",
    "TokenResponseError",
]

_MAX_DESCRIPTION = 300
_MAX_ERROR = 80
_CONTROL = regex(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def _clean(text: str, limit: int) -> str:
    """One line of printable text at most ``limit`` characters long.

    Providers' words reach log lines and terminals: a control character could forge a
    log line or move a cursor, and a megabyte of "description" helps nobody.
    """
    text = _CONTROL().sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


class AuthError(Exception):
    """A token could not be obtained.

    The message reads ``provider: HTTP status: error: description`` (the parts that are
    known; an error code equal to the description is said once).

    Args:
        description: the provider's own words, or what went wrong; made one line of
            printable text, at most 300 characters.
        provider: ``"oauth2"`` for the generic classes, else the provider's lower-case name.
        status_code: the HTTP status of the token endpoint's answer, or None when there
            was no answer.
        error: the provider's error code, or None; made one line of printable text, at
            most 80 characters.

    Attributes:
        provider: ``"oauth2"`` for the generic classes, else the provider's lower-case name.
        status_code: the HTTP status of the token endpoint's answer, or None when there
            was no answer.
        error: the provider's error code (``"invalid_grant"``), or None.
        description: the provider's own words, or what went wrong.
    """

    def __init__(
        self,
        description: str,
        *,
        provider: str = "oauth2",
        status_code: int | None = None,
        error: str | None = None,
    ) -> None:
        description = _clean(description, _MAX_DESCRIPTION)
        if error is not None:
            error = _clean(error, _MAX_ERROR) or None
        self.provider = provider
        self.status_code = status_code
        self.error = error
        self.description = description
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [self.provider]
        if self.status_code is not None:
            parts.append(f"HTTP {self.status_code}")
        if self.error and self.error != self.description:  # {"error": "x"} says x once
            parts.append(self.error)
        return f"{': '.join(parts)}: {self.description}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, "
            f"status_code={self.status_code!r}, error={self.error!r}, "
            f"description={self.description!r})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments do not survive the default pickling; processes
        # (and tests) that ship errors across a pipe need this.
        return (
            _rebuild,
            (type(self), self.description, self.provider, self.status_code, self.error),
        )

    def clone(self) -> AuthError:
        """Return a fresh exception with the same content and no traceback.

        Several threads may re-raise one remembered failure at the same moment;
        each gets its own instance so that tracebacks never interleave.

        Returns:
            An exception of the same class and content, with the same ``__cause__``.
        """
        fresh = _rebuild(type(self), self.description, self.provider, self.status_code, self.error)
        fresh.__cause__ = self.__cause__
        return fresh


def _rebuild(
    cls: type[AuthError],
    description: str,
    provider: str,
    status_code: int | None,
    error: str | None,
) -> AuthError:
    return cls(description, provider=provider, status_code=status_code, error=error)


class CredentialsRejectedError(AuthError):
    """The token endpoint refused the credentials (HTTP 400, 401, 403 or 422)."""


class LoginRequiredError(AuthError):
    """A person must log in (there is no login, or its refresh token was refused) and
    nobody can be asked here: no terminal, no ``on_authorize``/``on_user_code``,
    ``interactive=False``, or a renewal in the background, which never asks anyone.

    The message says how to log in: ``auth.login()``, or the ``authplug login`` command
    with the same issuer, client and cache.
    """


class TokenEndpointError(AuthError):
    """The token endpoint gave no usable answer: unreachable, TLS, timeout, 404, 5xx, 429,
    or a protocol failure (a DPoP nonce asked for again after the retry with it)."""


class TokenResponseError(AuthError):
    """The token endpoint answered 2xx with something that is not a usable token."""


class ConfigurationError(ValueError):
    """An argument is wrong; the message says which one and what to do."""


class DiscoveryError(TokenEndpointError):
    """The issuer's metadata (``issuer=``) could not be read, or has no usable
    ``token_endpoint``."""


class IssuerMismatchError(DiscoveryError, ConfigurationError):
    """The metadata document names another issuer than the one given (RFC 8414 §3.3).

    Nothing was sent to its endpoints. Both an :class:`AuthError` (it ends the token call)
    and a :class:`ConfigurationError` (``issuer=`` is what to fix).
    """
