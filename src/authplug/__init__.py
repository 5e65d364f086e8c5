"""OAuth2 for API clients as drop-in plugins for requests, httpx (sync, asyncio and
trio), httpx2, aiohttp and niquests.

``session.auth = SemansysAuth(...)`` on a ``requests.Session``, or ``auth=`` on an
``httpx.Client`` or ``httpx.AsyncClient``: the token is fetched on first use, sent as
a Bearer header, renewed before it expires, and renewed once more (with the request
replayed) when the API still answers 401.

Importing the package is cheap: the provider classes, ``Token`` and the file and Redis
caches are loaded when first named, the token machinery by the first auth object, and
Authlib by the first token call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import exports
from ._version import __version__
from .auth import BaseAuth, OAuth2ClientCredentialsAuth, OAuth2PasswordAuth
from .cache import CacheError, MemoryTokenCache, TokenCache
from .errors import (
    AuthError,
    ConfigurationError,
    CredentialsRejectedError,
    DiscoveryError,
    IssuerMismatchError,
    LoginRequiredError,
    TokenEndpointError,
    TokenResponseError,
)
from .spec import (
    ErrorDetails,
    ProviderSpec,
    description_error,
    message_error,
    problem_details_error,
    rfc6749_error,
)

if TYPE_CHECKING:
    from .cache import FileTokenCache, KeyringTokenCache, RedisTokenCache
    from .exchange import OAuth2JWTBearerAuth, OAuth2TokenExchangeAuth
    from .login import OAuth2AuthorizationCodeAuth, OAuth2DeviceCodeAuth
    from .providers import DakotaAuth, LoginFormAuth, MogoplusAuth, SemansysAuth, TelmaiAuth
    from .token import DeviceCode, Token, TokenState

__all__ = [
    "AuthError",
    "BaseAuth",
    "CacheError",
    "ConfigurationError",
    "CredentialsRejectedError",
    "DakotaAuth",
    "DeviceCode",
    "DiscoveryError",
    "ErrorDetails",
    "FileTokenCache",
    "IssuerMismatchError",
    "KeyringTokenCache",
    "LoginFormAuth",
    "LoginRequiredError",
    "MemoryTokenCache",
    "MogoplusAuth",
    "OAuth2AuthorizationCodeAuth",
    "OAuth2ClientCredentialsAuth",
    "OAuth2DeviceCodeAuth",
    "OAuth2JWTBearerAuth",
    "OAuth2PasswordAuth",
    "OAuth2TokenExchangeAuth",
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

# Imported when first named: the provider classes and the file and Redis caches.
__getattr__, __dir__ = exports(
    __name__,
    globals(),
    {
        "DakotaAuth": ".providers",
        "LoginFormAuth": ".providers",
        "MogoplusAuth": ".providers",
        "SemansysAuth": ".providers",
        "TelmaiAuth": ".providers",
        "FileTokenCache": ".cache",
        "KeyringTokenCache": ".cache",
        "RedisTokenCache": ".cache",
        "Token": ".token",
        "DeviceCode": ".token",
        "OAuth2AuthorizationCodeAuth": ".login",
        "OAuth2DeviceCodeAuth": ".login",
        "OAuth2JWTBearerAuth": ".exchange",
        "OAuth2TokenExchangeAuth": ".exchange",
        "TokenState": ".token",
    },
    __all__,
)
