"""People log in on the real servers: the servers, the logins and the headless people, proven
with Authlib's own client and raw HTTP (no authplug login class).

Each login is the whole authorization-code flow with PKCE, as a CLI does it: Authlib's
``OAuth2Session`` (requests) builds the authorization URL, the headless person
(:mod:`tests.servers.people`) approves or denies it on the server's own pages, a loopback
receiver on an ephemeral port catches the redirect, and Authlib exchanges the code. The
device grant on oidc-provider is driven by raw HTTP.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from authplug.testing import LoopbackServer, Request, Response
from tests.servers import PASSWORD, USERNAME
from tests.servers.dot_server import LOGIN_CLIENT_ID as DOT_CLIENT_ID
from tests.servers.oidc_provider import (
    DEVICE_GRANT,
    LOGIN_CLIENT_ID,
    NO_REFRESH_CLIENT_ID,
    OidcProviderServer,
)
from tests.servers.people import (
    DotPerson,
    LoginRefused,
    OidcProviderPerson,
    PersonError,
    UserCodeRefused,
)

LANDING = "<!DOCTYPE html><html><head><title>authplug: logged in</title></head></html>"


class Receiver:
    """A loopback listener for the redirect: ``/callback`` answers a landing page and keeps
    the query, any other path a 404."""

    def __init__(self) -> None:
        self.callbacks: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.server = LoopbackServer(self._app)
        self.redirect_uri = f"{self.server.url}/callback"

    def _app(self, request: Request) -> Response:
        if request.path != "/callback":
            return Response.text(404, "not found")
        with self._lock:
            self.callbacks.append(request.args())
        return Response.text(200, LANDING, "text/html")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    with made.server:
        yield made


@pytest.fixture
def oidc(running_servers: dict[str, Any]) -> OidcProviderServer:
    """The session's oidc-provider (people log in by default), its counts at zero."""
    server: OidcProviderServer = running_servers["oidc-provider"]
    server.reset_counts()
    return server


@pytest.fixture
def dot(running_servers: dict[str, Any]) -> Any:
    """The session's django-oauth-toolkit, its counts at zero."""
    server = running_servers["django-oauth-toolkit"]
    server.reset_counts()
    return server


@dataclass
class Login:
    """One authorization request made by Authlib: its URL, its state, its PKCE verifier."""

    session: OAuth2Session
    url: str
    state: str
    verifier: str


def start_login(
    authorization_url: str, client_id: str, receiver: Receiver, scope: str, **extra: str
) -> Login:
    """Authlib's OAuth2Session for a public client, and its authorization URL (S256 PKCE)."""
    session = OAuth2Session(
        client_id,
        scope=scope,
        redirect_uri=receiver.redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    session.trust_env = False
    verifier = secrets.token_urlsafe(48)
    url, state = session.create_authorization_url(
        authorization_url, code_verifier=verifier, **extra
    )
    return Login(session, url, state, verifier)


def finish_login(login: Login, token_url: str, landed_url: str) -> dict[str, Any]:
    """Authlib checks the state and exchanges the code, with the PKCE verifier."""
    token = login.session.fetch_token(
        token_url, authorization_response=landed_url, code_verifier=login.verifier
    )
    return dict(token)


# -- oidc-provider: authorization code + PKCE --------------------------------------------------


def test_oidc_login_with_pkce_gives_a_refresh_token_that_refreshes(
    oidc: OidcProviderServer, receiver: Receiver
) -> None:
    """An approved login with offline_access and prompt=consent yields a rotating refresh token."""
    login = start_login(
        oidc.authorization_url,
        LOGIN_CLIENT_ID,
        receiver,
        "openid offline_access",
        prompt="consent",
    )
    person = OidcProviderPerson(oidc.issuer)
    landing = person.approve(login.url)
    assert (landing.status, landing.title) == (200, "authplug: logged in")
    assert receiver.callbacks == [landing.params]
    assert landing.params["state"] == login.state
    assert landing.params["iss"] == oidc.issuer  # RFC 9207
    assert person.prompts == {"login": 1, "consent": 1}

    token = finish_login(login, oidc.token_url, landing.url)
    assert set(token["scope"].split()) == {"openid", "offline_access"}
    first_refresh = token["refresh_token"]
    assert oidc.introspect(token["access_token"])["sub"] == USERNAME

    renewed = dict(login.session.refresh_token(oidc.token_url, refresh_token=first_refresh))
    assert renewed["access_token"] != token["access_token"]
    assert renewed["refresh_token"] != first_refresh  # public clients rotate (the default)
    assert oidc.stats() == {
        "login:ok": 1,
        "consent:ok": 1,
        "authorization_code:ok": 1,
        "refresh_token:ok": 1,
    }


def test_oidc_offline_access_without_prompt_consent_gets_no_refresh_token(
    oidc: OidcProviderServer, receiver: Receiver
) -> None:
    """oidc-provider drops offline_access unless the request says prompt=consent (OIDC §11)."""
    login = start_login(oidc.authorization_url, LOGIN_CLIENT_ID, receiver, "openid offline_access")
    landing = OidcProviderPerson(oidc.issuer).approve(login.url)
    token = finish_login(login, oidc.token_url, landing.url)
    assert token["scope"] == "openid"
    assert "refresh_token" not in token


def test_oidc_client_without_the_refresh_grant_gets_no_refresh_token(
    oidc: OidcProviderServer, receiver: Receiver
) -> None:
    """The client registered without refresh_token gets none, offline_access or not."""
    login = start_login(
        oidc.authorization_url,
        NO_REFRESH_CLIENT_ID,
        receiver,
        "openid offline_access",
        prompt="consent",
    )
    landing = OidcProviderPerson(oidc.issuer).approve(login.url)
    token = finish_login(login, oidc.token_url, landing.url)
    assert "refresh_token" not in token
    assert token["access_token"]


def test_oidc_person_who_is_signed_in_is_asked_only_for_consent(
    oidc: OidcProviderServer, receiver: Receiver
) -> None:
    """The person keeps the provider's cookies: a second login asks consent only."""
    person = OidcProviderPerson(oidc.issuer)
    for _ in range(2):
        login = start_login(oidc.authorization_url, LOGIN_CLIENT_ID, receiver, "openid")
        finish_login(login, oidc.token_url, person.approve(login.url).url)
    assert person.prompts == {"login": 1, "consent": 2}
    person.forget()
    login = start_login(oidc.authorization_url, LOGIN_CLIENT_ID, receiver, "openid")
    person.approve(login.url)
    assert person.prompts == {"login": 2, "consent": 3}
    assert oidc.stats()["authorization_code:ok"] == 2


def test_oidc_deny_at_consent_redirects_access_denied(
    oidc: OidcProviderServer, receiver: Receiver
) -> None:
    """Cancelling at consent sends error=access_denied, with the state, to the redirect URI."""
    login = start_login(oidc.authorization_url, LOGIN_CLIENT_ID, receiver, "openid")
    person = OidcProviderPerson(oidc.issuer)
    landing = person.deny(login.url)
    assert landing.params["error"] == "access_denied"
    assert landing.params["state"] == login.state
    assert "code" not in landing.params
    assert person.prompts == {"login": 1, "consent": 1}
    assert receiver.callbacks == [landing.params]
    assert oidc.stats() == {"login:ok": 1, "interaction:aborted": 1}


def test_oidc_wrong_password_is_refused(oidc: OidcProviderServer, receiver: Receiver) -> None:
    """A wrong password brings the login form back; nothing reaches the redirect URI."""
    login = start_login(oidc.authorization_url, LOGIN_CLIENT_ID, receiver, "openid")
    person = OidcProviderPerson(oidc.issuer, password=PASSWORD + "x")
    with pytest.raises(LoginRefused, match="the login form came back"):
        person.approve(login.url)
    assert oidc.stats() == {"login:refused": 1}
    assert receiver.callbacks == []
    unknown = OidcProviderPerson(oidc.issuer, username="mallory", password=PASSWORD)
    with pytest.raises(LoginRefused):
        unknown.approve(login.url)


@pytest.mark.parametrize("name", ["oidc-provider", "django-oauth-toolkit"])
def test_loopback_redirect_matches_any_port_but_not_another_path(
    name: str, running_servers: dict[str, Any], receiver: Receiver
) -> None:
    """The registered http://127.0.0.1/callback matches every port, and only that path."""
    server = running_servers[name]
    if name == "oidc-provider":
        client_id, scope = LOGIN_CLIENT_ID, "openid"
        person: OidcProviderPerson | DotPerson = OidcProviderPerson(server.issuer)
    else:
        client_id, scope, person = DOT_CLIENT_ID, "read", DotPerson(server.base_url)
    for _ in range(2):  # two receivers, two ephemeral ports
        other = Receiver()
        with other.server:
            login = start_login(server.authorization_url, client_id, other, scope)
            landing = person.approve(login.url)
            assert other.callbacks == [landing.params]
            assert landing.params["code"]
    wrong = start_login(server.authorization_url, client_id, receiver, scope)
    with pytest.raises(PersonError, match=r"(?i)redirect.?uri"):
        person.approve(wrong.url.replace("%2Fcallback", "%2Felsewhere"))
    assert receiver.callbacks == []


def test_oidc_pkce_is_required_and_checked(oidc: OidcProviderServer, receiver: Receiver) -> None:
    """No code_challenge: invalid_request on the redirect; a wrong verifier: invalid_grant."""
    session = OAuth2Session(LOGIN_CLIENT_ID, scope="openid", redirect_uri=receiver.redirect_uri)
    url, _ = session.create_authorization_url(oidc.authorization_url)
    landing = OidcProviderPerson(oidc.issuer).approve(url)
    assert landing.params["error"] == "invalid_request"
    assert "PKCE" in landing.params["error_description"]

    login = start_login(oidc.authorization_url, LOGIN_CLIENT_ID, receiver, "openid")
    landing = OidcProviderPerson(oidc.issuer).approve(login.url)
    answer = requests.post(
        oidc.token_url,
        data={
            "grant_type": "authorization_code",
            "code": landing.params["code"],
            "redirect_uri": receiver.redirect_uri,
            "client_id": LOGIN_CLIENT_ID,
            "code_verifier": secrets.token_urlsafe(48),
        },
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_person_in_background_lands_and_wait_reraises(
    oidc: OidcProviderServer, receiver: Receiver
) -> None:
    """A background approval returns None at once and lands; wait() re-raises a failed one."""
    person = OidcProviderPerson(oidc.issuer)
    login = start_login(oidc.authorization_url, LOGIN_CLIENT_ID, receiver, "openid")
    on_authorize = person.in_background(person.approve)
    assert on_authorize(login.url) is None
    person.wait()
    assert [callback["state"] for callback in receiver.callbacks] == [login.state]

    refused = OidcProviderPerson(oidc.issuer, password="not-" + PASSWORD)
    refused.in_background(refused.approve)(login.url)
    with pytest.raises(LoginRefused):
        refused.wait()
    refused.wait()  # reported once


# -- oidc-provider: the device grant --------------------------------------------------------


def device_authorization(oidc: OidcProviderServer, scope: str) -> dict[str, Any]:
    """RFC 8628 §3.1 for the public login client (no prompt: the device flow keeps
    offline_access without one)."""
    answer = requests.post(
        oidc.device_authorization_url,
        data={"client_id": LOGIN_CLIENT_ID, "scope": scope},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def poll(oidc: OidcProviderServer, device_code: str) -> requests.Response:
    return requests.post(
        oidc.token_url,
        data={"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": LOGIN_CLIENT_ID},
        timeout=10,
    )


def test_oidc_device_flow_with_the_typed_user_code(oidc: OidcProviderServer) -> None:
    """Pending until the person types the code, confirms, signs in and consents; then a token."""
    started = device_authorization(oidc, "openid offline_access")
    assert started["verification_uri"] == f"{oidc.issuer}/device"
    assert started["user_code"] in started["verification_uri_complete"]
    assert started["expires_in"] > 0
    assert "interval" not in started  # RFC 8628 §3.2: the client then waits 5 s between polls

    pending = poll(oidc, started["device_code"])
    assert (pending.status_code, pending.json()["error"]) == (400, "authorization_pending")

    person = OidcProviderPerson(oidc.issuer)
    done = person.enter_user_code(started["user_code"])
    assert done.title == "Sign-in Success"
    assert person.prompts == {"user_code": 1, "confirm": 1, "login": 1, "consent": 1}

    answer = poll(oidc, started["device_code"])
    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert set(token["scope"].split()) == {"openid", "offline_access"}
    assert token["refresh_token"]
    # A device code serves once; used again, oidc-provider also revokes what it granted.
    assert poll(oidc, started["device_code"]).json()["error"] == "invalid_grant"
    assert oidc.stats() == {
        f"{DEVICE_GRANT}:authorization_pending": 1,
        f"{DEVICE_GRANT}:ok": 1,
        f"{DEVICE_GRANT}:invalid_grant": 1,
        "grant_revocations": 1,
        "login:ok": 1,
        "consent:ok": 1,
    }


@dataclass(frozen=True)
class DeviceCode:
    """The shape of authplug's DeviceCode, as on_user_code receives it."""

    verification_uri: str
    verification_uri_complete: str | None
    user_code: str
    expires_in: float
    interval: float


@pytest.mark.parametrize("complete", [True, False], ids=["uri_complete", "typed"])
def test_oidc_on_user_code_callback_approves(oidc: OidcProviderServer, complete: bool) -> None:
    """on_user_code opens verification_uri_complete when given (no typing), else types it."""
    started = device_authorization(oidc, "openid")
    code = DeviceCode(
        verification_uri=started["verification_uri"],
        verification_uri_complete=started["verification_uri_complete"] if complete else None,
        user_code=started["user_code"],
        expires_in=float(started["expires_in"]),
        interval=5.0,
    )
    person = OidcProviderPerson(oidc.issuer)
    person.on_user_code(code)
    assert person.prompts["user_code"] == (0 if complete else 1)
    assert person.prompts["confirm"] == person.prompts["consent"] == 1
    assert poll(oidc, started["device_code"]).status_code == 200


def test_oidc_device_flow_denied_on_the_confirmation_page(oidc: OidcProviderServer) -> None:
    """Aborting on the device page ends the polling with access_denied."""
    started = device_authorization(oidc, "openid")
    person = OidcProviderPerson(oidc.issuer)
    page = person.enter_user_code(started["user_code"], approve=False)
    assert "interrupted" in page.text
    assert person.prompts == {"user_code": 1, "confirm": 1}
    assert poll(oidc, started["device_code"]).json()["error"] == "access_denied"


def test_oidc_device_page_refuses_a_wrong_user_code(oidc: OidcProviderServer) -> None:
    """An unknown user code is refused on the page; the real one still works after it."""
    started = device_authorization(oidc, "openid")
    person = OidcProviderPerson(oidc.issuer)
    with pytest.raises(UserCodeRefused, match="incorrect"):
        person.enter_user_code("BCDF-GHJK" if started["user_code"] != "BCDF-GHJK" else "GHJK-BCDF")
    assert poll(oidc, started["device_code"]).json()["error"] == "authorization_pending"
    person.enter_user_code(started["user_code"])
    assert poll(oidc, started["device_code"]).status_code == 200


def test_oidc_person_and_landing_keep_secrets_out_of_their_repr(
    oidc: OidcProviderServer, receiver: Receiver
) -> None:
    """Neither the person's repr nor the landing's shows the password or the code."""
    login = start_login(oidc.authorization_url, LOGIN_CLIENT_ID, receiver, "openid")
    person = OidcProviderPerson(oidc.issuer)
    landing = person.approve(login.url)
    assert PASSWORD not in repr(person)
    assert landing.params["code"] not in repr(landing)


# -- django-oauth-toolkit -----------------------------------------------------------------------


def test_dot_login_with_pkce_gives_a_refresh_token_that_refreshes(
    dot: Any, receiver: Receiver
) -> None:
    """Django's login form, DOT's Authorize, the code with PKCE: tokens, and a refresh works."""
    login = start_login(dot.authorization_url, DOT_CLIENT_ID, receiver, "read write")
    person = DotPerson(dot.base_url)
    landing = person.approve(login.url)
    assert (landing.status, landing.title) == (200, "authplug: logged in")
    assert landing.params["state"] == login.state
    assert person.prompts == {"login": 1, "consent": 1}

    token = finish_login(login, dot.token_url, landing.url)
    assert set(token["scope"].split()) == {"read", "write"}
    me = requests.get(
        dot.api_url, headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10
    )
    assert me.json()["user"] == USERNAME
    renewed = dict(login.session.refresh_token(dot.token_url, refresh_token=token["refresh_token"]))
    assert renewed["refresh_token"] != token["refresh_token"]  # ROTATE_REFRESH_TOKEN
    assert dot.stats() == {
        "login:ok": 1,
        "consent:ok": 1,
        "authorization_code:ok": 1,
        "refresh_token:ok": 1,
        "api:200": 1,
    }


def test_dot_deny_redirects_access_denied(dot: Any, receiver: Receiver) -> None:
    """Cancel on DOT's authorize form sends error=access_denied to the redirect URI."""
    login = start_login(dot.authorization_url, DOT_CLIENT_ID, receiver, "read")
    landing = DotPerson(dot.base_url).deny(login.url)
    assert landing.params["error"] == "access_denied"
    assert "code" not in landing.params
    assert receiver.callbacks == [landing.params]
    assert dot.stats() == {"login:ok": 1, "consent:denied": 1}


def test_dot_wrong_password_is_refused(dot: Any, receiver: Receiver) -> None:
    """Django's login form comes back for a wrong password; nothing reaches the redirect URI."""
    login = start_login(dot.authorization_url, DOT_CLIENT_ID, receiver, "read")
    with pytest.raises(LoginRefused):
        DotPerson(dot.base_url, password="not-" + PASSWORD).approve(login.url)
    assert receiver.callbacks == []
    assert dot.stats() == {"login:refused": 1}


def test_dot_requires_s256_pkce(dot: Any, receiver: Receiver) -> None:
    """No code_challenge, or the plain method: invalid_request on the redirect, no code."""
    session = OAuth2Session(DOT_CLIENT_ID, scope="read", redirect_uri=receiver.redirect_uri)
    url, _ = session.create_authorization_url(dot.authorization_url)
    person = DotPerson(dot.base_url)
    assert person.approve(url).params["error"] == "invalid_request"
    plain = secrets.token_urlsafe(48)
    url, _ = session.create_authorization_url(
        dot.authorization_url, code_challenge=plain, code_challenge_method="plain"
    )
    assert person.approve(url).params["error"] == "invalid_request"
    assert dot.stats()["authorization_code:ok"] == 0
