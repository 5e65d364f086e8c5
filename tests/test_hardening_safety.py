"""Hardening: a silent Redis, bad cache entries, foreign token files, secrets kept out of
logs, errors and tracebacks, and the warnings for tokens sent in clear.

Everything runs against real servers on 127.0.0.1 (emulators, a real redis-server, a TCP
server that never answers), real files and real HTTP clients; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import httpx
import pytest
import requests

from authplug import (
    BaseAuth,
    CredentialsRejectedError,
    FileTokenCache,
    OAuth2PasswordAuth,
    ProviderSpec,
    RedisTokenCache,
    TelmaiAuth,
    Token,
    TokenCache,
    TokenEndpointError,
)
from authplug._net import is_loopback
from authplug.spec import ExtraParams
from authplug.testing import (
    FakeClock,
    LoopbackServer,
    OAuth2Emulator,
    Request,
    Response,
    TelmaiEmulator,
)

from .conftest import Driver, key_for, password_auth

# Characters that every encoding spells differently: @, space, +, /, =, %, non-ASCII.
PASSWORD = "p@ss w+rd/=%41é"
SECRET = "s3c r+t/=%42ü-client"
REFRESH = "rt-seeded/+= refresh-token"
CLIENT_ID = "demo-client"


def spellings(secret: str) -> set[str]:
    """Every way authplug may put ``secret`` on the wire: raw, form- and percent-encoded."""
    return {secret, quote_plus(secret, safe=""), quote(secret, safe="")}


def basic_b64(client_id: str, secret: str) -> str:
    """The Base64 of RFC 6749 §2.3.1 Basic credentials, as authplug sends them."""
    joined = quote(client_id, safe="") + ":" + quote(secret, safe="")
    return base64.b64encode(joined.encode()).decode()


def authplug_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The WARNING records of the authplug logger."""
    return [r for r in caplog.records if r.name == "authplug" and r.levelno == logging.WARNING]


# -- B7: a Redis that accepts connections and never answers -----------------------------


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def silent_redis() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


#: Far beyond what the requests need with bounded Redis calls (about one second); a
#: client left waiting on the silent server would wait forever.
HANG = 20.0


def finish_or_fail(work: Callable[[], Any]) -> Any:
    """``work()`` in a thread; a clean test failure if it is still stuck after HANG."""
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG)
    if not outcome:
        pytest.fail("requests hang on the silent Redis: its calls are not bounded", pytrace=False)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


@pytest.mark.redis
def test_unresponsive_redis_sync_client_loses_no_request(
    driver: Driver,
    emulator: OAuth2Emulator,
    silent_redis: SilentServer,
    authlog: pytest.LogCaptureFixture,
) -> None:
    """B7: a redis.Redis built as the README shows (no socket_timeout) on a Redis that
    never answers: every cache call gives up after ``timeout``, requests go on with the
    process's own token (one token call, one warning), for requests, httpx and async."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=silent_redis.port)
    cache = RedisTokenCache(client, timeout=0.5, wait_timeout=0.5, lock_timeout=5)
    try:
        auth = password_auth(emulator, cache=cache)
        statuses = finish_or_fail(
            lambda: [driver.send(auth, "GET", emulator.api_url()).status for _ in range(3)]
        )
        assert statuses == [200, 200, 200]
        assert emulator.token_calls == {"password": 1}
        assert silent_redis.accepted  # the client did reach the silent server
        unavailable = [r for r in authplug_warnings(authlog) if "unavailable" in r.getMessage()]
        assert len(unavailable) == 1
    finally:
        silent_redis.close()  # the stuck helper thread's read ends with the connection
        client.close()


@pytest.mark.redis
async def test_unresponsive_redis_async_client_loses_no_request(
    emulator: OAuth2Emulator, silent_redis: SilentServer, authlog: pytest.LogCaptureFixture
) -> None:
    """B7: the same with a redis.asyncio.Redis under httpx.AsyncClient: each call is
    cancelled after ``timeout``; the requests succeed with one token call."""
    import redis.asyncio

    client = redis.asyncio.Redis(host="127.0.0.1", port=silent_redis.port)
    cache = RedisTokenCache(client, timeout=0.5, wait_timeout=0.5, lock_timeout=5)
    auth = password_auth(emulator, cache=cache)

    async def send() -> list[int]:
        async with httpx.AsyncClient(auth=auth, timeout=10) as http:
            return [(await http.get(emulator.api_url())).status_code for _ in range(3)]

    try:
        try:
            statuses = await asyncio.wait_for(send(), HANG)
        except asyncio.TimeoutError:
            pytest.fail("requests hang on the silent Redis: its calls are not bounded")
        assert statuses == [200, 200, 200]
        assert emulator.token_calls == {"password": 1}
        assert silent_redis.accepted
        unavailable = [r for r in authplug_warnings(authlog) if "unavailable" in r.getMessage()]
        assert len(unavailable) == 1
    finally:
        silent_redis.close()
        await client.aclose()


# -- C10: a bad cache entry reads as empty, with one warning ----------------------------

BAD_ENTRIES = {
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
    "expires_at-1e400": b'{"access_token": "x", "expires_at": 1e400}',
    "expires_at-400-digits": b'{"access_token": "x", "expires_at": ' + b"9" * 400 + b"}",
    "400-digit-number": b"7" * 400,
    "json-array": b'[{"access_token": "x"}]',
    "not-json": b"\xff\xfe\x00 not json at all",
    "no-access-token": b'{"token_type": "bearer", "expires_in": 3600}',
}


def check_renewed_over_bad_entry(
    emulator: OAuth2Emulator,
    cache: TokenCache,
    stored: Callable[[], dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One request through ``cache`` holding a bad entry: it succeeds, one warning, and
    the entry afterwards is the new token."""
    auth = password_auth(emulator, cache=cache)
    with httpx.Client(auth=auth, timeout=10) as client:
        try:
            response = client.get(emulator.api_url())
        except Exception as exc:  # reported by kind: a RecursionError's trace is huge
            pytest.fail(f"the bad entry broke the request: {exc!r:.200}", pytrace=False)
    assert response.status_code == 200
    assert not response.history  # the bad entry was never sent as a token
    assert emulator.token_calls == {"password": 1}
    assert auth.token is not None
    assert emulator.api_log[-1].authorization == f"Bearer {auth.token.access_token}"
    entry = stored()
    assert entry["access_token"] == auth.token.access_token
    assert Token.from_dict(entry).expires_at == auth.token.expires_at
    warnings = authplug_warnings(caplog)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "treating it as empty" in warnings[0].getMessage()


@pytest.mark.parametrize("entry", list(BAD_ENTRIES.values()), ids=list(BAD_ENTRIES))
def test_bad_file_entry_is_empty_and_overwritten(
    emulator: OAuth2Emulator, tmp_path: Path, authlog: pytest.LogCaptureFixture, entry: bytes
) -> None:
    """C10: a token file whose entry is deep nesting, an infinite or 400-digit number, an
    array, not JSON, or a dict without access_token reads as empty (one WARNING) and the
    renewal overwrites it."""
    import json

    path = tmp_path / "tokens.json"
    key = key_for(emulator)
    path.write_bytes(b'{"' + key.encode() + b'": ' + entry + b"}")
    path.chmod(0o600)
    check_renewed_over_bad_entry(
        emulator, FileTokenCache(path), lambda: json.loads(path.read_bytes())[key], authlog
    )


@pytest.mark.redis
@pytest.mark.parametrize("entry", list(BAD_ENTRIES.values()), ids=list(BAD_ENTRIES))
def test_bad_redis_entry_is_empty_and_overwritten(
    emulator: OAuth2Emulator, redis_server: Any, authlog: pytest.LogCaptureFixture, entry: bytes
) -> None:
    """C10: the same bad values stored under the Redis key read as empty (one WARNING)
    and the renewal overwrites them."""
    import json

    import redis

    name = "authplug:" + key_for(emulator)
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=5)

    def stored() -> dict[str, Any]:
        raw = client.get(name)
        assert isinstance(raw, bytes)
        return dict(json.loads(raw))

    try:
        client.set(name, entry)
        check_renewed_over_bad_entry(emulator, RedisTokenCache(client), stored, authlog)
    finally:
        client.close()


# -- E17: a token file another user owns, or others may write, is refused --------------


def plant_token_file(emulator: OAuth2Emulator, path: Path) -> Token:
    """A real, fresh token stored in ``path`` under the key of ``password_auth``."""
    token = password_auth(emulator).get_token()
    FileTokenCache(path).set(key_for(emulator), token)
    emulator.reset_counters()
    return token


@pytest.mark.parametrize(
    ("mode", "uid"),
    [(0o664, None), (0o606, None), (0o600, 65534)],
    ids=["group-writable", "others-writable", "other-owner"],
)
def test_foreign_token_file_is_refused(
    emulator: OAuth2Emulator,
    tmp_path: Path,
    authlog: pytest.LogCaptureFixture,
    mode: int,
    uid: int | None,
) -> None:
    """E17: a token file group/others may write, or owned by another user, is never read
    (its fresh token is not adopted) and never overwritten; one WARNING, and the request
    succeeds with the process's own token."""
    path = tmp_path / "tokens.json"
    planted = plant_token_file(emulator, path)
    path.chmod(mode)
    if uid is not None:
        if os.geteuid() != 0:
            pytest.skip("giving a file to another user needs root")
        os.chown(path, uid, uid)
    before = path.read_bytes()
    info = path.stat()
    auth = password_auth(emulator, cache=FileTokenCache(path))
    with requests.Session() as session:
        session.auth = auth
        assert session.get(emulator.api_url(), timeout=10).status_code == 200
        assert session.get(emulator.api_url(), timeout=10).status_code == 200
    assert emulator.token_calls == {"password": 1}  # the planted token was not read
    assert auth.token is not None
    assert auth.token.access_token != planted.access_token
    assert {hit.authorization for hit in emulator.api_log} == {f"Bearer {auth.token.access_token}"}
    after = path.stat()
    assert path.read_bytes() == before
    assert (after.st_ino, after.st_uid, stat.S_IMODE(after.st_mode)) == (
        info.st_ino,
        info.st_uid,
        stat.S_IMODE(info.st_mode),
    )
    warnings = authplug_warnings(authlog)
    assert len(warnings) == 1
    assert "refusing the token file" in warnings[0].getMessage()


def test_private_token_file_is_used(
    emulator: OAuth2Emulator, tmp_path: Path, authlog: pytest.LogCaptureFixture
) -> None:
    """E17: a 0600 token file owned by this user is read: its fresh token is adopted."""
    path = tmp_path / "tokens.json"
    planted = plant_token_file(emulator, path)
    info = path.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (os.geteuid(), 0o600)
    auth = password_auth(emulator, cache=FileTokenCache(path))
    with requests.Session() as session:
        session.auth = auth
        assert session.get(emulator.api_url(), timeout=10).status_code == 200
    assert emulator.token_calls.total() == 0
    assert emulator.api_log[-1].authorization == f"Bearer {planted.access_token}"
    assert authplug_warnings(authlog) == []


# -- D13: no log record of any logger carries a secret ---------------------------------


def record_texts(record: logging.LogRecord) -> list[str]:
    """Everything of a record a handler may write."""
    texts = [record.getMessage(), str(record.msg), repr(record.args)]
    if record.exc_info:
        texts.append(logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        texts.append(record.exc_text)
    if record.stack_info:
        texts.append(record.stack_info)
    return texts


def echo_of(request: Request) -> str:
    """The whole request as a token endpoint may echo it: query, form body, Authorization."""
    query = urlencode(request.query, doseq=True)
    body = request.body.decode()
    return f"q={query} b={body} a={request.headers.get('authorization', '')}"


class EchoingEmulator(OAuth2Emulator):
    """The next ``echo`` token calls of grant ``echo_grant`` answer 503, their error
    description echoing the whole request."""

    echo = 0
    echo_grant = ""

    def check_request(self, request: Request, params: dict[str, str]) -> Response | None:
        if self.echo and params.get("grant_type") == self.echo_grant:
            self.echo -= 1
            return self.error(503, "temporarily_unavailable", echo_of(request))
        return super().check_request(request, params)


class EchoingTelmaiEmulator(TelmaiEmulator):
    """Telmai's emulator with the same echoing 503 answers."""

    echo = 0
    echo_grant = ""

    def check_request(self, request: Request, params: dict[str, str]) -> Response | None:
        if self.echo and params.get("grant_type") == self.echo_grant:
            self.echo -= 1
            return Response.json(503, {"error_description": echo_of(request)})
        return super().check_request(request, params)


PROVIDERS = ["generic-post", "generic-basic", "telmai-query"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_log_record_carries_a_secret(
    driver: Driver, clock: FakeClock, caplog: pytest.LogCaptureFixture, provider: str
) -> None:
    """D13: fetch, replay after a refusal, proactive refresh after a retried 5xx, and
    failed renewals whose 503 answers echo the whole request (logged as WARNINGs), with
    the root logger at DEBUG: no record of any logger (authplug, httpx, httpcore,
    urllib3...) carries the password, the client secret, a refresh token or an access
    token, in any spelling (Telmai: the password in the query string, as documented)."""
    caplog.set_level(logging.DEBUG)
    for name in ("authplug", "httpx", "httpcore", "urllib3", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    issued: list[Token] = []
    emulator: EchoingEmulator | EchoingTelmaiEmulator
    auth: BaseAuth
    if provider == "telmai-query":
        emulator = EchoingTelmaiEmulator(password=PASSWORD).start()
        auth = TelmaiAuth(
            **emulator.auth_kwargs(), params_in="query", clock=clock, on_token=issued.append
        )
    else:
        emulator = EchoingEmulator(password=PASSWORD, client_secret=SECRET).start()
        auth = password_auth(
            emulator,
            clock=clock,
            on_token=issued.append,
            client_auth=provider.replace("generic-", "client_secret_"),
        )
    try:
        url = emulator.api_url()
        assert driver.send(auth, "GET", url).status == 200  # the full grant
        emulator.revoke_all()
        assert driver.send(auth, "POST", url, content=b"x").history == 1  # refused, replayed
        clock.advance(3550)
        emulator.fail_next(1)
        assert driver.send(auth, "GET", url).status == 200  # proactive refresh, one retry
        clock.advance(3550)
        emulator.echo, emulator.echo_grant = 4, "refresh_token"
        assert driver.send(auth, "GET", url).status == 200  # refresh fails: token goes on
        clock.advance(2)
        emulator.reject_refresh = True
        emulator.echo, emulator.echo_grant = 4, "password"
        assert driver.send(auth, "GET", url).status == 200  # full grant fails too
        assert emulator.token_calls == {"password": 5, "refresh_token": 8}
    finally:
        emulator.stop()
    secrets = spellings(PASSWORD)
    if provider != "telmai-query":
        secrets |= spellings(SECRET) | {basic_b64(CLIENT_ID, SECRET)}
    assert len(issued) == 3
    for token in issued:
        assert token.refresh_token
        secrets |= {token.access_token, token.refresh_token}
    names = {record.name.split(".")[0] for record in caplog.records}
    assert {"authplug", "httpcore"} <= names
    if driver.logger:
        assert driver.logger in names
    for record in caplog.records:
        for text in record_texts(record):
            for secret in secrets:
                assert secret not in text, (record.name, record.levelname, record.msg)
    failed = [r.getMessage() for r in caplog.records if "renewal failed" in r.getMessage()]
    assert len(failed) == 2
    assert all("***" in message for message in failed)  # the echoes were logged, scrubbed


# -- D14: a token endpoint that echoes the request -------------------------------------


def _form_values(request: Request) -> list[str]:
    values = list(request.form().values()) + list(request.args().values())
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        values += base64.b64decode(header[6:]).decode().split(":")
    return values


ECHOES: dict[str, tuple[str, str, Callable[[Request], str]]] = {
    # name: (client_auth, params_in, what the endpoint echoes)
    "form-body": ("client_secret_post", "body", lambda r: r.body.decode()),
    "query-string": ("client_secret_post", "query", lambda r: urlencode(r.query, doseq=True)),
    "basic-header": ("client_secret_basic", "body", lambda r: r.headers["authorization"]),
    "basic-decoded": (
        "client_secret_basic",
        "body",
        lambda r: base64.b64decode(r.headers["authorization"][6:]).decode(),
    ),
    "raw-values": ("client_secret_post", "body", lambda r: " ".join(_form_values(r))),
    "percent-encoded": (
        "client_secret_post",
        "query",
        lambda r: " ".join(quote(v, safe="") for v in _form_values(r)),
    ),
}


@pytest.mark.parametrize("echo", list(ECHOES))
def test_echoed_request_is_scrubbed_from_the_error(echo: str) -> None:
    """D14: an endpoint echoing the query, the form body or the Authorization header in
    its error_description: the AuthError's str and repr hold no spelling of the password
    or the client secret (raw, quote_plus, quote, Base64 Basic credentials)."""
    client_auth, params_in, render = ECHOES[echo]
    echoed: list[str] = []

    def app(request: Request) -> Response:
        text = render(request)
        echoed.append(text)
        description = f"echo: {text}"
        return Response.json(400, {"error": "invalid_grant", "error_description": description})

    with LoopbackServer(app) as server:
        auth = OAuth2PasswordAuth(
            token_url=server.url + "/token",
            username="demo-user",
            password=PASSWORD,
            client_id=CLIENT_ID,
            client_secret=SECRET,
            client_auth=client_auth,
            spec=ProviderSpec(name="oauth2", params_in=params_in),  # type: ignore[arg-type]
        )
        with pytest.raises(CredentialsRejectedError) as info:
            auth.get_token()
    (wire,) = echoed
    forbidden = spellings(PASSWORD) | spellings(SECRET) | {basic_b64(CLIENT_ID, SECRET)}
    assert any(s in wire for s in forbidden), wire  # the endpoint did echo a secret
    error = info.value
    assert error.status_code == 400
    assert error.error == "invalid_grant"
    assert error.description.startswith("echo: ")
    assert "***" in error.description
    for text in (str(error), repr(error), error.description):
        for secret in forbidden:
            assert secret not in text, (secret, text)


# -- D15: an exception escaping user code during a token call --------------------------


class HookFailed(RuntimeError):
    """What the user's extra_params hook raises."""


def _shows(value: object) -> list[str]:
    """The repr and str of ``value``; one that fails (a half-built object) shows nothing."""
    texts = []
    for show in (repr, str):
        try:
            texts.append(show(value))
        except Exception:  # a half-built object may fail to show itself
            texts.append("")
    return texts


def frame_locals(exc: BaseException) -> list[tuple[str, str]]:
    """(where, str and repr) of every local of every frame of ``exc`` and its chain,
    taken now (the test's own frame is among them and still running)."""
    shown: list[tuple[str, str]] = []
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            for name, value in tb.tb_frame.f_locals.items():
                where = f"{Path(code.co_filename).name}:{code.co_name}:{name}"
                shown += [(where, text) for text in _shows(value)]
            tb = tb.tb_next
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return shown


def obtain(auth: BaseAuth, mode: str) -> Token:
    """A token through the sync or the async path."""
    return auth.get_token() if mode == "sync" else asyncio.run(auth.aget_token())


def hooked_auth(hook: ExtraParams, client_auth: str, *, seeded: bool) -> OAuth2PasswordAuth:
    """An auth whose spec runs ``hook``; ``seeded``: it holds an expired token with a
    refresh token. Built here so that no frame of the test itself holds a secret."""
    token = {"access_token": "a" * 24, "refresh_token": REFRESH, "expires_at": 0}
    return OAuth2PasswordAuth(
        token_url="http://127.0.0.1:9/token",  # never reached: the hook fails first
        username="demo-user",
        password=PASSWORD,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        client_auth=client_auth,
        spec=ProviderSpec(name="oauth2", extra_params=hook),
        token=token if seeded else None,
    )


@pytest.mark.parametrize("grant", ["password", "refresh_token"])
@pytest.mark.parametrize("client_auth", ["client_secret_post", "client_secret_basic"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_failing_hook_is_wrapped_and_frames_hold_no_secret(
    mode: str, client_auth: str, grant: str
) -> None:
    """D15: a user's extra_params hook that raises: TokenEndpointError raised from the
    hook's exception, and no local of any frame in the chain shows the password, the
    client secret or the refresh token (str or repr, in any spelling)."""
    raised: list[HookFailed] = []

    def hook(grant_type: str) -> dict[str, str]:
        error = HookFailed(f"hook failed for {grant_type}")
        raised.append(error)
        raise error

    auth = hooked_auth(hook, client_auth, seeded=grant == "refresh_token")
    with pytest.raises(TokenEndpointError) as info:
        obtain(auth, mode)
    error = info.value
    shown = frame_locals(error)
    assert len(raised) == 1
    assert error.__cause__ is raised[0]
    assert f"HookFailed: hook failed for {grant}" in str(error)
    forbidden = (
        spellings(PASSWORD)
        | spellings(SECRET)
        | spellings(REFRESH)
        | {basic_b64(CLIENT_ID, SECRET)}
    )
    for where, text in shown:
        for secret in forbidden:
            assert secret not in text, (where, secret)
    frames = {where.rsplit(":", 1)[0] for where, _ in shown}
    # The hook's own frame, Authlib's preparing client and authplug's encoder were seen.
    assert {"test_hardening_safety.py:hook", "authlib.py:_encode"} <= frames, frames


# -- E16: plain-http API and verify=False ----------------------------------------------


def send_via_proxy(kind: str, auth: BaseAuth, proxy: str, urls: list[str]) -> list[int]:
    """GET each URL through ``proxy`` (the emulator) with one kind of client."""
    if kind == "requests":
        with requests.Session() as session:
            session.auth = auth
            return [session.get(u, proxies={"http": proxy}, timeout=10).status_code for u in urls]
    if kind == "httpx":
        with httpx.Client(auth=auth, proxy=proxy, timeout=10) as client:
            return [client.get(u).status_code for u in urls]

    async def go() -> list[int]:
        async with httpx.AsyncClient(auth=auth, proxy=proxy, timeout=10) as client:
            return [(await client.get(u)).status_code for u in urls]

    return asyncio.run(go())


@pytest.mark.parametrize("kind", ["requests", "httpx", "httpx_async"])
def test_plain_http_warns_once_per_auth_and_origin(
    emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture, kind: str
) -> None:
    """E16: a Bearer token over http:// to a non-loopback host logs one WARNING per auth
    object and origin; 127.0.0.1, localhost and ::1 never warn. (The emulator serves as
    the HTTP proxy, so ``api.example.test`` needs no DNS.)"""
    proxy = emulator.server_url
    port = emulator.server_url.rsplit(":", 1)[1]
    loopback = [
        f"http://127.0.0.1:{port}/api/resource",
        f"http://localhost:{port}/api/resource",
        f"http://LOCALHOST:{port}/api/resource",
        f"http://[::1]:{port}/api/resource",
    ]
    first = password_auth(emulator)
    assert send_via_proxy(kind, first, proxy, loopback) == [200] * 4
    assert not [r for r in authplug_warnings(authlog) if "plain http" in r.getMessage()]
    remote = ["http://api.example.test/api/resource", "http://api.example.test:8080/api/x"]
    assert send_via_proxy(kind, first, proxy, remote * 3) == [200] * 6
    second = password_auth(emulator)
    assert send_via_proxy(kind, second, proxy, remote[:1] * 2 + loopback) == [200] * 6
    plain = [r.getMessage() for r in authplug_warnings(authlog) if "plain http" in r.getMessage()]
    assert len(plain) == 3, plain
    assert sum("to http://api.example.test: " in m for m in plain) == 2
    assert sum("to http://api.example.test:8080: " in m for m in plain) == 1
    assert len(emulator.api_log) == 16
    assert all((hit.authorization or "").startswith("Bearer ") for hit in emulator.api_log)
    assert emulator.token_calls == {"password": 2}


def test_verify_false_warns_once(
    emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture
) -> None:
    """E16: verify=False logs one WARNING when the auth object is built, not per call;
    the default (verify=True) logs none."""
    password_auth(emulator)
    assert authplug_warnings(authlog) == []
    auth = password_auth(emulator, verify=False)
    assert len(authplug_warnings(authlog)) == 1
    assert "verify=False" in authplug_warnings(authlog)[0].getMessage()
    with httpx.Client(auth=auth, timeout=10) as client:
        assert client.get(emulator.api_url()).status_code == 200
        assert client.get(emulator.api_url()).status_code == 200
    assert len(authplug_warnings(authlog)) == 1


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("localhost.", True),
        ("10.0.0.1", False),
        ("192.168.1.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("localhostx", False),
        ("127.0.0.1.example.com", False),
        ("0.0.0.0", False),  # noqa: S104 - a host name to classify, nothing is bound
        ("::", False),
        ("", False),
    ],
)
def test_is_loopback_table(host: str, expected: bool) -> None:
    """E16: what counts as loopback for plain http: loopback IPs, localhost, and
    ``*.localhost`` only when it resolves to loopback; nothing else."""
    assert is_loopback(host) is expected


def test_dot_localhost_counts_only_when_it_resolves_to_loopback() -> None:
    """E16: ``a.localhost`` is loopback only if this host resolves it to loopback
    addresses (many resolvers know nothing of it: then it is not)."""
    try:
        found = [str(address[4][0]) for address in socket.getaddrinfo("a.localhost", None)]
    except OSError:
        found = []
    resolves_to_loopback = bool(found) and all(a.startswith(("127.", "::1")) for a in found)
    assert is_loopback("a.localhost") is resolves_to_loopback
    assert is_loopback("A.LocalHost.") is resolves_to_loopback
