"""The emulator's logins of people over HTTP, as a strict server: the authorization code
with PKCE (RFC 6749 §4.1, RFC 7636, RFC 8252) and the device grant (RFC 8628), driven by
:class:`authplug.testing.HeadlessPerson` to a real loopback receiver, by raw HTTP, and by
Authlib's own client."""

from __future__ import annotations

import base64
import hashlib
import http.server
import logging
import re
import secrets
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from authplug.testing import (
    FakeClock,
    HeadlessPerson,
    LoopbackServer,
    OAuth2Emulator,
    Request,
    Response,
)

CLIENT = "my-cli"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class Receiver:
    """An app's loopback listener: records each callback's parameters on ``/callback``."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.urls: list[str] = []
        self._lock = threading.Lock()
        self.server = LoopbackServer(self._app)

    def _app(self, request: Request) -> Response:
        if request.path != "/callback":
            return Response.text(404, "no such path")
        with self._lock:
            self.calls.append(request.args())
            self.urls.append(self.server.url + "/callback?" + urlencode(request.args()))
        return Response.text(200, "<title>received</title>", "text/html")

    @property
    def redirect_uri(self) -> str:
        return self.server.url + "/callback"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    with made.server:
        yield made


@pytest.fixture
def idp(clock: FakeClock) -> Iterator[OAuth2Emulator]:
    """A public client's server, on a clock the test moves."""
    with OAuth2Emulator(client_id=CLIENT, client_secret=None, clock=clock) as emulator:
        yield emulator


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(idp: OAuth2Emulator, redirect_uri: str, verifier: str, **change: str) -> str:
    params = {
        "response_type": "code",
        "client_id": CLIENT,
        "redirect_uri": redirect_uri,
        "scope": "openid offline_access api",
        "state": "state-1",
        "code_challenge": challenge_of(verifier),
        "code_challenge_method": "S256",
        **change,
    }
    return idp.authorization_url + "?" + urlencode({k: v for k, v in params.items() if v})


def get(url: str, **options: Any) -> requests.Response:
    return requests.get(url, timeout=10, **options)


def post(url: str, **options: Any) -> requests.Response:
    return requests.post(url, timeout=10, **options)


def token_call(idp: OAuth2Emulator, **form: str) -> requests.Response:
    return post(idp.token_url, data={"client_id": CLIENT, **form})


def exchange(idp: OAuth2Emulator, code: str, redirect_uri: str, verifier: str) -> requests.Response:
    return token_call(
        idp,
        grant_type="authorization_code",
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=verifier,
    )


def login(idp: OAuth2Emulator, receiver: Receiver, verifier: str) -> str:
    """A person approves; the code the app received."""
    person = HeadlessPerson(idp)
    assert person.approve(authorize_url(idp, receiver.redirect_uri, verifier)) == 200
    return receiver.calls[-1]["code"]


def api_status(idp: OAuth2Emulator, access: str) -> int:
    return get(idp.api_url(), headers={"Authorization": f"Bearer {access}"}).status_code


def error_of(response: requests.Response) -> str:
    assert response.status_code == 400, response.text
    return str(response.json()["error"])


def test_the_metadata_names_the_login_endpoints(idp: OAuth2Emulator) -> None:
    """Discovery gives the authorization and device endpoints, S256 only, both grants."""
    document = get(idp.issuer + "/.well-known/openid-configuration").json()
    assert document["authorization_endpoint"] == idp.authorization_url
    assert document["device_authorization_endpoint"] == idp.device_authorization_url
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert {"authorization_code", DEVICE_GRANT} <= set(document["grant_types_supported"])


def test_a_person_approves_and_the_app_exchanges_the_code(
    idp: OAuth2Emulator, receiver: Receiver
) -> None:
    """Approve redirects to the app with code and state; the code gives working tokens."""
    person = HeadlessPerson(idp, username="ada")
    verifier = secrets.token_urlsafe(48)
    assert person.approve(authorize_url(idp, receiver.redirect_uri, verifier)) == 200
    assert person.last_page == "<title>received</title>"
    (callback,) = receiver.calls
    assert set(callback) == {"code", "state"}
    assert callback["state"] == "state-1"
    answer = exchange(idp, callback["code"], receiver.redirect_uri, verifier)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["refresh_token"]
    assert api_status(idp, body["access_token"]) == 200
    assert (idp.authorize_requests, idp.token_calls["authorization_code"]) == (1, 1)
    assert (person.prompts, idp.decisions) == (1, [("authorization_code", "ada", True)])


def test_a_person_denies(idp: OAuth2Emulator, receiver: Receiver) -> None:
    """Deny redirects to the app with error=access_denied and the state, and no code."""
    person = HeadlessPerson(idp)
    url = authorize_url(idp, receiver.redirect_uri, secrets.token_urlsafe(32), state="s-9")
    assert person.deny(url) == 200
    (callback,) = receiver.calls
    assert callback["error"] == "access_denied"
    assert callback["state"] == "s-9"
    assert "code" not in callback
    assert idp.decisions == [("authorization_code", "demo-user", False)]


def test_without_state_none_comes_back(idp: OAuth2Emulator, receiver: Receiver) -> None:
    """The state is echoed only when the app sent one."""
    HeadlessPerson(idp).approve(
        authorize_url(idp, receiver.redirect_uri, secrets.token_urlsafe(32), state="")
    )
    assert set(receiver.calls[0]) == {"code"}


@pytest.mark.parametrize(
    "change",
    [
        {"code_challenge_method": ""},
        {"code_challenge_method": "plain"},
        {"code_challenge": ""},
        {"code_challenge": "too-short"},
        {"response_type": "token"},
    ],
    ids=["no-method", "plain", "no-challenge", "bad-challenge", "implicit"],
)
def test_pkce_s256_is_required(
    idp: OAuth2Emulator, receiver: Receiver, change: dict[str, str]
) -> None:
    """A request without an S256 challenge is redirected back with an error and the state,
    and never reaches a person."""
    url = authorize_url(idp, receiver.redirect_uri, secrets.token_urlsafe(32), **change)
    answer = get(url, allow_redirects=False)
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert location.netloc == urlsplit(receiver.redirect_uri).netloc
    query = parse_qs(location.query)
    assert query["state"] == ["state-1"]
    assert "code" not in query
    expected = "unsupported_response_type" if "response_type" in change else "invalid_request"
    assert query["error"] == [expected]
    assert HeadlessPerson(idp).approve(url) == 200  # the app's page, with the error
    assert "code" not in receiver.calls[-1]
    assert idp.decisions == []


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:{port}/elsewhere",
        "http://evil.example/callback",
        "https://127.0.0.1:{port}/callback",
        "http://127.0.0.1:{port}/callback#frag",
        "",
    ],
)
def test_an_unregistered_redirect_uri_is_an_error_page(
    idp: OAuth2Emulator, receiver: Receiver, redirect_uri: str
) -> None:
    """A redirect URI not registered is answered with a 400 page, never a redirect."""
    uri = redirect_uri.format(port=receiver.server.port)
    answer = get(authorize_url(idp, uri, secrets.token_urlsafe(32)), allow_redirects=False)
    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert answer.headers["Content-Type"].startswith("text/html")


def test_an_unknown_client_is_an_error_page(idp: OAuth2Emulator, receiver: Receiver) -> None:
    """An unknown client_id is answered with a 400 page, never a redirect."""
    url = authorize_url(idp, receiver.redirect_uri, secrets.token_urlsafe(32), client_id="other")
    assert HeadlessPerson(idp).approve(url) == 400
    assert receiver.calls == []


def test_loopback_redirects_match_any_port_and_others_exactly(receiver: Receiver) -> None:
    """A registered loopback URI without a port matches any port (RFC 8252 §7.3); others
    must be equal."""
    registered = ("http://localhost/cb", "http://127.0.0.1:1/fixed", "https://app.example/cb")
    with OAuth2Emulator(client_id=CLIENT, redirect_uris=registered) as emulator:
        for uri, status in [
            ("http://localhost:5123/cb", 200),
            ("http://localhost/cb", 200),
            ("http://localhost:5123/cb?x=1", 400),
            ("http://127.0.0.1:1/fixed", 200),
            ("http://127.0.0.1:2/fixed", 400),
            ("https://app.example/cb", 200),
            ("https://app.example:444/cb", 400),
        ]:
            url = authorize_url(emulator, uri, secrets.token_urlsafe(32))
            assert get(url, allow_redirects=False).status_code == status, uri


def test_the_verifier_must_match_the_challenge(idp: OAuth2Emulator, receiver: Receiver) -> None:
    """A code_verifier whose S256 is not the challenge, or none, is invalid_grant."""
    verifier = secrets.token_urlsafe(48)
    for wrong in (secrets.token_urlsafe(48), "", verifier + "x"):
        code = login(idp, receiver, verifier)
        assert error_of(exchange(idp, code, receiver.redirect_uri, wrong)) == "invalid_grant"
    code = login(idp, receiver, verifier)
    assert exchange(idp, code, receiver.redirect_uri, verifier).status_code == 200


def test_the_redirect_uri_must_equal_the_request_s(idp: OAuth2Emulator, receiver: Receiver) -> None:
    """At the token call the redirect URI must be the authorization request's, exactly."""
    verifier = secrets.token_urlsafe(48)
    code = login(idp, receiver, verifier)
    other_port = receiver.redirect_uri.replace(str(receiver.server.port), "1")
    assert error_of(exchange(idp, code, other_port, verifier)) == "invalid_grant"


def test_a_code_is_bound_to_its_client(receiver: Receiver) -> None:
    """A code issued to one client is invalid_grant for another (a server taking any client)."""
    with OAuth2Emulator(client_id=None) as emulator:
        verifier = secrets.token_urlsafe(48)
        code = login(emulator, receiver, verifier)
        answer = post(
            emulator.token_url,
            data={
                "grant_type": "authorization_code",
                "client_id": "someone-else",
                "code": code,
                "redirect_uri": receiver.redirect_uri,
                "code_verifier": verifier,
            },
        )
        assert error_of(answer) == "invalid_grant"


def test_a_reused_code_is_refused_and_revokes_its_tokens(
    idp: OAuth2Emulator, receiver: Receiver
) -> None:
    """A second use of a code is invalid_grant, and the tokens of the first are revoked."""
    verifier = secrets.token_urlsafe(48)
    code = login(idp, receiver, verifier)
    first = exchange(idp, code, receiver.redirect_uri, verifier).json()
    assert api_status(idp, first["access_token"]) == 200
    again = exchange(idp, code, receiver.redirect_uri, verifier)
    assert error_of(again) == "invalid_grant"
    assert code not in again.text
    assert api_status(idp, first["access_token"]) == 401
    refresh = token_call(idp, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert error_of(refresh) == "invalid_grant"
    assert idp.token_calls == {"authorization_code": 2, "refresh_token": 1}


def test_a_failed_exchange_spends_the_code(idp: OAuth2Emulator, receiver: Receiver) -> None:
    """Any presentation spends a code: after a wrong verifier, the right one is refused."""
    verifier = secrets.token_urlsafe(48)
    code = login(idp, receiver, verifier)
    assert error_of(exchange(idp, code, receiver.redirect_uri, "x" * 43)) == "invalid_grant"
    assert error_of(exchange(idp, code, receiver.redirect_uri, verifier)) == "invalid_grant"


def test_a_code_lives_60_seconds_on_the_emulator_s_clock(
    idp: OAuth2Emulator, receiver: Receiver, clock: FakeClock
) -> None:
    """A code is accepted 59 s after it was issued and refused 61 s after."""
    verifier = secrets.token_urlsafe(48)
    fresh, stale = login(idp, receiver, verifier), login(idp, receiver, verifier)
    clock.advance(59)
    assert exchange(idp, fresh, receiver.redirect_uri, verifier).status_code == 200
    clock.advance(2)
    assert error_of(exchange(idp, stale, receiver.redirect_uri, verifier)) == "invalid_grant"


def test_a_request_is_decided_once(idp: OAuth2Emulator, receiver: Receiver) -> None:
    """The sign-in page's request id takes one decision; a second post is a 400 page."""
    page = get(authorize_url(idp, receiver.redirect_uri, secrets.token_urlsafe(32)))
    assert page.status_code == 200
    assert "<title>authplug emulator: sign in</title>" in page.text
    request_id = re.search(r'name="request" value="([^"]*)"', page.text)
    assert request_id is not None
    decision = idp.authorization_url + "/decision"
    form = {"request": request_id.group(1), "decision": "approve"}
    assert post(decision, data=form, allow_redirects=False).status_code == 302
    assert post(decision, data=form, allow_redirects=False).status_code == 400


def test_a_confidential_client_authenticates_at_the_exchange(receiver: Receiver) -> None:
    """With a client secret, the code exchange without it is invalid_client (401)."""
    with OAuth2Emulator(client_id=CLIENT, client_secret="s3cret") as emulator:
        verifier = secrets.token_urlsafe(48)
        code = login(emulator, receiver, verifier)
        assert exchange(emulator, code, receiver.redirect_uri, verifier).status_code == 401
        code = login(emulator, receiver, verifier)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": receiver.redirect_uri,
            "code_verifier": verifier,
        }
        answer = post(emulator.token_url, data=form, auth=(CLIENT, "s3cret"))
        assert answer.status_code == 200, answer.text


def test_authlib_s_client_logs_in(idp: OAuth2Emulator, receiver: Receiver) -> None:
    """Authlib's OAuth2Session (PKCE S256) logs in against the emulator and refreshes."""
    session = OAuth2Session(
        CLIENT,
        redirect_uri=receiver.redirect_uri,
        scope="openid offline_access",
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = secrets.token_urlsafe(48)
    url, state = session.create_authorization_url(idp.authorization_url, code_verifier=verifier)
    assert HeadlessPerson(idp).approve(url) == 200
    (callback_url,) = receiver.urls
    token = session.fetch_token(
        idp.token_url, authorization_response=callback_url, code_verifier=verifier, state=state
    )
    assert api_status(idp, token["access_token"]) == 200
    renewed = session.refresh_token(idp.token_url)
    assert api_status(idp, renewed["access_token"]) == 200
    assert idp.token_calls == {"authorization_code": 1, "refresh_token": 1}


def test_the_person_visits_loopback_hosts_only(receiver: Receiver) -> None:
    """A HeadlessPerson refuses a non-loopback URL or redirect, naming the host, not the code."""
    person = HeadlessPerson(OAuth2Emulator())
    with pytest.raises(ValueError, match=r"login\.example"):
        person.approve("https://login.example/authorize?client_id=x")
    with OAuth2Emulator(client_id=CLIENT, redirect_uris=["https://app.example/cb"]) as emulator:
        person = HeadlessPerson(emulator)
        url = authorize_url(emulator, "https://app.example/cb", secrets.token_urlsafe(32))
        with pytest.raises(ValueError, match=r"app\.example") as raised:
            person.approve(url)
        assert "code" not in str(raised.value)
        assert emulator.decisions[0][2] is True


def test_the_person_serves_concurrent_logins(idp: OAuth2Emulator, receiver: Receiver) -> None:
    """One person, eight logins at once from eight threads: eight codes, eight prompts."""
    person = HeadlessPerson(idp)
    urls = [
        authorize_url(idp, receiver.redirect_uri, secrets.token_urlsafe(32), state=f"s{n}")
        for n in range(8)
    ]
    threads = [threading.Thread(target=person.approve, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(call["state"] for call in receiver.calls) == [f"s{n}" for n in range(8)]
    assert len({call["code"] for call in receiver.calls}) == 8
    assert person.prompts == 8


# -- the device grant ---------------------------------------------------------------


def device_authorization(idp: OAuth2Emulator) -> dict[str, Any]:
    answer = post(
        idp.device_authorization_url, data={"client_id": CLIENT, "scope": "offline_access"}
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def poll(idp: OAuth2Emulator, device_code: str) -> requests.Response:
    return token_call(idp, grant_type=DEVICE_GRANT, device_code=device_code)


def test_the_device_authorization_answer(idp: OAuth2Emulator) -> None:
    """RFC 8628 §3.2's fields: an 8-letter user code, where to enter it, lifetime, interval."""
    body = device_authorization(idp)
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", body["user_code"])
    assert body["verification_uri"] == idp.verification_url
    assert (
        body["verification_uri_complete"]
        == idp.verification_url + "?user_code=" + (body["user_code"])
    )
    assert (body["expires_in"], body["interval"], idp.device_authorizations) == (600, 5, 1)
    page = get(body["verification_uri_complete"])
    assert page.status_code == 200
    assert body["user_code"] in page.text


def test_polling_is_pending_then_slowed_down_with_a_growing_interval(
    idp: OAuth2Emulator, clock: FakeClock
) -> None:
    """Polls before a decision are authorization_pending; a poll sooner than the interval is
    slow_down, and the interval expected grows by 5 s each time."""
    device_code = device_authorization(idp)["device_code"]
    assert error_of(poll(idp, device_code)) == "authorization_pending"
    assert error_of(poll(idp, device_code)) == "slow_down"  # now 10 s
    clock.advance(9)
    assert error_of(poll(idp, device_code)) == "slow_down"  # now 15 s
    clock.advance(15)
    assert error_of(poll(idp, device_code)) == "authorization_pending"
    assert idp.token_calls == {DEVICE_GRANT: 4}


def test_a_denied_device_gets_access_denied(idp: OAuth2Emulator, clock: FakeClock) -> None:
    """After the person denies the user code, polling answers access_denied."""
    body = device_authorization(idp)
    assert HeadlessPerson(idp).enter_user_code(body["user_code"], approve=False) == 200
    assert error_of(poll(idp, body["device_code"])) == "access_denied"
    assert idp.decisions == [(DEVICE_GRANT, "demo-user", False)]


def test_a_device_code_expires(idp: OAuth2Emulator, clock: FakeClock) -> None:
    """After expires_in, polling answers expired_token and the user code is refused."""
    body = device_authorization(idp)
    clock.advance(600)
    assert error_of(poll(idp, body["device_code"])) == "expired_token"
    assert HeadlessPerson(idp).enter_user_code(body["user_code"]) == 400


def test_an_approved_device_gets_tokens_once_and_refreshes(
    idp: OAuth2Emulator, clock: FakeClock
) -> None:
    """After approval (a user code typed in lower case without its dash works) the next poll
    gets tokens, a later one invalid_grant; the refresh token works."""
    body = device_authorization(idp)
    person = HeadlessPerson(idp)
    typed = body["user_code"].replace("-", "").lower()
    assert person.on_user_code(SimpleNamespace(user_code=typed)) == 200
    clock.advance(5)
    answer = poll(idp, body["device_code"])
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert api_status(idp, tokens["access_token"]) == 200
    clock.advance(5)
    assert error_of(poll(idp, body["device_code"])) == "invalid_grant"
    refresh = token_call(idp, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refresh.status_code == 200
    assert api_status(idp, refresh.json()["access_token"]) == 200
    assert idp.token_calls == {DEVICE_GRANT: 2, "refresh_token": 1}
    assert (person.prompts, idp.device_authorizations) == (1, 1)


def test_a_device_code_is_bound_to_its_client(receiver: Receiver) -> None:
    """Another client polling with a device code gets invalid_grant."""
    with OAuth2Emulator(client_id=None, device_interval=0) as emulator:
        device_code = device_authorization(emulator)["device_code"]
        answer = post(
            emulator.token_url,
            data={"grant_type": DEVICE_GRANT, "client_id": "other", "device_code": device_code},
        )
        assert error_of(answer) == "invalid_grant"


def test_unknown_user_codes_are_refused(idp: OAuth2Emulator) -> None:
    """A user code never issued, or decided already, is a 400 page."""
    person = HeadlessPerson(idp)
    assert person.enter_user_code("BCDF-GHJK") == 400
    user_code = device_authorization(idp)["user_code"]
    assert person.enter_user_code(user_code) == 200
    assert person.enter_user_code(user_code, approve=False) == 400
    assert person.prompts == 3


def test_no_secret_in_reprs_logs_or_output(
    idp: OAuth2Emulator,
    receiver: Receiver,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Codes, verifiers, device codes and tokens appear in no repr, log record or output."""
    caplog.set_level(logging.DEBUG, logger="authplug")
    verifier = secrets.token_urlsafe(48)
    person = HeadlessPerson(idp)
    code = login(idp, receiver, verifier)
    tokens = exchange(idp, code, receiver.redirect_uri, verifier).json()
    body = device_authorization(idp)
    person.enter_user_code(body["user_code"])
    clock.advance(5)
    device_tokens = poll(idp, body["device_code"]).json()
    secrets_seen = [
        code,
        verifier,
        body["device_code"],
        *(tokens[k] for k in ("access_token", "refresh_token")),
        *(device_tokens[k] for k in ("access_token", "refresh_token")),
    ]
    out, err = capfd.readouterr()
    shown = "\n".join([repr(idp), repr(person), caplog.text, out, err])
    assert not [s for s in secrets_seen if s in shown]


def test_approve_later_serves_a_listener_in_the_caller_s_thread(idp: OAuth2Emulator) -> None:
    """``approve_later`` returns at once, so a listener that serves only after the callback
    returned, in the same thread, still receives the redirect."""
    received: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    with http.server.HTTPServer(("127.0.0.1", 0), Handler) as listener:
        listener.timeout = 10
        redirect_uri = f"http://127.0.0.1:{listener.server_address[1]}/callback"
        person = HeadlessPerson(idp)
        person.approve_later(authorize_url(idp, redirect_uri, secrets.token_urlsafe(32)))
        listener.handle_request()  # one request, in this thread, after the callback returned
        person.wait()
    assert (person.last_status, person.errors, person.prompts) == (200, [], 1)
    assert received[0].startswith("/callback?code=")


def test_approve_later_keeps_the_error(idp: OAuth2Emulator) -> None:
    """An error met in approve_later's thread is kept in ``errors``."""
    person = HeadlessPerson(idp)
    person.approve_later("https://login.example/authorize")
    person.wait()
    (error,) = person.errors
    assert isinstance(error, ValueError)


def test_reset_counters_empties_the_login_counters(idp: OAuth2Emulator, receiver: Receiver) -> None:
    """``reset_counters()`` sets the prompts, device authorizations and decisions to zero."""
    login(idp, receiver, secrets.token_urlsafe(48))
    device_authorization(idp)
    idp.reset_counters()
    assert (idp.authorize_requests, idp.device_authorizations, idp.decisions) == (0, 0, [])
