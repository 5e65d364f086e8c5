"""Mogoplus: client credentials over mutual TLS, the grant type in the query string.

``POST https://auth.dev.mogoplus.ai/api/v1/oauth2/token?grant_type=client_credentials``
(the only documented host, dev; give another environment's token URL with
``token_url=``). The client presents its certificate (``cert=``, required) on the
token call; the form body carries ``client_id`` and ``client_secret`` (or ``client_id``
alone with ``client_auth="tls_client_auth"``, RFC 8705); ``Accept:
application/json``. No refresh token: renewal is a new client-credentials grant.
Errors are RFC 6749 JSON.
"""

from __future__ import annotations

from typing import Any

from ..auth import BaseAuth, CertOption
from ..errors import ConfigurationError
from ..spec import ProviderSpec, rfc6749_error
from ._util import authenticates_otherwise, default_url

MOGOPLUS_TOKEN_URL = "https://auth.dev.mogoplus.ai/api/v1/oauth2/token"

__all__ = ["MOGOPLUS", "MogoplusAuth"]

#: Mogoplus's token endpoint: the grant type in the query string, RFC 6749 errors.
MOGOPLUS = ProviderSpec(
    name="mogoplus",
    grant_type="client_credentials",
    grant_type_in="query",
    headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    parse_error=rfc6749_error,
)


class MogoplusAuth(BaseAuth):
    """Mogoplus API authentication (client credentials over mutual TLS).

    Args:
        client_id: the client's identifier (from the Mogoplus console).
        cert: the client certificate, required: a PEM file holding the certificate
            and key, or a ``(certfile, keyfile)`` pair; read at construction.
        client_secret: the client's secret; required unless
            ``client_auth="tls_client_auth"`` (the certificate alone), ``private_key=``
            or ``client_assertion=`` says how else the client authenticates.
        token_url: the token endpoint (default: the dev host,
            ``https://auth.dev.mogoplus.ai/api/v1/oauth2/token``); or give ``issuer=``.
        **options: any option of :class:`~authplug.BaseAuth`.

    Raises:
        ConfigurationError: an argument is wrong or missing (no ``cert=``, or a file
            that is not a certificate and key).
    """

    def __init__(
        self,
        *,
        client_id: str,
        cert: CertOption,
        client_secret: str | None = None,
        token_url: str | None = None,
        **options: Any,
    ) -> None:
        if not cert:
            raise ConfigurationError(
                "mogoplus: cert= is required (mutual TLS): give the client certificate "
                "file, or a (certfile, keyfile) pair"
            )
        if client_secret is None and not authenticates_otherwise(options):
            raise ConfigurationError(
                "client_secret= must be a non-empty string (or authenticate by the "
                'certificate alone: client_auth="tls_client_auth")'
            )
        super().__init__(
            spec=MOGOPLUS,
            token_url=default_url(token_url, options, MOGOPLUS_TOKEN_URL),
            client_id=client_id,
            client_secret=client_secret,
            cert=cert,
            **options,
        )
