"""Dakota ("OpenAPI Plant Store", marketplace-as-a-service): a JSON body.

``POST {base_url}/index.php/api/oauth2`` with the JSON body ``{"username", "password",
"grant_type": "password"}``. The answer carries ``access_token``, ``expires_in``,
``refresh_token``, ``refresh_expires_in`` and ``fuse_client_id_seq`` (kept in
``token.extra``). Errors: 400 "Please provide correct username and password" (plain
text or JSON), 404 "Could Not Find Resource".

Refresh is not documented. Decision: ``{"grant_type": "refresh_token",
"refresh_token": …}`` as JSON to the same endpoint while the refresh token is younger
than ``refresh_expires_in``; any refusal falls back to the password grant.
"""

from __future__ import annotations

from typing import Any

from ..auth import BaseAuth
from ..spec import ProviderSpec, message_error
from ._util import join_url

__all__ = ["DAKOTA", "DakotaAuth"]

#: Dakota's token endpoint: a JSON body, plain-text or JSON errors.
DAKOTA = ProviderSpec(
    name="dakota",
    grant_type="password",
    body="json",
    refresh_expires_in_field="refresh_expires_in",
    parse_error=message_error,
)


class DakotaAuth(BaseAuth):
    """Dakota marketplace API authentication (password grant, JSON body).

    The answer's ``fuse_client_id_seq`` is kept in ``token.extra``.

    Args:
        username: the user's name.
        password: the user's password.
        base_url: the marketplace's base URL; the token URL is
            ``{base_url}/index.php/api/oauth2``.
        **options: any option of :class:`~authplug.BaseAuth`.

    Raises:
        ConfigurationError: an argument is wrong or missing.
    """

    def __init__(
        self,
        *,
        username: str,
        password: str,
        base_url: str = "https://marketplace-as-a-service.herokuapp.com",
        **options: Any,
    ) -> None:
        super().__init__(
            spec=DAKOTA,
            token_url=join_url("base_url", base_url, "/index.php/api/oauth2"),
            username=username,
            password=password,
            **options,
        )
