"""The login the browser tests drive: authplug's OAuth2AuthorizationCodeAuth, its loopback page.

:func:`log_in` is the one place that says how a person is logged in: it takes the
``on_authorize`` callable (a :class:`~tests.browser.chromium.ChromiumPerson`'s ``approve``)
and returns what the protected API says about the token the login got. The tests and
``screenshot.py`` call only :func:`log_in`, :data:`LOGIN_ERROR` and :data:`PROVIDER_CONFIG`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from authplug import AuthError, OAuth2AuthorizationCodeAuth

from ..servers import PASSWORD, USERNAME

#: A public native client (RFC 8252): no secret, PKCE, a loopback redirect on any port.
CLIENT_ID = "browser-cli"
SCOPE = "openid offline_access"
PUBLIC_CLIENT = {
    "client_id": CLIENT_ID,
    "application_type": "native",
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    # oidc-provider compares a native client's loopback redirect without its port
    # (RFC 8252 §7.3), so the listener's ephemeral port matches this one registration.
    "redirect_uris": ["http://127.0.0.1/callback"],
}
#: oidc-provider's own login and consent pages (devInteractions), and the public client:
#: given to ``OidcProviderServer(extra_config=...)``. ``features`` is what today's server.mjs
#: reads; ``logins`` (the person's account and password, checked before devInteractions
#: signs anyone in) is what issue 22's server.mjs reads. Each ignores the other's key.
PROVIDER_CONFIG: dict[str, Any] = {
    "features": {"devInteractions": {"enabled": True}},
    "logins": {"accounts": {USERNAME: PASSWORD}},
    "clients": [PUBLIC_CLIENT],
}
LOGIN_TIMEOUT = 60.0


#: What a login the person cancelled raises.
LOGIN_ERROR: type[Exception] = AuthError


def log_in(server: Any, on_authorize: Callable[[str], object]) -> dict[str, Any]:
    """Log a person in on ``server`` (an OidcProviderServer started with
    :data:`PROVIDER_CONFIG`) through ``on_authorize``; return the API's answer (``sub``,
    ``client_id``, ``scope``) for the access token the login got.

    ``on_authorize`` blocks until the landing page is shown: authplug's listener answers
    from a thread of its own meanwhile.
    """
    with OAuth2AuthorizationCodeAuth(
        issuer=server.issuer,
        client_id=CLIENT_ID,
        scope=SCOPE,
        on_authorize=on_authorize,
        login_timeout=LOGIN_TIMEOUT,
    ) as auth:
        auth.login()
        answer = requests.get(server.api_url, auth=auth, timeout=10)
        answer.raise_for_status()
        return dict(answer.json())
