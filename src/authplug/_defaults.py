"""The options' defaults and types, as the auth classes' signatures show them.

``import authplug`` loads this module (the signatures need its values), and not
:mod:`authplug._options`, whose checks and :class:`~authplug._options.Options` value wait
for the first auth object. Every default is defined here once; ``close_timeout=``'s is
``CLOSE_TIMEOUT`` in :mod:`authplug._clock`, where the closing code reads it.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, get_args

__all__ = [
    "CLIENT_AUTH",
    "JWT_BEARER",
    "LEEWAY",
    "REFRESH_STATUS_CODES",
    "RETRIES",
    "TIMEOUT",
    "AssertionOption",
    "CertOption",
    "ClientAuthMethod",
    "PrivateKeyOption",
    "VerifyOption",
]

#: Seconds before its expiry a token is renewed by (``leeway=``).
LEEWAY = 60
#: Seconds allowed to each token call (``timeout=``).
TIMEOUT = 10.0
#: How often a token call that met a network error, a 429 or a 5xx is tried again.
RETRIES = 3
#: API statuses that renew the token and replay the request (``refresh_status_codes=``).
REFRESH_STATUS_CODES: tuple[int, ...] = (401,)

#: The default ``client_assertion_type=`` (RFC 7523 §2.2).
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

#: How a client authenticates at the token endpoint (``client_auth=``).
ClientAuthMethod = Literal[
    "client_secret_post",
    "client_secret_basic",
    "client_secret_jwt",
    "private_key_jwt",
    "tls_client_auth",
    "none",
]
#: ``private_key=``, ``dpop_key=``: PEM text, a PEM or JWK file's path, or a JWK dict.
PrivateKeyOption = str | bytes | os.PathLike[str] | Mapping[str, Any]
#: ``client_assertion=``: a callable (sync, or async) returning one, or a file's path.
AssertionOption = Callable[[], str] | Callable[[], Awaitable[str]] | str | os.PathLike[str]
#: A client certificate: a PEM file holding the certificate and key, or a
#: ``(certfile, keyfile)`` pair.
CertOption = str | tuple[str, str] | None
#: TLS verification: True, False, a CA file or directory, or an ``ssl.SSLContext``.
VerifyOption = bool | str | ssl.SSLContext

CLIENT_AUTH: tuple[ClientAuthMethod, ...] = get_args(ClientAuthMethod)
