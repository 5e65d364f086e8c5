"""The options' types (and the one long default), as the auth classes' signatures name them.

``import authplug`` loads this module (the signatures need its names), not
:mod:`authplug._options`, whose checks and :class:`~authplug._options.Options` value wait
for the first auth object.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, get_args

__all__ = [
    "CLIENT_AUTH",
    "JWT_BEARER",
    "AssertionOption",
    "CertOption",
    "ClientAuthMethod",
    "PrivateKeyOption",
    "VerifyOption",
]

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
