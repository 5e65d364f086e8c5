"""Token calls: retries, timeouts, and every way an answer can be unusable.

Any answer ends as a token or an AuthError, the same from sync and async; a head that
trickles in cannot hold a call past its timeout; an access token holding CR or LF is
refused on arrival; an ``expires_in`` that is not positive means no lifetime.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import select
import socket
import threading
import time
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

from ..conftest import Driver, make_driver, password_auth


def fetch(auth: Any, mode: str) -> Any:
    """Get a token the sync or the async way."""
    if mode == "sync":
        return auth.get_token()
    return asyncio.run(auth.aget_token())


MODES = ["sync", "async"]


@pytest.mark.parametrize("mode", MODES)
def test_5xx_is_retried_with_backoff(emulator: OAuth2Emulator, clock: FakeClock, mode: str) -> None:
    """Two 503s then success: three calls, two growing waits with jitter."""
    emulator.fail_next(2, status=503)
    token = fetch(password_auth(emulator, clock=clock), mode)
    assert token.access_token
    assert emulator.token_calls.total() == 3
    assert len(clock.sleeps) == 2
    assert 0.25 <= clock.sleeps[0] <= 0.5
    assert 0.5 <= clock.sleeps[1] <= 1.0


@pytest.mark.parametrize("mode", MODES)
def test_retry_after_is_honoured(emulator: OAuth2Emulator, clock: FakeClock, mode: str) -> None:
    """A 429 with ``Retry-After: 7`` waits seven seconds before the next try."""
    emulator.fail_next(1, status=429, retry_after="7")
    fetch(password_auth(emulator, clock=clock), mode)
    assert clock.sleeps == [7.0]
    assert emulator.token_calls.total() == 2


@pytest.mark.parametrize("mode", MODES)
def test_retries_run_out(emulator: OAuth2Emulator, clock: FakeClock, mode: str) -> None:
    """After ``retries`` retries a 5xx becomes TokenEndpointError with the status."""
    emulator.fail_next(10, status=502)
    with pytest.raises(TokenEndpointError) as info:
        fetch(password_auth(emulator, clock=clock, retries=2), mode)
    assert emulator.token_calls.total() == 3
    assert info.value.status_code == 502
    assert "HTML page titled '502 Service Unavailable'" in str(info.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_4xx_is_never_retried(clock: FakeClock, status: int) -> None:
    """4xx other than 429 is final: one call."""

    def app(request: Request) -> Response:
        return Response.json(status, {"error": "nope", "error_description": "said no"})

    with LoopbackServer(app) as server:
        auth = password_auth_for(server.url, clock=clock)
        expected = TokenEndpointError if status == 404 else CredentialsRejectedError
        with pytest.raises(expected) as info:
            auth.get_token()
    assert clock.sleeps == []
    assert info.value.status_code == status
    assert info.value.error == "nope"
    assert info.value.description == "said no"
    assert str(info.value) == f"oauth2: HTTP {status}: nope: said no"


def password_auth_for(url: str, **options: Any) -> Any:
    from authplug import OAuth2PasswordAuth

    return OAuth2PasswordAuth(
        token_url=url + "/token", username="u", password="p4ssw0rd-secret", **options
    )


@pytest.mark.parametrize("mode", MODES)
def test_unreachable_endpoint(clock: FakeClock, mode: str) -> None:
    """A closed port is retried, then reported as TokenEndpointError without a status."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    auth = password_auth_for(f"http://127.0.0.1:{port}", clock=clock, retries=1)
    with pytest.raises(TokenEndpointError) as info:
        fetch(auth, mode)
    assert info.value.status_code is None
    assert "no answer from the token endpoint after 2 attempt(s): ConnectError" in str(info.value)
    assert len(clock.sleeps) == 1


@pytest.mark.parametrize("mode", MODES)
def test_token_calls_time_out(mode: str) -> None:
    """A token endpoint slower than ``timeout`` is abandoned and retried."""
    with OAuth2Emulator(token_delay=0.6) as emulator:
        auth = password_auth(emulator, timeout=0.2, retries=1, clock=FakeClock())
        with pytest.raises(TokenEndpointError, match="ReadTimeout"):
            fetch(auth, mode)
        # A loaded machine may parse the second request after the client gave up on it.
        for _ in range(500):
            if emulator.token_calls.total() >= 2:
                break
            time.sleep(0.01)
        assert emulator.token_calls.total() == 2


class TricklingServer:
    """A real server that answers 200 and then sends its body one byte at a time."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections = 0
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
                conn.recv(65536)  # the request (small, one packet on loopback)
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                conn.sendall(head + b"Content-Length: 100000\r\n\r\n")
                try:
                    while not self._stop.wait(self._interval):
                        conn.sendall(b" ")
                except OSError:  # the client gave up: next connection
                    continue

    def __enter__(self) -> TricklingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()


@pytest.mark.parametrize("mode", MODES)
def test_a_trickling_answer_times_out_as_a_whole(clock: FakeClock, mode: str) -> None:
    """``timeout`` bounds the whole answer, not only each read: a byte every 50 ms ends."""
    with TricklingServer(interval=0.05) as server:
        auth = password_auth_for(server.url, timeout=0.3, retries=1, clock=clock)
        with pytest.raises(TokenEndpointError, match=r"took longer than 0\.3s") as info:
            fetch(auth, mode)
        assert server.connections == 2  # retried like any other timeout
    assert info.value.status_code is None


@pytest.mark.parametrize("mode", MODES)
def test_an_oversized_answer_is_not_read_whole(clock: FakeClock, mode: str) -> None:
    """A 2xx answer of several megabytes is cut at 1 MiB and reported, not swallowed."""
    served = []

    def app(request: Request) -> Response:
        body = b'{"access_token": "' + b"a" * (3 << 20) + b'"}'
        served.append(len(body))
        return Response(200, body, {"Content-Type": "application/json"})

    with LoopbackServer(app) as server, pytest.raises(TokenResponseError) as info:
        fetch(password_auth_for(server.url, clock=clock), mode)
    assert served == [(3 << 20) + 20]  # one call: an unusable 2xx is not retried
    assert "JSON that does not parse (truncated?), 1048576 bytes (HTTP 200)" in str(info.value)
    assert "aaaa" not in str(info.value)  # a piece of a token is never shown
    assert len(str(info.value)) < 400


BAD_BODIES = [
    pytest.param(b"<html><title>Login</title><body>sign in</body></html>", "text/html", id="html"),
    pytest.param(b"", "application/json", id="empty"),
    pytest.param(b'{"access_token": "abc', "application/json", id="truncated"),
    pytest.param(b'["access_token"]', "application/json", id="list"),
    pytest.param(b'{"token_type": "bearer"}', "application/json", id="no-access-token"),
    pytest.param(b'{"access_token": 12345}', "application/json", id="access-token-number"),
    pytest.param(
        b'{"access_token": "abcdef", "expires_in": "soon"}', "application/json", id="expires-text"
    ),
    pytest.param(
        b'{"access_token": "abcdef", "expires_in": [1]}', "application/json", id="expires-list"
    ),
    pytest.param(
        b'{"access_token": "abcdef", "refresh_token": 7}', "application/json", id="refresh-number"
    ),
    pytest.param(b"\xff\xfe\x00garbage", "application/json", id="binary"),
    pytest.param(
        b'{"error": "server_error", "error_description": "oops"}',
        "application/json",
        id="error-200",
    ),
]


@pytest.mark.parametrize(("body", "content_type"), BAD_BODIES)
@pytest.mark.parametrize("mode", MODES)
def test_unusable_2xx_answers(
    emulator: OAuth2Emulator, clock: FakeClock, body: bytes, content_type: str, mode: str
) -> None:
    """A 2xx answer that is not a token raises TokenResponseError at once (not retried)."""
    emulator.malformed_next(1, body=body, content_type=content_type)
    auth = password_auth(emulator, clock=clock)
    with pytest.raises(TokenResponseError) as info:
        fetch(auth, mode)
    assert info.value.status_code == 200
    assert info.value.provider == "oauth2"
    assert emulator.token_calls.total() == 1
    assert clock.sleeps == []
    assert auth.token is None
    # Nothing lost: the next call works.
    clock.advance(2)
    assert fetch(auth, mode).access_token


JWT_PIECE = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9"


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (
            b'{"access_token": "' + JWT_PIECE.encode(),
            "application/json",
            "JSON that does not parse (truncated?)",
        ),
        (JWT_PIECE.encode(), "text/plain", "a body that is not JSON"),
        (b'["' + JWT_PIECE.encode() + b'"]', "application/json", "JSON that is not an object"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_a_broken_2xx_answer_is_described_never_quoted(
    emulator: OAuth2Emulator,
    clock: FakeClock,
    body: bytes,
    content_type: str,
    expected: str,
    mode: str,
) -> None:
    """A 2xx answer may hold a token, even when cut short: its text is never shown."""
    emulator.malformed_next(1, body=body, content_type=content_type)
    with pytest.raises(TokenResponseError) as info:
        fetch(password_auth(emulator, clock=clock), mode)
    assert expected in str(info.value)
    for shown in (str(info.value), repr(info.value), info.value.description):
        assert "eyJhbGci" not in shown


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        (400, b"<html><title>Bad Request</title></html>", "text/html", "an HTML page titled"),
        (401, b"", "", "an empty body (HTTP 401)"),
        (403, b'{"error": "access_deni', "application/json", "an unexpected body"),
        (400, b'{"error": 5}', "application/json", "5"),
        (422, b'{"detail": [{"loc": ["body"]}]}', "application/json", "loc"),
    ],
)
def test_unusable_error_answers(
    status: int, body: bytes, content_type: str, expected: str, clock: FakeClock
) -> None:
    """Error answers of any shape still become the package's exception, with a message."""

    def app(request: Request) -> Response:
        return Response(status, body, {"Content-Type": content_type} if content_type else {})

    with LoopbackServer(app) as server, pytest.raises(CredentialsRejectedError) as info:
        password_auth_for(server.url, clock=clock).get_token()
    assert info.value.status_code == status
    assert expected in str(info.value)


def test_huge_error_page_is_summarised(clock: FakeClock) -> None:
    """A megabyte of HTML is summarised, not pasted into the message."""

    def app(request: Request) -> Response:
        page = b"<html><head><title>Gateway</title></head>" + b"x" * 1_000_000 + b"</html>"
        return Response(404, page, {"Content-Type": "text/html"})

    with LoopbackServer(app) as server, pytest.raises(TokenEndpointError) as info:
        password_auth_for(server.url, clock=clock).get_token()
    assert len(str(info.value)) < 400
    assert "Gateway" in str(info.value)


def test_client_credentials_against_emulator(emulator: OAuth2Emulator) -> None:
    """The generic client-credentials class authenticates with post or basic."""
    for method in ("client_secret_post", "client_secret_basic"):
        auth = OAuth2ClientCredentialsAuth(
            token_url=emulator.token_url,
            client_id="demo-client",
            client_secret="demo-secret",
            client_auth=method,
            scope=["read", "write"],
        )
        token = auth.get_token()
        assert token.refresh_token is None
    form = emulator.token_requests[0].form()
    assert form == {
        "grant_type": "client_credentials",
        "scope": "read write",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
    }
    basic = emulator.token_requests[1]
    assert basic.headers["authorization"].startswith("Basic ")
    assert "client_secret" not in basic.form()


def test_wrong_client_secret(emulator: OAuth2Emulator) -> None:
    """A 401 invalid_client is a CredentialsRejectedError carrying the code."""
    auth = OAuth2ClientCredentialsAuth(
        token_url=emulator.token_url, client_id="demo-client", client_secret="wrong-secret"
    )
    with pytest.raises(CredentialsRejectedError) as info:
        auth.get_token()
    assert (info.value.status_code, info.value.error) == (401, "invalid_client")
    assert isinstance(info.value, AuthError)


def test_missing_expiry_means_valid_until_refused(
    emulator: OAuth2Emulator, clock: FakeClock
) -> None:
    """A token without ``expires_in`` is used until the API answers 401."""
    emulator.token_lifetime = None
    auth = password_auth(emulator, clock=clock)
    token = auth.get_token()
    assert token.expires_at is None
    clock.advance(10**6)
    assert auth.get_token() is token
    assert emulator.token_calls.total() == 1


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
    """``timeout=1`` bounds a token call whose status line and headers trickle in.

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
    """Any answer ends as a token or an AuthError, the same from sync and async.

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


@pytest.mark.parametrize(
    "access", ["abc\r\nX-Evil: 1", "abc\nX-Evil: 1", "abc\rX-Evil: 1"], ids=["crlf", "lf", "cr"]
)
def test_a_token_holding_cr_or_lf_is_refused_on_arrival(
    driver: Driver, emulator: OAuth2Emulator, access: str
) -> None:
    """A 2xx answer whose access_token holds CR or LF is a TokenResponseError.

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
    """``expires_in`` of 0 or -5 is treated as no lifetime, with one warning.

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
