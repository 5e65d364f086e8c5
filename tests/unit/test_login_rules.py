"""The rules of a person's login that need no server: who may be asked, what a device
authorization answer must hold, what the loopback listener accepts, and the options."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from typing import Any

import httpx
import pytest

from authplug import (
    AuthError,
    ConfigurationError,
    DeviceCode,
    LoginRequiredError,
    OAuth2AuthorizationCodeAuth,
    OAuth2DeviceCodeAuth,
    TokenResponseError,
)
from authplug._call.login import LoginSettings, may_ask, read_device_answer
from authplug._call.loopback import Loopback, loopback_parts
from authplug._call.messages import RawResponse
from authplug._redact import Scrubber

ISSUER = "https://login.example.com"


class _Terminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.mark.parametrize(
    ("interactive", "callback", "tty", "ask", "expected"),
    [
        (None, False, False, None, False),  # nobody to ask: LoginRequiredError
        (None, True, False, None, True),  # a callback given
        (None, False, True, None, True),  # a terminal
        (False, True, True, None, False),  # interactive=False wins over both
        (True, False, False, None, True),  # interactive=True asks anyway
        (True, True, True, False, False),  # a background renewal never asks
        (None, False, False, True, True),  # an explicit login() asks
        (False, False, False, True, False),  # ... unless interactive=False
    ],
)
def test_who_may_be_asked(
    monkeypatch: pytest.MonkeyPatch,
    interactive: bool | None,
    callback: bool,
    tty: bool,
    ask: bool | None,
    expected: bool,
) -> None:
    """A person is asked only where one can answer: ask= wins (False in the background),
    then interactive=, then a callback or a terminal."""
    monkeypatch.setattr(sys, "stdin", _Terminal(tty))
    monkeypatch.setattr(sys, "stderr", _Terminal(tty))
    settings = LoginSettings(
        flow="code", on_authorize=print if callback else None, interactive=interactive
    )
    assert may_ask(settings, ask) is expected


def _device_answer(**fields: Any) -> RawResponse:
    body = {
        "device_code": "DEVICE-SECRET-123456",
        "user_code": "WDJB-MJHT",
        "verification_uri": "https://login.example.com/device",
        "expires_in": 600,
    }
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not None}
    return RawResponse(200, {"content-type": "application/json"}, json.dumps(body).encode())


def test_a_device_answer_is_read_with_rfc8628_defaults() -> None:
    """The device code stays a secret; the interval defaults to 5 s (RFC 8628 §3.2)."""
    secret, shown = read_device_answer(_device_answer(), Scrubber(()), "oauth2")
    assert secret.reveal() == "DEVICE-SECRET-123456"
    assert shown == DeviceCode(
        verification_uri="https://login.example.com/device",
        verification_uri_complete=None,
        user_code="WDJB-MJHT",
        expires_in=600.0,
        interval=5.0,
    )
    assert "DEVICE-SECRET" not in repr(shown)


def test_googles_older_verification_url_is_read() -> None:
    """Google's device endpoint says verification_url: it is read as verification_uri."""
    raw = _device_answer(verification_uri=None, verification_url="https://g.co/device")
    assert (
        read_device_answer(raw, Scrubber(()), "oauth2")[1].verification_uri == "https://g.co/device"
    )


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"device_code": None}, "device_code"),
        ({"user_code": 42}, "user_code"),
        ({"verification_uri": "javascript:alert(1)"}, "verification_uri"),
        ({"expires_in": "soon"}, "expires_in"),
        ({"interval": -1}, "interval"),
        ({"verification_uri_complete": ["x"]}, "verification_uri_complete"),
    ],
)
def test_a_garbled_device_answer_is_a_clear_error_without_the_device_code(
    fields: dict[str, Any], named: str
) -> None:
    """A 2xx answer lacking what RFC 8628 §3.2 requires names the field, never the code."""
    with pytest.raises(TokenResponseError, match=named) as info:
        read_device_answer(_device_answer(**fields), Scrubber(()), "oauth2")
    assert "DEVICE-SECRET" not in str(info.value)


def test_a_device_answer_that_is_not_json_is_a_clear_error() -> None:
    raw = RawResponse(200, {"content-type": "text/html"}, b"<html>proxy</html>")
    with pytest.raises(TokenResponseError, match="device authorization answer"):
        read_device_answer(raw, Scrubber(()), "oauth2")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (None, ("127.0.0.1", 0, "/callback")),
        ("http://127.0.0.1:8765/cb", ("127.0.0.1", 8765, "/cb")),
        ("http://localhost/callback", ("localhost", 0, "/callback")),
        ("http://[::1]:9000/x", ("::1", 9000, "/x")),
    ],
)
def test_the_listener_listens_where_the_redirect_uri_says(
    uri: str | None, expected: tuple[str, int, str]
) -> None:
    assert loopback_parts(uri) == expected


@pytest.mark.parametrize(
    "uri", ["https://127.0.0.1/cb", "http://example.com/cb", "http://127.0.0.1:99999/cb"]
)
def test_a_redirect_uri_off_this_machine_is_refused(uri: str) -> None:
    """authplug listens for the redirect itself: only http on a loopback host will do."""
    with pytest.raises(ConfigurationError, match="redirect_uri="):
        loopback_parts(uri)


def test_the_listener_takes_one_valid_callback(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """A wrong state is a 400 and the wait goes on; another path is a 404; the right
    callback ends the wait with the code and a landing page; after it, nothing more; the
    code is never logged."""
    caplog.set_level(logging.DEBUG)
    listener = Loopback(None, "the-state", "oauth2")
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(listener.wait(10).reveal()))
    waiter.start()
    try:
        url = listener.redirect_uri
        with httpx.Client(trust_env=False) as client:
            wrong = client.get(url, params={"code": "CODE-1", "state": "forged"})
            other = client.get(url.replace("/callback", "/favicon.ico"))
            assert waiter.is_alive()  # still waiting for the right one
            right = client.get(url, params={"code": "CODE-2", "state": "the-state"})
            waiter.join(10)
            after = client.get(url, params={"code": "CODE-3", "state": "the-state"})
    finally:
        listener.close()
    assert (wrong.status_code, other.status_code, right.status_code) == (400, 404, 200)
    assert "<title>authplug: login failed</title>" in wrong.text
    assert "<title>authplug: logged in</title>" in right.text
    assert "http" not in right.text.split("<body>")[1]  # no external resource, no link
    assert after.status_code == 404
    assert got == ["CODE-2"]
    # The standard library's request log (to stderr) is off; (httpx, the test's client,
    # logs its URLs; authplug's loggers say nothing of the code).
    assert "CODE-" not in capfd.readouterr().err
    assert not [
        r for r in caplog.records if r.name.startswith("authplug") and "CODE-" in r.getMessage()
    ]
    assert right.headers["cache-control"] == "no-store"


def test_a_refusal_on_the_redirect_ends_the_login_with_its_words() -> None:
    listener = Loopback(None, "s", "oauth2")
    try:
        answer = httpx.get(
            listener.redirect_uri,
            params={
                "error": "access_denied",
                "error_description": "The user said no",
                "state": "s",
            },
            trust_env=False,
        )
        with pytest.raises(AuthError, match="The user said no") as info:
            listener.wait(5)
    finally:
        listener.close()
    assert "<title>authplug: login failed</title>" in answer.text
    assert info.value.error == "access_denied"


def test_nobody_coming_back_ends_the_wait_with_login_timeout() -> None:
    listener = Loopback(None, "s", "oauth2")
    try:
        with pytest.raises(AuthError, match="login_timeout") as info:
            listener.wait(0.01)
    finally:
        listener.close()
    assert info.value.error == "login_timeout"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client_id": "cli"}, "issuer="),
        ({"client_id": "", "issuer": ISSUER}, "client_id="),
        ({"client_id": "cli", "issuer": ISSUER, "login_timeout": 0}, "login_timeout="),
        ({"client_id": "cli", "issuer": ISSUER, "interactive": "yes"}, "interactive="),
        ({"client_id": "cli", "issuer": ISSUER, "on_authorize": "open"}, "on_authorize="),
        ({"client_id": "cli", "issuer": ISSUER, "redirect_uri": "https://x/cb"}, "redirect_uri="),
        (
            {"client_id": "cli", "authorization_url": "http://example.com/a", "token_url": ISSUER},
            "plain http",
        ),
        ({"client_id": "cli", "authorization_url": ISSUER + "/authorize"}, "token_url="),
    ],
)
def test_each_login_mistake_is_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        OAuth2AuthorizationCodeAuth(**kwargs)


def test_the_device_class_names_its_own_endpoint() -> None:
    with pytest.raises(ConfigurationError, match="device_authorization_url="):
        OAuth2DeviceCodeAuth(client_id="cli", token_url=ISSUER + "/token")
    with pytest.raises(ConfigurationError, match="on_user_code="):
        OAuth2DeviceCodeAuth(client_id="cli", issuer=ISSUER, on_user_code=3)


def test_nobody_to_ask_is_login_required_with_how_to_log_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No terminal, no callback: LoginRequiredError, before anything is sent, saying the
    CLI command with the same issuer, client and scope."""
    monkeypatch.setattr(sys, "stdin", _Terminal(False))
    monkeypatch.setattr(sys, "stderr", _Terminal(False))
    auth = OAuth2AuthorizationCodeAuth(
        issuer="https://127.0.0.1:9/unreachable", client_id="cli", scope="openid api"
    )
    with pytest.raises(LoginRequiredError) as info:
        auth.get_token()
    message = str(info.value)
    assert "auth.login()" in message
    command = "authplug login --issuer https://127.0.0.1:9/unreachable --client-id cli"
    assert command + ' --scope "openid api"' in message
    assert isinstance(info.value, AuthError)


class _ScriptedCalls:
    """The token calls of a device login, answered from a script (no I/O)."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.polls = 0

    def device_authorization(self, url: str, scrub: Scrubber) -> Any:
        yield from ()
        return _device_answer(interval=2)

    def exchange(self, token_url: str, grant_type: str, secrets: Any, plain: Any) -> Any:
        from authplug import CredentialsRejectedError, Token

        yield from ()
        self.polls += 1
        answer = self.answers.pop(0)
        if answer == "token":
            return Token(access_token="at-" + "x" * 20)
        raise CredentialsRejectedError(answer, status_code=400, error=answer)

    def authorization_url(self, *args: Any) -> str:
        raise AssertionError("not a code login")


def _run_device(calls: _ScriptedCalls, expires_in: float = 600) -> tuple[list[float], Any]:
    """Drive a device login plan; the waits it asked for, and its outcome."""
    from authplug._call.login import device_login
    from authplug._call.plan import Call, Sleep

    now = [0.0]
    settings = LoginSettings(flow="device", on_user_code=lambda code: None)
    plan = device_login(
        settings,
        calls,
        "https://as/token",
        "https://as/device",
        "oauth2",
        Scrubber(()),
        lambda: now[0],
    )
    waits: list[float] = []
    result: Any = None
    try:
        effect = next(plan)
        while True:
            if isinstance(effect, Sleep):
                waits.append(effect.seconds)
                now[0] += effect.seconds
                effect = plan.send(None)
            elif isinstance(effect, Call):
                effect = plan.send(effect.sync())
            else:
                raise AssertionError(effect)
    except StopIteration as done:
        result = done.value
    except AuthError as exc:
        result = exc
    return waits, result


def test_slow_down_adds_five_seconds_to_the_interval_for_good() -> None:
    """RFC 8628 §3.5: each slow_down adds 5 s, and the longer interval stays."""
    calls = _ScriptedCalls(
        "authorization_pending", "slow_down", "authorization_pending", "slow_down", "token"
    )
    waits, result = _run_device(calls)
    assert waits == [2, 2, 7, 7, 12]
    assert result.access_token.startswith("at-")


@pytest.mark.parametrize(
    ("answer", "error", "words"),
    [("access_denied", "access_denied", "denied"), ("expired_token", "expired_token", "expired")],
)
def test_the_end_of_a_device_login_is_said_plainly(answer: str, error: str, words: str) -> None:
    waits, result = _run_device(_ScriptedCalls("authorization_pending", answer))
    assert isinstance(result, AuthError)
    assert not isinstance(result, LoginRequiredError)
    assert result.error == error
    assert words in str(result)
    assert waits == [2, 2]


def test_another_refusal_while_polling_is_raised_as_it_came() -> None:
    from authplug import CredentialsRejectedError

    _, result = _run_device(_ScriptedCalls("invalid_client"))
    assert type(result) is CredentialsRejectedError
    assert result.error == "invalid_client"
