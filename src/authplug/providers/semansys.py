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
from ..spec import ProviderSpec, rfc6749_error

__all__ = ["SEMANSYS", "SemansysAuth"]

SEMANSYS = ProviderSpec(
    name="semansys",
    grant_type="password",
    headers={"Content-Type": "application/x-www-form-urlencoded"},
    parse_error=rfc6749_error,
)


class SemansysAuth(BaseAuth):
    """Semansys API authentication (password grant)."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        username: str,
        password: str,
        scope: str | Iterable[str] | None = None,
        token_url: str = "https://oidc-pre.semansys.com/connect/token",
        **options: Any,
    ) -> None:
        super().__init__(
            spec=SEMANSYS,
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            username=username,
            password=password,
            scope=scope,
            **options,
        )
