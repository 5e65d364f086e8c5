"""Semansys: an OpenID Connect server, standard password grant with client secret.

``POST https://oidc-pre.semansys.com/connect/token`` (pre-production; give the
production token URL with ``token_url=``), form body ``grant_type=password``,
``client_id``, ``client_secret``, ``username`` (the e-mail address), ``password`` and
an optional ``scope``. Refresh is the standard ``grant_type=refresh_token`` with the
client credentials. Errors are RFC 6749 JSON (400, 401 invalid client, 403 user
authentication failed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..auth import BaseAuth
from ..errors import ConfigurationError
from ..spec import ProviderSpec, rfc6749_error
from ._util import authenticates_otherwise, default_url

SEMANSYS_TOKEN_URL = "https://oidc-pre.semansys.com/connect/token"

__all__ = ["SEMANSYS", "SemansysAuth"]

#: Semansys's token endpoint: a form body, RFC 6749 errors.
SEMANSYS = ProviderSpec(
    name="semansys",
    grant_type="password",
    headers={"Content-Type": "application/x-www-form-urlencoded"},
    parse_error=rfc6749_error,
)


class SemansysAuth(BaseAuth):
    """Semansys API authentication (password grant).

    Args:
        client_id: the client's identifier (from the Semansys support desk).
        username: the user's e-mail address.
        password: the user's password.
        client_secret: the client's secret; required unless ``private_key=``,
            ``client_assertion=`` or ``client_auth=`` says how else the client
            authenticates.
        scope: the scope to ask for: a space-separated string or a list of strings.
        token_url: the token endpoint (default: the pre-production server,
            ``https://oidc-pre.semansys.com/connect/token``); or give ``issuer=``.
        **options: any option of :class:`~authplug.BaseAuth`.

    Raises:
        ConfigurationError: an argument is wrong or missing.
    """

    def __init__(
        self,
        *,
        client_id: str,
        username: str,
        password: str,
        client_secret: str | None = None,
        scope: str | Iterable[str] | None = None,
        token_url: str | None = None,
        **options: Any,
    ) -> None:
        if client_secret is None and not authenticates_otherwise(options):
            raise ConfigurationError(
                "semansys: client_secret= is required (or a key: private_key=, client_assertion=)"
            )
        super().__init__(
            spec=SEMANSYS,
            token_url=default_url(token_url, options, SEMANSYS_TOKEN_URL),
            client_id=client_id,
            client_secret=client_secret,
            username=username,
            password=password,
            scope=scope,
            **options,
        )
