"""A person's login against the emulator: what is asked, what is kept, what is shared,
what ends it; through ``get_token()`` (the clients' side is tests/clients/test_logins.py)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authplug import (
    AuthError,
    FileTokenCache,
    LoginRequiredError,
    OAuth2AuthorizationCodeAuth,
    OAuth2DeviceCodeAuth,
)
from authplug.events import Event, TokenCall
from authplug.testing import FakeClock, HeadlessPerson, OAuth2Emulator

CLIENT = "my-cli"
SCOPE = "openid api"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[OAuth2Emulator]:
    # One clock for the server and the objects: polling waits and expiries take no time.
    with OAuth2Emulator(
        client_id=CLIENT, client_secret=None, clock=clock, token_lifetime=600
    ) as running:
        yield running


@pytest.fixture
def person(emulator: OAuth2Emulator) -> HeadlessPerson:
    return HeadlessPerson(emulator)


@pytest.fixture(autouse=True)
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever runs the tests, nobody sits at a terminal here (pytest may keep one)."""
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)


def code_auth(
    emulator: OAuth2Emulator, clock: FakeClock, **options: Any
) -> OAuth2AuthorizationCodeAuth:
    return OAuth2AuthorizationCodeAuth(
        issuer=emulator.issuer, client_id=CLIENT, scope=SCOPE, clock=clock, **options
    )


def device_auth(emulator: OAuth2Emulator, clock: FakeClock, **options: Any) -> OAuth2DeviceCodeAuth:
    return OAuth2DeviceCodeAuth(
        issuer=emulator.issuer, client_id=CLIENT, scope=SCOPE, clock=clock, **options
    )


def test_a_login_lasts_in_its_cache_and_serves_either_flow(
    emulator: OAuth2Emulator, clock: FakeClock, person: HeadlessPerson, tmp_path: Path
) -> None:
    """One prompt, one code exchange; a later object with the same issuer, client and scope
    (a later run) uses the cached login without asking, and so does a device-grant object."""
    cache = tmp_path / "logins"
    first = code_auth(emulator, clock, on_authorize=person.approve, cache=FileTokenCache(cache))
    token = first.get_token()
    assert token.refresh_token
    later = code_auth(emulator, clock, cache=FileTokenCache(cache), interactive=False)
    device = device_auth(emulator, clock, cache=FileTokenCache(cache), interactive=False)
    assert later.get_token().access_token == token.access_token
    assert device.get_token().access_token == token.access_token
    assert person.prompts == 1
    assert emulator.token_calls == {"authorization_code": 1}


def test_a_login_is_not_a_client_credentials_token_of_the_same_client(
    emulator: OAuth2Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    """The cache keys of a login and of a machine grant of the same client differ."""
    from authplug import OAuth2ClientCredentialsAuth

    cache = FileTokenCache(tmp_path / "tokens")
    machine = OAuth2ClientCredentialsAuth(
        token_url=emulator.token_url,
        client_id=CLIENT,
        client_secret="x",
        clock=clock,
        client_auth="none",
        cache=cache,
    )
    login = OAuth2AuthorizationCodeAuth(
        authorization_url=emulator.authorization_url,
        token_url=emulator.token_url,
        client_id=CLIENT,
        clock=clock,
        cache=cache,
        interactive=False,
    )
    assert machine._manager._key != login._manager._key


class _DecidesOnThirdPoll(FakeClock):
    """A clock whose third sleep (between two polls) is when the person decides."""

    def __init__(self) -> None:
        super().__init__()
        self.decide: Any = None

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)  # recorded in self.sleeps
        if len(self.sleeps) == 3 and self.decide is not None:
            self.decide()


def test_the_device_grant_polls_until_the_person_decides() -> None:
    """authorization_pending continues at the server's interval; the person's approval
    ends the polling with tokens; one token call event; no token in the events."""
    clock = _DecidesOnThirdPoll()
    with OAuth2Emulator(client_id=CLIENT, client_secret=None, clock=clock) as emulator:
        person = HeadlessPerson(emulator)
        shown: list[Any] = []
        events: list[Event] = []
        auth = device_auth(emulator, clock, on_user_code=shown.append, on_event=events.append)
        clock.decide = lambda: person.enter_user_code(shown[0].user_code)
        start = clock.monotonic()
        token = auth.get_token()
        waited = clock.monotonic() - start
    assert token.refresh_token
    assert shown[0].interval == 5
    assert shown[0].verification_uri.startswith("http://127.0.0.1")
    assert emulator.device_authorizations == 1
    # Two polls answered authorization_pending, the third (after the decision) the tokens.
    assert emulator.token_calls[DEVICE_GRANT] == 3
    assert waited == 15  # three waits of the interval, never sooner (no slow_down earned)
    calls = [e for e in events if isinstance(e, TokenCall)]
    assert [(c.grant, c.outcome) for c in calls] == [(DEVICE_GRANT, "ok")]
    assert token.access_token not in repr(events)


def test_a_denied_device_login_says_so(
    emulator: OAuth2Emulator, clock: FakeClock, person: HeadlessPerson
) -> None:
    auth = device_auth(
        emulator,
        clock,
        on_user_code=lambda code: person.enter_user_code(code.user_code, approve=False),
    )
    with pytest.raises(AuthError, match="denied") as info:
        auth.get_token()
    assert info.value.error == "access_denied"
    assert not isinstance(info.value, LoginRequiredError)


def test_a_device_login_nobody_completes_ends_when_the_code_expires(clock: FakeClock) -> None:
    with OAuth2Emulator(
        client_id=CLIENT, client_secret=None, clock=clock, device_expires_in=30
    ) as emulator:
        auth = device_auth(emulator, clock, on_user_code=lambda code: None)
        with pytest.raises(AuthError, match=r"in time|expired") as info:
            auth.get_token()
    assert info.value.error == "expired_token"
    # 30 s at one poll every 5 s: a handful of polls, never a tight loop.
    assert 1 <= emulator.token_calls[DEVICE_GRANT] <= 6


def test_a_denied_code_login_says_so(
    emulator: OAuth2Emulator, clock: FakeClock, person: HeadlessPerson
) -> None:
    auth = code_auth(emulator, clock, on_authorize=person.deny)
    with pytest.raises(AuthError) as info:
        auth.get_token()
    assert info.value.error == "access_denied"
    assert emulator.token_calls == {}


def test_nobody_to_ask_raises_login_required_and_sends_nothing(
    emulator: OAuth2Emulator, clock: FakeClock
) -> None:
    auth = code_auth(emulator, clock)
    with pytest.raises(LoginRequiredError, match=r"auth\.login\(\)"):
        auth.get_token()
    assert emulator.authorize_requests == 0
    assert emulator.token_calls == {}


def test_a_refused_refresh_token_asks_again_on_the_request_path_only(
    emulator: OAuth2Emulator, clock: FakeClock, person: HeadlessPerson
) -> None:
    """A background renewal never asks: when the refresh token is refused it gives up, and
    the next request after expiry asks the person again (a callback given)."""
    auth = code_auth(emulator, clock, on_authorize=person.approve, leeway=60)
    first = auth.get_token()
    emulator.reject_refresh = True
    clock.advance(590)  # due: the next request starts a background renewal
    assert auth.get_token().access_token == first.access_token  # sent at once, still valid
    assert auth._manager.settle(10)
    assert person.prompts == 1  # the background renewal asked nobody
    assert emulator.token_calls["refresh_token"] >= 1
    clock.advance(20)  # expired
    second = auth.get_token()
    assert second.access_token != first.access_token
    assert person.prompts == 2
    assert emulator.token_calls["authorization_code"] == 2


def test_without_a_callback_a_refused_refresh_token_is_login_required(
    emulator: OAuth2Emulator, clock: FakeClock, person: HeadlessPerson, tmp_path: Path
) -> None:
    cache = tmp_path / "logins"
    code_auth(emulator, clock, on_authorize=person.approve, cache=FileTokenCache(cache)).get_token()
    emulator.reject_refresh = True
    auth = code_auth(emulator, clock, cache=FileTokenCache(cache))
    clock.advance(700)  # the cached login expired: its refresh token is tried, and refused
    with pytest.raises(LoginRequiredError):
        auth.get_token()
    assert person.prompts == 1


def test_login_asks_again_whatever_is_cached(
    emulator: OAuth2Emulator, clock: FakeClock, person: HeadlessPerson, tmp_path: Path
) -> None:
    """auth.login() is an explicit login (to switch accounts): it asks, and its tokens
    replace the cached ones for every object sharing the cache."""
    cache = tmp_path / "logins"
    auth = code_auth(emulator, clock, on_authorize=person.approve, cache=FileTokenCache(cache))
    first = auth.get_token()
    second = auth.login()
    assert second.access_token != first.access_token
    assert auth.get_token().access_token == second.access_token
    other = code_auth(emulator, clock, cache=FileTokenCache(cache), interactive=False)
    assert other.get_token().access_token == second.access_token
    assert person.prompts == 2


async def test_alogin_and_alogout(
    emulator: OAuth2Emulator, clock: FakeClock, person: HeadlessPerson, tmp_path: Path
) -> None:
    cache = tmp_path / "logins"
    auth = code_auth(emulator, clock, on_authorize=person.approve, cache=FileTokenCache(cache))
    token = await auth.alogin()
    assert (await auth.aget_token()).access_token == token.access_token
    assert await auth.alogout() is True
    assert emulator.revocations  # the refresh token was revoked at the server
    later = code_auth(emulator, clock, cache=FileTokenCache(cache), interactive=False)
    with pytest.raises(LoginRequiredError):
        await later.aget_token()


def test_logout_revokes_and_forgets_here_and_in_the_cache(
    emulator: OAuth2Emulator, clock: FakeClock, person: HeadlessPerson, tmp_path: Path
) -> None:
    cache = tmp_path / "logins"
    auth = code_auth(emulator, clock, on_authorize=person.approve, cache=FileTokenCache(cache))
    auth.get_token()
    assert auth.logout() is True
    assert emulator.revocations[-1] == ("refresh_token", True)  # a refresh token it knew
    assert auth.token is None
    assert FileTokenCache(cache).get(auth._manager._key) is None
    assert auth.logout() is False  # nothing left to forget


def test_logout_without_a_revocation_endpoint_still_forgets(
    emulator: OAuth2Emulator,
    clock: FakeClock,
    person: HeadlessPerson,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that cannot revoke: the login is forgotten all the same, with a WARNING."""
    auth = OAuth2AuthorizationCodeAuth(
        authorization_url=emulator.authorization_url,
        token_url=emulator.token_url,
        client_id=CLIENT,
        clock=clock,
        on_authorize=person.approve,
    )
    token = auth.get_token()
    with caplog.at_level(logging.WARNING, logger="authplug"):
        assert auth.logout() is True
    assert "without revoking" in caplog.text
    assert auth.token is None
    assert token.refresh_token not in caplog.text


def test_no_secret_of_a_login_reaches_the_log(
    emulator: OAuth2Emulator,
    clock: FakeClock,
    person: HeadlessPerson,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="authplug")
    auth = code_auth(emulator, clock, on_authorize=person.approve)
    token = auth.get_token()
    auth.logout()
    text = caplog.text + repr(auth) + repr(auth.options)
    assert token.access_token not in text
    assert token.refresh_token
    assert token.refresh_token not in text
    assert "?code=" not in text  # no callback URL
    assert "&code=" not in text
    assert "code_verifier" not in text


@pytest.mark.parametrize("flow", ["code", "device"])
def test_a_failed_login_shows_no_code_in_its_traceback(
    emulator: OAuth2Emulator, clock: FakeClock, person: HeadlessPerson, flow: str
) -> None:
    """The code exchange (or the device poll) gets a garbled answer: the error, its message
    and its traceback with every frame's locals formatted hold no code, verifier or device
    code (each is a Secret from the moment it is read)."""
    import traceback

    emulator.malformed_next(1)
    if flow == "code":
        auth: Any = code_auth(emulator, clock, on_authorize=person.approve)
    else:
        auth = device_auth(emulator, clock, on_user_code=person.on_user_code)
    # The renewal plan run as a leader runs it: the error as raised in the plans' frames
    # (a caller gets a copy without them).
    from authplug._renew.renewal import run_renewal

    manager = auth._manager
    plan = manager._renewer.renewal("first use", None, "first_use")
    with pytest.raises(AuthError) as info:
        run_renewal(plan, manager._cache, manager._key, manager._performer)
    sent = emulator.token_requests[-1].form()
    secrets = [sent[k] for k in ("code", "code_verifier", "device_code") if k in sent]
    assert len(secrets) == (2 if flow == "code" else 1)
    tb = info.value.__traceback__
    assert tb is not None
    error = info.value.with_traceback(tb.tb_next)  # from the package's frames on
    rendered = "".join(
        traceback.TracebackException.from_exception(error, capture_locals=True).format()
    )
    assert "login.py" in rendered  # the login plan's frames are there, locals and all
    for secret in secrets:
        assert secret not in rendered
        assert secret not in str(info.value)


def test_a_forged_callback_is_refused_and_the_login_waits_for_the_right_one(
    emulator: OAuth2Emulator, clock: FakeClock, person: HeadlessPerson
) -> None:
    """on_authorize may return at once: authplug then waits for the redirect. A callback
    with another state (a forged link) gets a 4xx and does not end the login."""
    from urllib.parse import parse_qs, urlsplit

    import httpx

    forged: list[int] = []

    def on_authorize(url: str) -> None:
        redirect = parse_qs(urlsplit(url).query)["redirect_uri"][0]
        answer = httpx.get(redirect, params={"code": "forged", "state": "x"}, trust_env=False)
        forged.append(answer.status_code)
        person.approve_later(url)  # returns at once

    auth = code_auth(emulator, clock, on_authorize=on_authorize)
    token = auth.get_token()
    person.wait()
    assert forged == [400]
    assert token.refresh_token
    assert emulator.token_calls == {"authorization_code": 1}


def test_a_callback_that_raises_ends_the_login_with_an_auth_error(
    emulator: OAuth2Emulator, clock: FakeClock
) -> None:
    def broken(_: object) -> None:
        raise RuntimeError("the SDK's window could not open")

    for auth in (
        code_auth(emulator, clock, on_authorize=broken),
        device_auth(emulator, clock, on_user_code=broken),
    ):
        with pytest.raises(AuthError, match="could not open") as info:
            auth.get_token()
        assert info.value.error in ("on_authorize", "on_user_code")
    assert emulator.token_calls.total() == 0
