"""People log in: the authorization code flow with PKCE, and the device grant.

:class:`OAuth2AuthorizationCodeAuth` opens the person's browser (or hands the URL to
``on_authorize``) and catches the redirect on a loopback port; :class:`OAuth2DeviceCodeAuth`
shows a user code to type on another device. Both are auth objects like the others: the
first request logs the person in (where one can be asked: see ``interactive``), the
tokens go to the object's cache, and later runs, processes and fleets sharing the cache
use them and renew them with the refresh token without asking anyone. A login belongs to
(issuer or token endpoint, client id, scope), whichever flow made it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from .auth import BaseAuth
from .errors import ConfigurationError
from .spec import ProviderSpec

if TYPE_CHECKING:
    from ._call.login import LoginSettings
    from .token import DeviceCode, Token

__all__ = ["OAuth2AuthorizationCodeAuth", "OAuth2DeviceCodeAuth"]

_CODE_SPEC = ProviderSpec(name="oauth2", grant_type="authorization_code")
_DEVICE_SPEC = ProviderSpec(
    name="oauth2", grant_type="urn:ietf:params:oauth:grant-type:device_code"
)


class _PersonAuth(BaseAuth):
    """What both login classes share: the settings, ``login()`` and ``logout()``."""

    _settings: LoginSettings

    def __init__(
        self,
        *,
        flow: Literal["code", "device"],
        spec: ProviderSpec,
        client_id: str,
        scope: str | Iterable[str] | None,
        interactive: bool | None,
        login_timeout: float,
        endpoint: tuple[str, str | None],
        callback: tuple[str, Callable[..., object] | None],
        redirect_uri: str | None = None,
        **options: Any,
    ) -> None:
        from ._call.login import LoginSettings
        from ._options import check_url, text

        endpoint_name, url = endpoint
        callback_name, function = callback
        if options.get("issuer") is None and url is None:
            raise ConfigurationError(
                f"give issuer= (its metadata names the endpoints), or {endpoint_name}= and "
                "token_url="
            )
        text("client_id", client_id, required=True)
        if interactive is not None and not isinstance(interactive, bool):
            raise ConfigurationError("interactive= must be True, False or None")
        if (
            isinstance(login_timeout, bool)
            or not isinstance(login_timeout, (int, float))
            or not math.isfinite(login_timeout)
            or login_timeout <= 0
        ):
            raise ConfigurationError("login_timeout= must be a positive number of seconds")
        if function is not None and not callable(function):
            raise ConfigurationError(f"{callback_name}= must be callable")
        if url is not None:
            check_url(endpoint_name, url)
        if redirect_uri is not None:
            from ._call.loopback import loopback_parts

            loopback_parts(redirect_uri)
        if options.get("issuer") is None and options.get("token_url") is None:
            raise ConfigurationError(
                "give issuer= (the endpoints are then read from the server's metadata), or "
                "token_url= with the login endpoint"
            )
        self._settings = LoginSettings(
            flow=flow,
            authorization_url=url if flow == "code" else None,
            device_authorization_url=url if flow == "device" else None,
            redirect_uri=redirect_uri,
            on_authorize=function if flow == "code" else None,
            on_user_code=function if flow == "device" else None,
            interactive=interactive,
            login_timeout=float(login_timeout),
            hint=_hint(client_id, scope, options),
        )
        super().__init__(spec=spec, client_id=client_id, scope=scope, **options)

    def _own_options(self) -> dict[str, Any]:
        return {"login": self._settings}

    def login(self) -> Token:
        """Log the person in now, whatever is cached (to switch accounts, or before the
        first request); the new tokens replace the cached ones.

        Asks the person unless ``interactive=False``.

        Returns:
            The new token.

        Raises:
            LoginRequiredError: ``interactive=False``.
            AuthError: the person or the server refused, or nobody answered within
                ``login_timeout``.
        """
        return self._manager.login()

    async def alogin(self) -> Token:
        """:meth:`login` without blocking the event loop.

        Returns:
            The new token.

        Raises:
            LoginRequiredError: as :meth:`login`.
            AuthError: as :meth:`login`.
        """
        return await self._manager.alogin()

    def logout(self) -> bool:
        """Revoke the refresh token where the server can (RFC 7009, at ``revocation_url=``
        or the issuer's ``revocation_endpoint``), and forget the login here and in the
        cache, whatever the server said (a revocation that failed is logged).

        Returns:
            True when there was a login to forget.
        """
        return self._manager.logout()

    async def alogout(self) -> bool:
        """:meth:`logout` without blocking the event loop.

        Returns:
            True when there was a login to forget.
        """
        return await self._manager.alogout()


def _hint(client_id: str, scope: str | Iterable[str] | None, options: dict[str, Any]) -> str:
    """How to log in, for LoginRequiredError: ``auth.login()``, or the CLI with the same
    server, client, scope and (file) cache."""
    issuer = options.get("issuer")
    if not isinstance(issuer, str):
        return "call auth.login() where a person can answer"
    scopes = scope if isinstance(scope, str) else " ".join(scope) if scope else ""
    command = f"authplug login --issuer {issuer} --client-id {client_id}"
    if scopes:
        command += f' --scope "{scopes}"'
    path = getattr(options.get("cache"), "path", None)
    if path is not None:
        command += f" --cache {path}"
    return f"call auth.login() where a person can answer, or run: {command}"


class OAuth2AuthorizationCodeAuth(_PersonAuth):
    """A person logs in through a browser: the authorization code flow with PKCE (S256),
    the redirect caught on a loopback port (RFC 6749 §4.1, RFC 7636, RFC 8252).

    Args:
        client_id: the client's identifier (a public client needs no secret).
        issuer: the authorization server: the authorization and token endpoints are read
            from its metadata; or give ``authorization_url=`` and ``token_url=``.
        authorization_url: the authorization endpoint, without discovery.
        token_url: the token endpoint, without discovery.
        scope: the scope to ask for (``offline_access`` for a refresh token, at most
            servers): a space-separated string or a list of strings.
        client_secret: for a confidential client.
        redirect_uri: a fixed, registered loopback redirect URI
            (``http://127.0.0.1:8765/callback``); default ``http://127.0.0.1:{a free
            port}/callback``, which servers accept for native clients (RFC 8252 §7.3).
        on_authorize: called with the authorization URL instead of opening a browser (an
            SDK that shows or opens it itself; tests); it may return at once.
        interactive: True: always ask a person when a login is needed; False: never
            (:class:`~authplug.LoginRequiredError` instead); None (default): ask when
            ``on_authorize`` is given or the process has a terminal.
        login_timeout: seconds to wait for the person (default 300).
        **options: any option of :class:`~authplug.BaseAuth` (``cache=`` above all, so
            that a login outlives the process).

    Raises:
        ConfigurationError: an argument is wrong or missing.
    """

    def __init__(
        self,
        *,
        client_id: str,
        issuer: str | None = None,
        authorization_url: str | None = None,
        token_url: str | None = None,
        scope: str | Iterable[str] | None = None,
        client_secret: str | None = None,
        redirect_uri: str | None = None,
        on_authorize: Callable[[str], object] | None = None,
        interactive: bool | None = None,
        login_timeout: float = 300.0,
        **options: Any,
    ) -> None:
        super().__init__(
            flow="code",
            spec=_CODE_SPEC,
            client_id=client_id,
            scope=scope,
            interactive=interactive,
            login_timeout=login_timeout,
            endpoint=("authorization_url", authorization_url),
            callback=("on_authorize", on_authorize),
            redirect_uri=redirect_uri,
            issuer=issuer,
            token_url=token_url,
            client_secret=client_secret,
            **options,
        )


class OAuth2DeviceCodeAuth(_PersonAuth):
    """A person logs in on another device: the device authorization grant (RFC 8628), for
    CLIs on machines without a browser (SSH, containers) and devices without a keyboard.

    Args:
        client_id: the client's identifier (a public client needs no secret).
        issuer: the authorization server: the device authorization and token endpoints
            are read from its metadata; or give ``device_authorization_url=`` and
            ``token_url=``.
        device_authorization_url: the device authorization endpoint, without discovery.
        token_url: the token endpoint, without discovery.
        scope: the scope to ask for: a space-separated string or a list of strings.
        client_secret: for a confidential client.
        on_user_code: called with the :class:`~authplug.DeviceCode` to show (default:
            the instructions go to stderr); it may return at once, the polling goes on.
        interactive: True: always ask; False: never; None (default): ask when
            ``on_user_code`` is given or the process has a terminal.
        login_timeout: seconds to wait for the person at most (default 300; the user
            code's own ``expires_in`` may end the wait sooner).
        **options: any option of :class:`~authplug.BaseAuth`.

    Raises:
        ConfigurationError: an argument is wrong or missing.
    """

    def __init__(
        self,
        *,
        client_id: str,
        issuer: str | None = None,
        device_authorization_url: str | None = None,
        token_url: str | None = None,
        scope: str | Iterable[str] | None = None,
        client_secret: str | None = None,
        on_user_code: Callable[[DeviceCode], object] | None = None,
        interactive: bool | None = None,
        login_timeout: float = 300.0,
        **options: Any,
    ) -> None:
        super().__init__(
            flow="device",
            spec=_DEVICE_SPEC,
            client_id=client_id,
            scope=scope,
            interactive=interactive,
            login_timeout=login_timeout,
            endpoint=("device_authorization_url", device_authorization_url),
            callback=("on_user_code", on_user_code),
            issuer=issuer,
            token_url=token_url,
            client_secret=client_secret,
            **options,
        )
