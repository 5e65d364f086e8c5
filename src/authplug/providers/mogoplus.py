"""Mogoplus: client credentials over mutual TLS, the grant type in the query string.

``POST https://auth.dev.mogoplus.ai/api/v1/oauth2/token?grant_type=client_credentials``
(the only documented host, dev; give another environment's token URL with
``token_url=``). The client presents its certificate (``cert=``, required) on the
token call; the form body carries ``client_id`` and ``client_secret``; ``Accept:
application/json``. No refresh token: renewal is a new client-credentials grant.
Errors are RFC 6749 JSON.
"""

from __future__ import annotations

from typing import Any

from ..auth import BaseAuth, CertOption
from ..errors import ConfigurationError
from ..spec import ProviderSpec, rfc6749_error

__all__ = ["MOGOPLUS", "MogoplusAuth"]

MOGOPLUS = ProviderSpec(
    name="mogoplus",
    grant_type="client_credentials",
    grant_type_in="query",
    headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    parse_error=rfc6749_error,
)


class MogoplusAuth(BaseAuth):
    """Mogoplus API authentication (client credentials over mutual TLS)."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        cert: CertOption,
        token_url: str = "https://auth.dev.mogoplus.ai/api/v1/oauth2/token",
        **options: Any,
    ) -> None:
        if not cert:
            raise ConfigurationError(
                "mogoplus: cert= is required (mutual TLS): give the client certificate "
                "file, or a (certfile, keyfile) pair"
            )
        if client_secret is None or not client_secret:
            raise ConfigurationError("client_secret= must be a non-empty string")
        super().__init__(
            spec=MOGOPLUS,
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            cert=cert,
            **options,
        )
