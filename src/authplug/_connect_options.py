"""The checks of the options about how token calls connect: ``verify``, ``cert``, ``proxy``.

Each is read the way the token calls will read it, once, when the object is built: a
value that would fail every token call (a CA file that is not there, a proxy port out
of range) is a :class:`~authplug.errors.ConfigurationError` naming the option, not a
``FileNotFoundError`` or a ``ValueError`` on each request. Messages never show a proxy
URL's credentials.
"""

from __future__ import annotations

import logging
import os
import ssl
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from ._call.transport import check_cert_files, ssl_context
from .errors import ConfigurationError

if TYPE_CHECKING:
    from ._option_types import CertOption, VerifyOption
    from ._options import Options

__all__ = ["cert_option", "check_tls", "proxy_option", "shown_url", "verify_option"]

log = logging.getLogger("authplug")

_VERIFY_TAKES = (
    "True, False, the path of a PEM CA bundle or of a directory of CA certificates, or "
    "an ssl.SSLContext"
)
_PROXY_EXAMPLE = "such as 'http://proxy.example:3128'"


def shown_url(url: str) -> str:
    """``url`` fit for a message: what stands before its last ``@`` (the userinfo, where a
    proxy's password is) replaced by an ellipsis.

    Cut at the last ``@`` rather than parsed: a URL that does not parse (the very one a
    message is about) may still hold a password, with a ``/`` or a ``#`` in it.
    """
    if "@" not in url:
        return url
    scheme, sep, _ = url.partition("://")
    prefix = f"{scheme}://" if sep and "@" not in scheme else ""
    return f"{prefix}…@{url.rpartition('@')[2]}"


def proxy_option(value: object) -> str | None:
    """An http(s) proxy URL with a host, and a port token calls can use."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"proxy= takes a proxy URL {_PROXY_EXAMPLE}")
    shown = shown_url(value)
    try:
        url: httpx.URL | None = httpx.URL(value)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"proxy={shown!r}: give an http:// or https:// proxy URL with a host and a port "
            f"from 1 to 65535, {_PROXY_EXAMPLE}"
        )
    try:
        # As token calls will read it (authplug._call.engine.proxy_from_url), where a port
        # out of range is a ValueError.
        port = urlsplit(value).port
    except ValueError:
        port = 0
    if port == 0:
        raise ConfigurationError(
            f"proxy={shown!r}: the port must be a number from 1 to 65535, {_PROXY_EXAMPLE}"
        )
    return value


def cert_option(value: object) -> CertOption:
    """A readable PEM file, or a ``(certfile, keyfile)`` pair of them; paths as str."""
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    elif isinstance(value, (tuple, list)):
        value = tuple(os.fspath(part) if isinstance(part, os.PathLike) else part for part in value)
    cert: CertOption
    if isinstance(value, str):
        cert = value
    elif isinstance(value, tuple) and len(value) == 2 and all(isinstance(p, str) for p in value):
        cert = (str(value[0]), str(value[1]))
    else:
        raise ConfigurationError("cert= takes a PEM file name or a (certfile, keyfile) pair")
    check_cert_files(cert)
    return cert


def verify_option(value: object, cert: CertOption) -> VerifyOption:
    """True, False, an SSLContext, or a CA file or directory that loads.

    A path is loaded now into the shared SSL context the token calls will use (built
    once per setting, so the first token call finds it ready): a file that is missing,
    unreadable or holds no certificate fails here, naming the option.
    """
    if isinstance(value, (bool, ssl.SSLContext)):
        return value
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"verify= takes {_VERIFY_TAKES}")
    try:
        ssl_context(value, cert)
    except ssl.SSLError as exc:
        raise ConfigurationError(
            f"verify={value!r} holds no usable CA certificate ({exc.reason or exc}); "
            "give a PEM CA bundle or a directory of CA certificates"
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"verify=: cannot read {value!r} ({exc.strerror or exc}); give a readable PEM "
            "CA bundle or a directory of CA certificates"
        ) from None
    return value


def check_tls(options: Options) -> None:
    """What the TLS options need once all are checked: the client certificate loaded now
    into the TLS settings token calls will use (a file that is not a certificate and key
    is a mistake better found here than on the first request); ``verify=False`` said
    aloud."""
    if options.cert is not None:
        ssl_context(options.verify, options.cert)
    if options.verify is False:
        log.warning(
            "%s: verify=False: token calls do not check the server's certificate, so "
            "credentials may go to anyone on the way",
            options.spec.name,
        )
