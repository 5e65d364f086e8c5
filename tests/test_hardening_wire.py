"""Hardening on the wire: what real servers on loopback may send, and what must follow.

Each test names the item of the hardening issue it guards (A2, B3, C9, C11, C12) and
says in its docstring how it would fail without the fix. Every server here is a real
HTTP server on ``127.0.0.1`` at a free port, started and stopped by the test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from authplug import (
    AuthError,
    CredentialsRejectedError,
    OAuth2ClientCredentialsAuth,
    TokenEndpointError,
    TokenResponseError,
)
from authplug.testing import FakeClock, LoopbackServer, OAuth2Emulator, Request, Response

from .conftest import Driver, make_driver, password_auth

# -- A2: a redirect answered to the replay -------------------------------------------


class RedirectingEmulator(OAuth2Emulator):
    """The emulator, plus ``/api/landing``, which records the Authorization it received.

    ``/api/redirect?to=/api/landing`` (the emulator's own) answers 302 to a request
    whose token is valid, 401 to any other.
    """

    def __init__(self) -> None:
        super().__init__()
        self.landings: list[str | None] = []

    def _api(self, request: Request, path: str) -> Response:
        if path == "/landing":
            with self._lock:
                self.landings.append(request.headers.get("authorization"))
        return super()._api(request, path)


@pytest.fixture
def redirecting() -> Iterator[RedirectingEmulator]:
    with RedirectingEmulator() as running:
        yield running


def test_redirect_of_the_replay_carries_the_renewed_token(
    driver: Driver, redirecting: RedirectingEmulator
) -> None:
    """A2: a same-origin 302 answered to the replay is followed with the NEW token.

    The first request (token 1, revoked) gets 401; the replay (token 2) gets a 302 to
    ``/api/landing``. requests builds the redirected request from the original
    request object, not the replay: without the fix that object still carries token 1,
    so the landing would first receive the refused token (a 401, and a second replay
    from the hook). httpx follows redirects inside the auth flow, from the replay.
    """
    auth = password_auth(redirecting)
    refused = auth.get_token()
    redirecting.revoke_all()
    result = driver.send(
        auth,
        "GET",
        redirecting.api_url("/redirect"),
        params={"to": "/api/landing"},
        follow_redirects=True,
    )
    renewed = auth.token
    assert renewed is not None
    assert renewed.access_token != refused.access_token
    assert result.status == 200
    assert result.data["path"] == "/api/landing"
    assert redirecting.landings == [f"Bearer {renewed.access_token}"]
    assert [(hit.path, hit.authorization, hit.status) for hit in redirecting.api_log] == [
        ("/api/redirect", f"Bearer {refused.access_token}", 401),
        ("/api/redirect", f"Bearer {renewed.access_token}", 302),
        ("/api/landing", f"Bearer {renewed.access_token}", 200),
    ]
    assert redirecting.token_calls == {"password": 1, "refresh_token": 1}


# -- B3: status line and headers a byte at a time ------------------------------------


def _peer_gone(conn: socket.socket) -> bool:
    """True once the client has closed its end (FIN or RST); drains what it sent."""
    while True:
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return False
        try:
            data = conn.recv(65536)
        except OSError:
            return True
        if not data:
            return True


class TricklingHeadServer:
    """A raw socket server that sends its status line and headers one byte at a time.

    Each connection gets :attr:`head` (a 200 with a few KiB of headers and a valid
    token body) one byte per ``interval``. The server stops sending when the client
    hangs up, and records how many bytes it had sent by then. As a safety net only,
    it gives up itself after ``give_up`` seconds (then ``hung_up`` records False).
    """

    def __init__(self, interval: float = 0.05, give_up: float = 10.0) -> None:
        padding = b"".join(b"X-Padding-%03d: %s\r\n" % (i, b"p" * 48) for i in range(64))
        body = b'{"access_token": "trickled-token", "token_type": "bearer"}'
        self.head = (
            b"HTTP/1.1 200 OK\r\n"
            + padding
            + b"Content-Type: application/json\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        self._interval = interval
        self._give_up = give_up
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections = 0
        self.sent: list[int] = []  # bytes sent on each finished connection
        self.hung_up: list[bool] = []  # whether the client ended each connection
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                sent, hung_up = self._trickle(conn)
            self.sent.append(sent)
            self.hung_up.append(hung_up)
            self.finished.set()

    def _trickle(self, conn: socket.socket) -> tuple[int, bool]:
        give_up_at = time.monotonic() + self._give_up
        sent = 0
        for index in range(len(self.head)):
            if self._stop.wait(self._interval) or time.monotonic() > give_up_at:
                return sent, False
            if _peer_gone(conn):
                return sent, True
            try:
                conn.sendall(self.head[index : index + 1])
            except OSError:
                return sent, True
            sent += 1
        return sent, False

    def __enter__(self) -> TricklingHeadServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()


@pytest.mark.parametrize("kind", ["requests", "httpx_async"])
def test_a_head_sent_a_byte_at_a_time_cannot_hold_the_call(kind: str) -> None:
    """B3: ``timeout=1`` bounds a token call whose status line and headers trickle in.

    Token calls go through the package's own transport, whatever the client: one sync
    and one async client cover its two paths (each case waits out the 1 s timeout).

    The server sends one byte every 50 ms of a ~4 KiB head: every single read is quick,
    so a per-read timeout never fires. Without the whole-call deadline the client
    would keep reading until the head was complete (and then get a token); with it,
    the call ends with a TokenEndpointError that names the timeout, and the server
    counts that the client hung up before it had sent everything.
    """
    with TricklingHeadServer() as server:
        auth = OAuth2ClientCredentialsAuth(
            token_url=server.url + "/token",
            client_id="trickle-client",
            client_secret="trickle-secret",
            timeout=1,
            retries=0,
        )
        driver = make_driver(kind)
        try:
            with pytest.raises(TokenEndpointError) as info:
                driver.send(auth, "GET", server.url + "/api/resource")
        finally:
            driver.close()
        assert server.finished.wait(timeout=10)
        assert server.connections == 1  # one attempt, and the API request never went out
        assert server.hung_up == [True], "the server gave up first: the call was not bounded"
        assert 0 < server.sent[0] < len(server.head)
    assert info.value.status_code is None
    assert "took longer than 1s" in str(info.value)
    assert "1 attempt(s)" in str(info.value)
    assert auth.token is None


# -- C9: answers of any shape ---------------------------------------------------------

LEAK = "leaky-at-3f9c2e71"  # an access token a broken 2xx answer carries: never shown
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
DEEP = 100_000


def _token_json(**fields: Any) -> bytes:
    return json.dumps({"access_token": LEAK, "token_type": "bearer", **fields}).encode()


def _raw_token_json(tail: bytes) -> bytes:
    """A token object whose last field's JSON is written by hand."""
    return b'{"access_token": "' + LEAK.encode() + b'", ' + tail + b"}"


_HTML = b"<html><head><title>Sign in</title></head><body>please</body></html>"
_BIG = _raw_token_json(b'"padding": "' + b"x" * (5 << 20) + b'"')  # 5 MiB, unread beyond 1 MiB
_BIG_TOKEN = b'{"access_token": "' + LEAK.encode() * ((5 << 20) // len(LEAK)) + b'"}'

_NOT_JSON = "JSON that does not parse (truncated?)"
_EXPIRES = "the token answer's 'expires_in' is not a usable number"
_NO_ACCESS = "unusable token: the token has no access_token string"
_UNEXPECTED = "an unexpected body (HTTP {status})"


def row(status: int, body: bytes, expected: type[AuthError] | None, says: str, name: str) -> Any:
    """One answer: its status and body, the error it must end as, what the message says.

    ``expected`` None: the answer is a usable token. ``{status}`` in ``says`` is filled in.
    """
    return pytest.param(status, body, expected, says.format(status=status), id=name)


ANSWERS = [
    # 2xx: a token, or a TokenResponseError that never shows the token.
    row(200, b"[" * DEEP, TokenResponseError, _NOT_JSON, "2xx-nested-open"),
    row(200, b"[" * DEEP + b"]" * DEEP, TokenResponseError, _NOT_JSON, "2xx-nested-closed"),
    row(200, b'{"a":' * DEEP, TokenResponseError, _NOT_JSON, "2xx-nested-objects"),
    row(
        200,
        _raw_token_json(b'"extra": ' + b"[" * DEEP + b"]" * DEEP),
        TokenResponseError,
        _NOT_JSON,
        "2xx-nested-field",
    ),
    row(
        200,
        b'{"error": ' + b"[" * 500 + b"]" * 500 + b"}",
        TokenResponseError,
        "error in a 2xx answer",
        "2xx-nested-error",
    ),
    row(
        200,
        _raw_token_json(b'"expires_in": ' + b"9" * 400),
        TokenResponseError,
        _EXPIRES,
        "exp-400-digits",
    ),
    row(200, _raw_token_json(b'"expires_in": 1e400'), TokenResponseError, _EXPIRES, "exp-1e400"),
    row(200, _token_json(expires_in="9" * 400), TokenResponseError, _EXPIRES, "exp-long-str"),
    row(200, _token_json(expires_in="soon"), TokenResponseError, _EXPIRES, "exp-str"),
    row(200, _token_json(expires_in="3600"), None, "", "exp-numeric-str"),
    row(200, _token_json(expires_in=[3600]), TokenResponseError, _EXPIRES, "exp-list"),
    row(200, _token_json(expires_in={"s": 3600}), TokenResponseError, _EXPIRES, "exp-object"),
    row(200, _token_json(expires_in=True), TokenResponseError, _EXPIRES, "exp-true"),
    row(200, _token_json(expires_in=False), TokenResponseError, _EXPIRES, "exp-false"),
    row(200, _token_json(expires_in=None), None, "", "exp-null"),
    row(200, _token_json(access_token=98765432101), TokenResponseError, _NO_ACCESS, "at-number"),
    row(200, _token_json(access_token=[LEAK]), TokenResponseError, _NO_ACCESS, "at-list"),
    row(200, _token_json(access_token={"v": LEAK}), TokenResponseError, _NO_ACCESS, "at-object"),
    row(200, _token_json(access_token=""), TokenResponseError, _NO_ACCESS, "at-empty"),
    row(200, _token_json(access_token=None), TokenResponseError, _NO_ACCESS, "at-null"),
    row(
        200,
        _token_json(token_type=[1]),
        TokenResponseError,
        "token_type is not a string",
        "type-list",
    ),
    row(
        200,
        _token_json(refresh_token={"r": 1}),
        TokenResponseError,
        "refresh_token is not a string",
        "refresh-object",
    ),
    row(
        200,
        json.dumps({"error": "x", "error_description": 5, "access_token": LEAK}).encode(),
        TokenResponseError,
        "HTTP 200",
        "2xx-error-description-number",
    ),
    row(200, _HTML, TokenResponseError, "an HTML page titled 'Sign in'", "2xx-html"),
    row(200, b"", TokenResponseError, "an empty body (HTTP 200)", "2xx-empty"),
    row(200, _token_json()[:30], TokenResponseError, _NOT_JSON, "2xx-truncated"),
    row(200, _BIG, TokenResponseError, _NOT_JSON + ", 1048576 bytes", "2xx-5MiB"),
    row(200, _BIG_TOKEN, TokenResponseError, _NOT_JSON + ", 1048576 bytes", "2xx-5MiB-token"),
    row(
        200,
        json.dumps([LEAK]).encode(),
        TokenResponseError,
        "JSON that is not an object (a list)",
        "2xx-array",
    ),
    row(
        200,
        json.dumps(LEAK).encode(),
        TokenResponseError,
        "JSON that is not an object (a str)",
        "2xx-string",
    ),
    row(
        200,
        b"\xff\xfe\x00" + LEAK.encode(),
        TokenResponseError,
        "a body that is not JSON",
        "2xx-binary",
    ),
    # 4xx and 5xx (no retries here): the package's error for the status.
    row(400, b"[" * DEEP, CredentialsRejectedError, _UNEXPECTED, "400-nested-open"),
    row(401, b"[" * DEEP + b"]" * DEEP, CredentialsRejectedError, _UNEXPECTED, "401-nested"),
    row(
        400,
        b'{"error": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        CredentialsRejectedError,
        _UNEXPECTED,
        "400-nested-error",
    ),
    row(
        403,
        b'{"error": "x", "error_description": ' + b"[" * 500 + b"]" * 500 + b"}",
        CredentialsRejectedError,
        "HTTP 403: x: [[[",
        "403-nested-description",
    ),
    row(404, b"{" * DEEP, TokenEndpointError, _UNEXPECTED, "404-nested"),
    row(503, b"[" * DEEP, TokenEndpointError, _UNEXPECTED, "503-nested"),
    row(
        400,
        b'{"error": ' + b"9" * 400 + b"}",
        CredentialsRejectedError,
        "HTTP 400: 9999",
        "400-digits-error",
    ),
    row(400, _HTML, CredentialsRejectedError, "an HTML page titled 'Sign in'", "400-html"),
    row(502, _HTML, TokenEndpointError, "an HTML page titled 'Sign in'", "502-html"),
    row(401, b"", CredentialsRejectedError, "an empty body (HTTP 401)", "401-empty"),
    row(403, b'{"error": "access_deni', CredentialsRejectedError, _UNEXPECTED, "403-truncated"),
    row(
        400,
        b'{"error": "' + b"e" * (5 << 20) + b'"}',
        CredentialsRejectedError,
        _UNEXPECTED,
        "400-5MiB",
    ),
    row(400, b'["invalid_grant"]', CredentialsRejectedError, _UNEXPECTED, "400-array"),
    row(
        400,
        json.dumps(
            {"error": "bad\r\nX-Injected: 1", "error_description": "one\ntwo\x1b[31m\u2028\x00"}
        ).encode(),
        CredentialsRejectedError,
        "HTTP 400: bad X-Injected: 1: one two [31m",
        "400-control-characters",
    ),
]


def _outcome(auth: Any, mode: str) -> Any:
    """A token, or the exception the sync or async token call raised."""
    try:
        if mode == "sync":
            return auth.get_token()
        return asyncio.run(auth.aget_token())
    except AuthError as exc:
        return exc


@pytest.mark.parametrize(("status", "body", "expected", "says"), ANSWERS)
def test_answers_of_any_shape_end_as_auth_errors(
    emulator: OAuth2Emulator,
    status: int,
    body: bytes,
    expected: type[AuthError] | None,
    says: str,
) -> None:
    """C9: any answer ends as a token or an AuthError, the same from sync and async.

    Deep nesting (``RecursionError`` in ``json.loads`` and ``json.dumps``), a
    400-digit number (``OverflowError`` in ``float()``), fields of the wrong type
    (``TypeError``/``KeyError`` in the readers) once escaped as such; anything but an
    AuthError fails this test as it propagates. The message says what was wrong (a
    generic "unusable token (OverflowError)" would mean a reader still raised), is one
    printable line, and never quotes the access token of a broken 2xx answer.
    """
    emulator.malformed_next(2, body=body, status=status)
    outcomes = [
        _outcome(password_auth(emulator, retries=0, clock=FakeClock()), mode)
        for mode in ("sync", "async")
    ]
    assert emulator.token_calls.total() == 2  # one call each: nothing retried
    if expected is None:
        assert [token.access_token for token in outcomes] == [LEAK, LEAK]
        return
    sync_error, async_error = outcomes
    assert type(sync_error) is expected
    assert type(async_error) is expected
    assert str(sync_error) == str(async_error)
    for error in outcomes:
        assert error.status_code == status
        message = str(error)
        assert message.startswith("oauth2: ")
        assert says in message
        assert _CONTROL.search(message) is None, message
        assert _CONTROL.search(error.description) is None
        assert error.error is None or _CONTROL.search(error.error) is None
        assert len(message) < 600
        if status < 300:
            assert LEAK not in message
            assert LEAK not in repr(error)


def _authplug(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authplug", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(200, "TokenResponseError"), (400, "CredentialsRejectedError")],
)
def test_cli_reports_a_nested_answer_without_traceback(status: int, error_class: str) -> None:
    """C9: ``authplug token`` against an endpoint answering deeply nested JSON.

    Without the fix the RecursionError escaped the token call and the command died
    with a Python traceback; now it prints the package's error on one line and exits 1.
    """
    calls: list[str] = []

    def app(request: Request) -> Response:
        calls.append(request.path)
        return Response(status, b"[" * DEEP, {"Content-Type": "application/json"})

    with LoopbackServer(app) as server:
        result = _authplug(
            "token",
            "semansys",
            "--token-url",
            server.url + "/connect/token",
            "--client-id",
            "cli-client",
            "--client-secret",
            "cli-secret",
            "--username",
            "cli-user",
            "--password",
            "cli-password",
            "--timeout",
            "5",
        )
    assert calls == ["/connect/token"]
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "RecursionError" not in result.stderr
    assert result.stderr.startswith(f"authplug token semansys: {error_class}: semansys: HTTP ")
    assert result.stderr.count("\n") == 1
    for secret in ("cli-secret", "cli-password"):
        assert secret not in result.stderr


# -- C11: an access token that would split a header --------------------------------


@pytest.mark.parametrize(
    "access", ["abc\r\nX-Evil: 1", "abc\nX-Evil: 1", "abc\rX-Evil: 1"], ids=["crlf", "lf", "cr"]
)
def test_a_token_holding_cr_or_lf_is_refused_on_arrival(
    driver: Driver, emulator: OAuth2Emulator, access: str
) -> None:
    """C11: a 2xx answer whose access_token holds CR or LF is a TokenResponseError.

    It is refused when it arrives, at the first request, before any request carries
    it. Without the fix the token was accepted and the HTTP client refused the header
    at send time (requests' InvalidHeader, h11's LocalProtocolError), quoting the
    token and its injected ``X-Evil`` line in the message.
    """
    emulator.malformed_next(
        1,
        body=json.dumps(
            {"access_token": access, "token_type": "bearer", "expires_in": 3600}
        ).encode(),
    )
    auth = password_auth(emulator)
    with pytest.raises(TokenResponseError) as info:
        driver.send(auth, "GET", emulator.api_url())
    error: BaseException | None = info.value
    while error is not None:  # nor anything it chains to
        assert "X-Evil" not in str(error)
        assert "X-Evil" not in repr(error)
        error = error.__cause__ or error.__context__
    assert info.value.status_code == 200
    assert emulator.token_calls.total() == 1
    assert emulator.api_calls == 0
    assert emulator.api_log == []
    assert auth.token is None


# -- C12: a lifetime that is not positive -------------------------------------------


class LifetimeEmulator(OAuth2Emulator):
    """Issues tokens the API accepts until revoked, announcing ``expires_in=advertised``."""

    def __init__(self, advertised: float) -> None:
        super().__init__(token_lifetime=None)
        self.advertised = advertised

    def token_body(
        self, access: str, refresh: str | None, lifetime: float | None
    ) -> dict[str, Any]:
        body = super().token_body(access, refresh, lifetime)
        body["expires_in"] = self.advertised
        return body


@pytest.mark.parametrize("advertised", [0, -5])
def test_a_lifetime_not_positive_means_no_lifetime(
    driver: Driver,
    clock: FakeClock,
    authlog: pytest.LogCaptureFixture,
    advertised: int,
) -> None:
    """C12: ``expires_in`` of 0 or -5 is treated as no lifetime, with one warning.

    Without the fix such a token expired the moment it arrived: a token call before
    every request. Now one token call serves every request, however much time
    passes, until the API refuses the token (then one renewal); the authplug logger
    warns once, naming the provider, whatever the number of requests and renewals.
    """
    with LifetimeEmulator(advertised) as emulator:
        auth = password_auth(emulator, clock=clock)
        for _ in range(5):
            assert driver.send(auth, "GET", emulator.api_url()).status == 200
            clock.advance(3600)
        assert emulator.token_calls.total() == 1
        first = auth.token
        assert first is not None
        assert first.expires_at is None
        emulator.revoke_all()
        for _ in range(5):
            assert driver.send(auth, "GET", emulator.api_url()).status == 200
            clock.advance(3600)
        assert emulator.token_calls == {"password": 1, "refresh_token": 1}
        assert [hit.status for hit in emulator.api_log] == [200] * 5 + [401] + [200] * 5
        renewed = auth.token
        assert renewed is not None
        assert renewed.access_token != first.access_token
        assert renewed.expires_at is None
    warnings = [
        record
        for record in authlog.records
        if record.name == "authplug" and record.levelno == logging.WARNING
    ]
    assert len(warnings) == 1, [record.getMessage() for record in warnings]
    message = warnings[0].getMessage()
    assert message.startswith("oauth2: ")
    assert f"expires_in={advertised}" in message
