"""Lifecycle hardening: closed loops, forks, bounded waits, refusals, pickling, TLS.

Each test guards one fix and fails without it: a flight whose event loop was closed
strands nobody, a forked child does not wait on its parent's flight, waiters give up
after the wait limit, a permanent 401 stops costing token calls, auth objects refuse to
be pickled (tokens do pickle), and auth objects share one SSL context per TLS setting.
Counted, never timed: the only durations are generous safety nets against a hang.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import os
import pickle
import signal
import ssl
import sys
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
import requests

from authplug import (
    AuthError,
    BaseAuth,
    OAuth2ClientCredentialsAuth,
    OAuth2PasswordAuth,
    Token,
    TokenEndpointError,
)
from authplug._call import transport as transport_module
from authplug._renew.manager import REFUSAL_QUIET
from authplug.cache import MemoryTokenCache
from authplug.providers import PROVIDERS
from authplug.testing import EMULATORS, FakeClock, MogoplusEmulator, OAuth2Emulator, Request
from authplug.testing import Response as EmulatorResponse

from .conftest import Driver, make_driver, password_auth
from .gated import GatedEmulator

T = TypeVar("T")

#: The longest any step may take before the test calls it stranded (a safety net).
SAFETY = 30.0


class RefusingApiEmulator(OAuth2Emulator):
    """The token endpoint works; the API refuses every token, even a fresh one."""

    def _api(self, request: Request, path: str) -> EmulatorResponse:
        return super()._api(request, "/deny")  # the emulator's own 401 + WWW-Authenticate


@pytest.fixture
def gated() -> Iterator[GatedEmulator]:
    with GatedEmulator() as emulator:
        try:
            yield emulator
        finally:
            emulator.release()


def _bounded(call: Callable[[], T], limit: float = SAFETY) -> T:
    """Run ``call`` in a daemon thread; fail (instead of hanging) if it never returns."""
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        pytest.fail(f"still waiting after {limit:.0f}s: the caller was stranded")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


async def _until_arrived(emulator: GatedEmulator) -> None:
    """Turn the loop until the held token call has reached the endpoint."""
    for _ in range(int(SAFETY * 100)):
        if emulator.arrived.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the token call never reached the endpoint")


class LoopOnlyCache(MemoryTokenCache):
    """A cache only an event loop can drive (as a redis.asyncio client): async callers
    then lead token calls in tasks on their loop, which may be closed under them."""

    serves_sync = False


def _loop_auth(emulator: OAuth2Emulator, **options: Any) -> BaseAuth:
    return password_auth(emulator, cache=LoopOnlyCache(), **options)


def _stopped_loop_leading(auth: BaseAuth, emulator: GatedEmulator) -> asyncio.AbstractEventLoop:
    """A loop (stopped, still open) whose detached task leads a held token call.

    The caller's ``wait_for(…, 0.2)`` gives up; the leader task stays behind, its
    request at the endpoint.
    """
    emulator.hold_next(1)
    loop = asyncio.new_event_loop()
    with pytest.raises((TimeoutError, asyncio.TimeoutError)):
        loop.run_until_complete(asyncio.wait_for(auth.aget_token(), 0.2))
    loop.run_until_complete(_until_arrived(emulator))
    return loop


def _issued(emulator: OAuth2Emulator) -> list[str]:
    """The access tokens the token endpoint issued, in the order it answered."""
    return [entry.issued for entry in emulator.journal if entry.issued is not None]


def _warnings(log: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [
        r.getMessage()
        for r in log.records
        if r.name == "authplug" and r.levelname == "WARNING" and words in r.getMessage()
    ]


def _thread_waits_on_flight(thread: threading.Thread) -> bool:
    """The thread is inside ``Flight.wait`` (waiting on someone else's token call)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "wait" and code.co_filename.endswith("_renew/flight.py"):
            return True
        frame = frame.f_back
    return False


def _task_waits_on_flight(auth: BaseAuth) -> bool:
    """An asyncio task waits on the current flight (it registered its wake-up)."""
    flight = auth._manager._flight
    return flight is not None and bool(flight._callbacks)


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(SAFETY * 100)):
        if condition():
            return
        time.sleep(0.01)
    pytest.fail(f"never happened: {what}")


# -- B4: a closed event loop does not strand the flight ------------------------------------


@pytest.mark.parametrize("kind", ["requests", "httpx"])
def test_closed_loop_does_not_strand_sync_clients(
    gated: GatedEmulator, kind: str, authlog: pytest.LogCaptureFixture
) -> None:
    """B4: after the loop leading a token call is closed, sync requests get a new token.

    The flight led by a task of a closed loop can never end; the next caller abandons
    it and leads a new one instead of waiting on it (for the whole wait limit, or
    forever). A new loop's async request then works too.
    """
    auth = _loop_auth(gated)
    loop = _stopped_loop_leading(auth, gated)
    loop.close()
    driver = make_driver(kind)
    try:
        result = _bounded(lambda: driver.send(auth, "GET", gated.api_url()))
    finally:
        driver.close()
    assert result.status == 200
    assert gated.token_calls == {"password": 2}  # the stranded call and the new one
    assert gated.api_log[-1].authorization == f"Bearer {_issued(gated)[-1]}"
    assert len(_warnings(authlog, "abandoned (its event loop was closed)")) == 1

    async def in_a_new_loop() -> int:
        async with httpx.AsyncClient(auth=auth, timeout=10) as client:
            return (await client.get(gated.api_url())).status_code

    assert asyncio.run(asyncio.wait_for(in_a_new_loop(), SAFETY)) == 200
    assert gated.token_calls == {"password": 2}


def test_closed_loop_does_not_strand_a_new_loop(
    gated: GatedEmulator, authlog: pytest.LogCaptureFixture
) -> None:
    """B4: an async request timed out and its loop closed; a new loop's requests succeed.

    The first loop's async httpx request led the token call and was cut short by
    ``wait_for``; the leader task died with its loop. A new loop must not wait on that
    flight: it gets its own token, and a sync request afterwards shares it.
    """
    auth = _loop_auth(gated)
    gated.hold_next(1)
    first = asyncio.new_event_loop()
    try:
        client = httpx.AsyncClient(auth=auth, timeout=10)
        with pytest.raises((TimeoutError, asyncio.TimeoutError)):
            first.run_until_complete(asyncio.wait_for(client.get(gated.api_url()), 0.2))
        first.run_until_complete(_until_arrived(gated))
    finally:
        first.close()

    async def in_a_new_loop() -> tuple[int, Token]:
        async with httpx.AsyncClient(auth=auth, timeout=10) as fresh:
            status = (await fresh.get(gated.api_url())).status_code
        return status, await auth.aget_token()

    status, token = asyncio.run(asyncio.wait_for(in_a_new_loop(), SAFETY))
    assert status == 200
    assert gated.token_calls == {"password": 2}
    assert token.access_token == _issued(gated)[-1]
    with requests.Session() as session:
        session.auth = auth
        assert session.get(gated.api_url(), timeout=10).status_code == 200
    assert gated.token_calls == {"password": 2}
    assert len(_warnings(authlog, "abandoned (its event loop was closed)")) == 1


@pytest.mark.parametrize("waiter", ["thread", "task"])
def test_waiter_notices_its_leaders_loop_closing(gated: GatedEmulator, waiter: str) -> None:
    """B4: a caller already waiting when the leader's loop is closed leads a new call.

    It waits on a flight led by a task of another (stopped) loop. When that loop is
    closed, the waiter notices within a poll and gets a token, instead of waiting out
    the wait limit (over two minutes with the defaults) or, for a task, forever.
    """
    auth = _loop_auth(gated)
    loop = _stopped_loop_leading(auth, gated)
    statuses: list[int] = []

    def sync_waiter() -> None:
        with requests.Session() as session:
            session.auth = auth
            statuses.append(session.get(gated.api_url(), timeout=10).status_code)

    async def async_waiter() -> None:
        async with httpx.AsyncClient(auth=auth, timeout=10) as client:
            statuses.append((await client.get(gated.api_url())).status_code)

    def task_waiter() -> None:
        asyncio.run(asyncio.wait_for(async_waiter(), SAFETY))

    thread = threading.Thread(
        target=sync_waiter if waiter == "thread" else task_waiter, daemon=True
    )
    thread.start()
    try:
        if waiter == "thread":
            _wait_for(lambda: _thread_waits_on_flight(thread), "the thread waits")
        else:
            _wait_for(lambda: _task_waits_on_flight(auth), "the task waits")
        assert gated.token_calls == {"password": 1}
    finally:
        loop.close()
        thread.join(SAFETY)
    assert not thread.is_alive(), "the waiter was stranded on the closed loop's flight"
    assert statuses == [200]
    assert gated.token_calls == {"password": 2}


def test_every_waiter_of_an_abandoned_flight_joins_the_next(gated: GatedEmulator) -> None:
    """B4: when the leader's loop closes under four waiting threads, all four get a token.

    The first to notice abandons the flight and leads a new one; the others must join
    that one, not receive an "abandoned" error. One new token call serves them all.
    """
    auth = _loop_auth(gated)
    loop = _stopped_loop_leading(auth, gated)
    outcomes: list[str] = []

    def waiter() -> None:
        try:
            outcomes.append(auth.get_token().access_token)
        except AuthError as exc:
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=waiter, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            _wait_for(functools.partial(_thread_waits_on_flight, thread), "the threads wait")
    finally:
        loop.close()
        for thread in threads:
            thread.join(SAFETY)
    assert len(set(outcomes)) == 1, outcomes
    assert outcomes[0] in _issued(gated)
    assert gated.token_calls == {"password": 2}


# -- B5: a forked child starts clean -------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_wait_on_the_parents_flight(gated: GatedEmulator) -> None:
    """B5: a child forked during the parent's token call gets its own token.

    A parent thread is inside a token call (held at the endpoint) when the process
    forks. That thread does not exist in the child, so the inherited flight would never
    end; the child must start with no flight and a lock of its own, make its own token
    call and succeed.
    """
    # Warm every import a request makes: forking during Authlib's first import
    # deadlocks the child on the import lock.
    with requests.Session() as session:
        session.auth = password_auth(gated)
        assert session.get(gated.api_url(), timeout=10).status_code == 200
    gated.reset_counters()

    auth = password_auth(gated)
    gated.hold_next(1)
    parent_tokens: list[Token] = []
    leader = threading.Thread(target=lambda: parent_tokens.append(auth.get_token()), daemon=True)
    leader.start()
    assert gated.arrived.wait(SAFETY), "the parent's token call never arrived"

    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(read_end)
            with requests.Session() as session:
                session.auth = auth
                response = session.get(gated.api_url(), timeout=10)
            sent = response.request.headers.get("Authorization", "")
            os.write(write_end, str(sent).encode())
            code = 0 if response.status_code == 200 else 2
        except BaseException:
            code = 3
        finally:
            os._exit(code)

    os.close(write_end)
    try:
        deadline = time.monotonic() + SAFETY
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the child waited on the flight it inherited; killed it")
            time.sleep(0.02)
        with os.fdopen(read_end, "rb") as pipe:
            child_header = pipe.read().decode()
    finally:
        gated.release()
        leader.join(SAFETY)

    assert os.waitstatus_to_exitcode(status) == 0
    assert not leader.is_alive()
    assert gated.token_calls == {"password": 2}  # the parent's call and the child's own
    issued = _issued(gated)
    assert child_header in {f"Bearer {token}" for token in issued}
    assert parent_tokens[0].access_token in issued
    assert child_header != f"Bearer {parent_tokens[0].access_token}"


# -- B6: waiters are bounded ---------------------------------------------------------------


def test_waiters_give_up_on_a_stuck_leader(
    gated: GatedEmulator, authlog: pytest.LogCaptureFixture
) -> None:
    """B6: async and sync waiters of a flight that never ends give up with an error.

    The leader is a task of a loop that stopped running while its token call hangs at
    the endpoint: the flight outlives the wait limit (``timeout=0.5, retries=0``: the
    token call's worst case plus 5 s). Tasks (``aget_token`` and async requests) and
    threads (requests, httpx) waiting on it end with TokenEndpointError instead of
    waiting forever, and make no token call of their own; the next caller abandons the
    stuck flight and gets a token.
    """
    auth = _loop_auth(gated, timeout=0.5, retries=0)
    # The limit is the call's worst case plus 5 s of allowance for a cache's waits; no
    # cache waits here, so a shorter one keeps the test short (the logic is the same).
    auth._manager._wait_limit = 1.5
    loop = _stopped_loop_leading(auth, gated)
    try:
        sync_outcomes: list[object] = []

        def sync_waiter(use_httpx: bool) -> None:
            try:
                if use_httpx:
                    with httpx.Client(auth=auth, timeout=10) as client:
                        sync_outcomes.append(client.get(gated.api_url()).status_code)
                else:
                    with requests.Session() as session:
                        session.auth = auth
                        sync_outcomes.append(session.get(gated.api_url(), timeout=10).status_code)
            except Exception as exc:
                sync_outcomes.append(exc)

        threads = [
            threading.Thread(target=sync_waiter, args=(flag,), daemon=True)
            for flag in (False, True)
        ]
        for thread in threads:
            thread.start()

        async def async_waiters() -> list[object]:
            async with httpx.AsyncClient(auth=auth, timeout=10) as client:
                calls: list[Awaitable[object]] = [auth.aget_token() for _ in range(3)]
                calls += [client.get(gated.api_url()) for _ in range(3)]
                return list(await asyncio.gather(*calls, return_exceptions=True))

        async_outcomes = asyncio.run(asyncio.wait_for(async_waiters(), SAFETY))
        for thread in threads:
            thread.join(SAFETY)
        assert not any(thread.is_alive() for thread in threads)

        for outcome in [*async_outcomes, *sync_outcomes]:
            assert isinstance(outcome, TokenEndpointError), outcome
            assert "gave up after" in str(outcome)
        assert len(async_outcomes) == 6
        assert len(sync_outcomes) == 2
        assert gated.token_calls == {"password": 1}  # the stuck call only

        token = _bounded(auth.get_token)
        assert gated.token_calls == {"password": 2}
        assert token.access_token == _issued(gated)[-1]
        assert len(_warnings(authlog, "abandoned (stuck)")) == 1
    finally:
        loop.close()


# -- B8: a refusal after a refusal ---------------------------------------------------------


def test_permanent_refusal_pauses_renewal(
    driver: Driver, clock: FakeClock, authlog: pytest.LogCaptureFixture
) -> None:
    """B8: an API that refuses even fresh tokens stops costing token calls for a while.

    Password grant, no refresh tokens. The first request fetches a token, is refused,
    renews, replays and is refused again: renewal then pauses for REFUSAL_QUIET seconds
    (one warning saying so and for how long); refusals in that time are handed back
    with no token call. Past the pause a refusal renews again.
    """
    with RefusingApiEmulator(issue_refresh_tokens=False) as emulator:
        auth = password_auth(emulator, clock=clock)
        url = emulator.api_url()
        first = driver.send(auth, "GET", url)
        assert (first.status, first.history) == (401, 1)
        assert emulator.token_calls == {"password": 2}
        assert emulator.api_calls == 2

        for _ in range(3):
            clock.advance(REFUSAL_QUIET / 4)
            quiet = driver.send(auth, "GET", url)
            assert (quiet.status, quiet.history) == (401, 0)
        assert emulator.token_calls == {"password": 2}
        assert emulator.api_calls == 5
        paused = _warnings(authlog, "without renewing")
        assert len(paused) == 1
        assert f"for {REFUSAL_QUIET:.0f}s" in paused[0]

        clock.advance(REFUSAL_QUIET / 4 + 1)
        again = driver.send(auth, "GET", url)
        assert (again.status, again.history) == (401, 1)
        assert emulator.token_calls == {"password": 3}
        assert emulator.api_calls == 7
        assert len(_warnings(authlog, "without renewing")) == 2


# -- E18: tokens pickle, auth objects refuse to --------------------------------------------


def _unpickled(token: Token, protocol: int) -> Token:
    """The token through a pickle round trip (our own bytes, nothing untrusted)."""
    twin = pickle.loads(pickle.dumps(token, protocol))  # noqa: S301
    assert isinstance(twin, Token)
    return twin


def test_token_pickles_and_copies_to_an_equal_value(emulator: OAuth2Emulator) -> None:
    """E18: a Token survives pickle, copy and deepcopy equal, and still masks secrets.

    Its ``extra`` is a read-only mapping view, which cannot be pickled or deep-copied
    as it is.
    """
    fetched = password_auth(emulator).get_token()
    built = Token.from_dict(
        {
            "access_token": "access-0123456789abcdef-WXYZ",
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": "refresh-0123456789abcdef-QRST",
            "scope": ["read", "write"],
            "refresh_expires_at": 1_800_003_600.0,
            "id_token": "header.payload.signature",
            "nested": {"a": [1, 2, {"b": None}]},
        },
        now=1_800_000_000.0,
    )
    for token in (fetched, built):
        copies = [_unpickled(token, p) for p in range(pickle.HIGHEST_PROTOCOL + 1)]
        copies += [copy.copy(token), copy.deepcopy(token)]
        for twin in copies:
            assert isinstance(twin, Token)
            assert twin == token
            assert dict(twin.extra) == dict(token.extra)
            shown = repr(twin)
            assert token.access_token not in shown
            assert token.refresh_token is None or token.refresh_token not in shown
    assert built.refresh_token is not None
    restored = _unpickled(built, pickle.DEFAULT_PROTOCOL)
    assert restored.refresh_token == built.refresh_token
    assert restored.extra["nested"] == {"a": [1, 2, {"b": None}]}


def _every_auth_class() -> Iterator[tuple[str, BaseAuth, list[str]]]:
    """One object of every auth class in authplug, after a token call, with its secrets."""
    with OAuth2Emulator() as generic:
        password = password_auth(generic)
        credentials = OAuth2ClientCredentialsAuth(
            token_url=generic.token_url,
            client_id=generic.client_id or "",
            client_secret=generic.client_secret or "",
        )
        for name, auth in (("password", password), ("client_credentials", credentials)):
            token = auth.get_token()
            secrets = [generic.password, generic.client_secret or "", token.access_token]
            yield name, auth, secrets
    for name, emulator_class in EMULATORS.items():
        with emulator_class() as emulator:
            kwargs = emulator.auth_kwargs()
            auth = PROVIDERS[name](**kwargs)
            token = auth.get_token()
            secrets = [token.access_token]
            secrets += [kwargs[k] for k in ("password", "client_secret") if kwargs.get(k)]
            yield name, auth, secrets


def _refusals(auth: BaseAuth) -> list[str]:
    """The TypeError messages of pickling (every protocol), copying and deep-copying."""
    attempts: list[tuple[Callable[..., object], tuple[object, ...]]] = [
        (pickle.dumps, (auth, protocol)) for protocol in range(pickle.HIGHEST_PROTOCOL + 1)
    ]
    attempts += [(copy.copy, (auth,)), (copy.deepcopy, (auth,))]
    messages = []
    for function, args in attempts:
        with pytest.raises(TypeError) as info:
            function(*args)
        messages.append(str(info.value))
    return messages


def test_auth_objects_refuse_pickling_with_advice() -> None:
    """E18: pickling or copying any auth object is a TypeError that says what to do.

    They hold credentials and live state (locks, a flight): a copy would share the
    flight, a pickle would carry the secrets. The message names the way out (one object
    per process, a shared token cache) and no secret.
    """
    seen: set[type[BaseAuth]] = set()
    for name, auth, secrets in _every_auth_class():
        seen.add(type(auth))
        for message in _refusals(auth):
            assert type(auth).__name__ in message, name
            assert "cannot be pickled or copied" in message
            assert "Build one in each process" in message
            assert "FileTokenCache" in message
            assert "RedisTokenCache" in message
            for secret in secrets:
                assert secret not in message, name
    assert seen == {OAuth2PasswordAuth, OAuth2ClientCredentialsAuth, *PROVIDERS.values()}


# -- F19: one SSL context per TLS setting --------------------------------------------------


def test_auth_objects_share_one_ssl_context_per_setting() -> None:
    """F19: fifty auth objects with the same TLS settings build and use one SSL context.

    A context loads a CA bundle (hundreds of kilobytes) and a client certificate; one
    per auth object would cost that fifty times. Each object makes a real mutual-TLS
    token call with it. A different ``verify`` gets a context of its own, and a
    caller's own SSLContext is used as it is.
    """
    with MogoplusEmulator() as emulator:
        kwargs = emulator.auth_kwargs()
        ca_file = kwargs["verify"]

        def settings_for(verify: object) -> list[tuple[object, ...]]:
            return [key for key in transport_module._contexts if key[0] == verify]

        assert settings_for(ca_file) == []
        auths = [PROVIDERS["mogoplus"](**kwargs) for _ in range(50)]
        for auth in auths:
            auth.get_token()
        assert emulator.token_calls == {"client_credentials": 50}
        assert len(settings_for(ca_file)) == 1
        contexts = {id(auth._client._transport._context()) for auth in auths}
        assert len(contexts) == 1
        shared = auths[0]._client._transport._context()
        assert transport_module.ssl_context(ca_file, emulator.client_cert) is shared

        without_cert = transport_module.ssl_context(ca_file, None)
        assert without_cert is not shared
        assert transport_module.ssl_context(ca_file, None) is without_cert
        assert len(settings_for(ca_file)) == 2  # one per distinct (verify, cert)

        other = PROVIDERS["mogoplus"](**{**kwargs, "verify": True})
        system = other._client._transport._context()
        assert system is not shared
        assert transport_module.ssl_context(True, emulator.client_cert) is system

        own = emulator.client_ssl_context()
        assert transport_module.ssl_context(own, None) is own
        unverified = transport_module.ssl_context(False, None)
        assert unverified.verify_mode == ssl.CERT_NONE
        assert unverified is not transport_module.ssl_context(True, None)
