"""Telmai: camelCase parameters, ``expires`` instead of ``expires_in``.

``POST {auth_endpoint}/auth/token`` with ``clientId``, ``grantType`` (``password`` or
``refresh_token``), ``username``, ``password``, ``refreshToken``, ``tenant`` and
``transactionId``, ``Content-Type: application/x-www-form-urlencoded``.

Telmai's curl example sends every parameter in the query string with an empty body.
A password in a URL ends up in proxy and server logs, so authplug sends them as a form
body by default; ``params_in="query"`` sends them exactly as the curl does.

Only the password and refresh grants are in scope, so neither ``code`` nor the redirect
parameter is ever sent (the documentation's table calls it ``redirectUrl``, its curl
``redirectUri``). Errors read ``{"description": …}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Literal

from ..auth import BaseAuth
from ..errors import ConfigurationError
from ..spec import ProviderSpec, description_error
from ._util import join_url

__all__ = ["TELMAI", "TelmaiAuth"]

#: Telmai's token endpoint: camelCase parameters, ``expires``, ``{"description"}`` errors.
TELMAI = ProviderSpec(
    name="telmai",
    grant_type="password",
    param_names={
        "client_id": "clientId",
        "grant_type": "grantType",
        "refresh_token": "refreshToken",
    },
    headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "*/*"},
    expires_in_field="expires",
    parse_error=description_error,
)


class _TelmaiParams:
    """Adds ``tenant`` and, when asked, a fresh ``transactionId`` to each token call."""

    __slots__ = ("tenant", "transaction_ids")

    def __init__(self, tenant: str | None, transaction_ids: bool) -> None:
        self.tenant = tenant
        self.transaction_ids = transaction_ids

    def __call__(self, grant_type: str) -> Mapping[str, str]:
        params: dict[str, str] = {}
        if self.tenant is not None:
            params["tenant"] = self.tenant
        if self.transaction_ids:
            params["transactionId"] = str(uuid.uuid4())
        return params


class TelmaiAuth(BaseAuth):
    """Telmai API authentication (password grant, camelCase parameters).

    Args:
        auth_endpoint: Telmai's authentication base URL; the token URL is
            ``{auth_endpoint}/auth/token``.
        client_id: the client's identifier (sent as ``clientId``).
        username: the user's name.
        password: the user's password.
        tenant: the tenant, sent with each token call when given.
        params_in: ``"body"`` (a form body, the default) or ``"query"`` (every
            parameter in the URL, as Telmai's curl example does; the password then
            shows in proxy and server logs).
        transaction_ids: send a fresh ``transactionId`` with each token call.
        **options: any option of :class:`~authplug.BaseAuth`.

    Raises:
        ConfigurationError: an argument is wrong or missing.

    Attributes:
        tenant: the tenant given, or None.
    """

    def __init__(
        self,
        *,
        auth_endpoint: str,
        client_id: str,
        username: str,
        password: str,
        tenant: str | None = None,
        params_in: Literal["body", "query"] = "body",
        transaction_ids: bool = False,
        **options: Any,
    ) -> None:
        if params_in not in ("body", "query"):
            raise ConfigurationError('params_in= must be "body" or "query"')
        if tenant is not None and (not isinstance(tenant, str) or not tenant):
            raise ConfigurationError("tenant= must be a non-empty string")
        spec = ProviderSpec(
            name=TELMAI.name,
            grant_type=TELMAI.grant_type,
            params_in=params_in,
            param_names=TELMAI.param_names,
            headers=TELMAI.headers,
            expires_in_field=TELMAI.expires_in_field,
            parse_error=TELMAI.parse_error,
            extra_params=_TelmaiParams(tenant, bool(transaction_ids)),
        )
        super().__init__(
            spec=spec,
            token_url=join_url("auth_endpoint", auth_endpoint, "/auth/token"),
            client_id=client_id,
            username=username,
            password=password,
            **options,
        )
        self.tenant = tenant
