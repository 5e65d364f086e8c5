"""A FastAPI-style ``/auth/login`` form (no vendor named).

``POST {base_url}/auth/login`` with a form body ``grant_type=password``, ``username``,
``password``, ``scope`` (sent, empty when none is given) and, when configured,
``client_id`` and ``client_secret``. The answer is ``{"access_token", "refresh_token",
"token_type", "expires_in"}``; errors are RFC 9457 problem details.

Refresh is not documented. Decision: by default the same endpoint with
``grant_type=refresh_token`` and ``refresh_token``; ``refresh_path=`` points renewal at
another path. Any refusal falls back to the password grant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..auth import BaseAuth
from ..errors import ConfigurationError
from ..spec import ProviderSpec, problem_details_error
from ._util import join_url

__all__ = ["LOGINFORM", "LoginFormAuth"]


def _empty_scope(grant_type: str) -> Mapping[str, str]:
    # The documented form always carries a scope field, empty when there is none.
    return {"scope": ""} if grant_type == "password" else {}


#: A ``/auth/login`` form: always a ``scope`` field, RFC 9457 problem details errors.
LOGINFORM = ProviderSpec(
    name="loginform",
    grant_type="password",
    headers={"Content-Type": "application/x-www-form-urlencoded"},
    parse_error=problem_details_error,
    extra_params=_empty_scope,
)


def _path(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigurationError(f"{name}= must be a path starting with '/'")
    return value


class LoginFormAuth(BaseAuth):
    """Authentication against a ``/auth/login`` form endpoint (password grant).

    Args:
        base_url: the API's base URL; the token URL is ``{base_url}{login_path}``.
        username: the user's name.
        password: the user's password.
        client_id: sent when given.
        client_secret: sent when given.
        scope: the scope to ask for (a space-separated string or a list of strings);
            the form's ``scope`` field is sent empty without it.
        login_path: the path of the login form under ``base_url``.
        refresh_path: where refresh grants go instead, under ``base_url`` (default:
            ``login_path``).
        **options: any option of :class:`~authplug.BaseAuth`.

    Raises:
        ConfigurationError: an argument is wrong or missing (a path that does not
            start with ``/``).
    """

    def __init__(
        self,
        *,
        base_url: str,
        username: str,
        password: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str | Iterable[str] | None = None,
        login_path: str = "/auth/login",
        refresh_path: str | None = None,
        **options: Any,
    ) -> None:
        login_path = _path("login_path", login_path)
        super().__init__(
            spec=LOGINFORM,
            token_url=join_url("base_url", base_url, login_path),
            refresh_url=(
                join_url("base_url", base_url, _path("refresh_path", refresh_path))
                if refresh_path is not None
                else None
            ),
            client_id=client_id,
            client_secret=client_secret,
            username=username,
            password=password,
            scope=scope,
            **options,
        )
