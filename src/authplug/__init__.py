"""OAuth2 for API clients as drop-in plugins for requests and httpx.

``session.auth = SemansysAuth(...)`` on a ``requests.Session``, or ``auth=`` on an
``httpx.Client`` or ``httpx.AsyncClient``: the token is fetched on first use, sent as
a Bearer header, renewed before it expires, and renewed once more (with the request
replayed) when the API still answers 401.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .auth import BaseAuth, OAuth2ClientCredentialsAuth, OAuth2PasswordAuth
from .cache import CacheError, FileTokenCache, MemoryTokenCache, RedisTokenCache, TokenCache
from .errors import (
    AuthError,
    ConfigurationError,
    CredentialsRejectedError,
    DiscoveryError,
    IssuerMismatchError,
    TokenEndpointError,
    TokenResponseError,
)
from .providers import DakotaAuth, LoginFormAuth, MogoplusAuth, SemansysAuth, TelmaiAuth
from .spec import (
    ErrorDetails,
    ProviderSpec,
    description_error,
    message_error,
    problem_details_error,
    rfc6749_error,
)
from .token import Token, TokenState

try:
    __version__ = version("authplug")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "AuthError",
    "BaseAuth",
    "CacheError",
    "ConfigurationError",
    "CredentialsRejectedError",
    "DakotaAuth",
    "DiscoveryError",
    "ErrorDetails",
    "FileTokenCache",
    "IssuerMismatchError",
    "LoginFormAuth",
    "MemoryTokenCache",
    "MogoplusAuth",
    "OAuth2ClientCredentialsAuth",
    "OAuth2PasswordAuth",
    "ProviderSpec",
    "RedisTokenCache",
    "SemansysAuth",
    "TelmaiAuth",
    "Token",
    "TokenCache",
    "TokenEndpointError",
    "TokenResponseError",
    "TokenState",
    "__version__",
    "description_error",
    "message_error",
    "problem_details_error",
    "rfc6749_error",
]
