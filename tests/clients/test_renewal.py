"""Renewal off the request path: stale while revalidate, backoff, spread, scope, lifecycle.

A token due for renewal but still valid goes out at once while one renewal runs in the
background (a daemon thread for sync callers, a detached task for async ones). These
tests prove it against real servers on loopback, with a FakeClock moved by hand:
requests complete while the token endpoint is held open, failing renewals cost no
request and back off, refused credentials are logged once, due times spread over a
window, ``refresh_in`` is obeyed, ``insufficient_scope`` refusals are handed back,
closing stops background renewals, and neither process exit nor fork is held up.
Counted, never timed: the only durations are safety nets against a hang.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import math
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import aiohttp
import httpx
import pytest
import requests

from authplug import BaseAuth, OAuth2PasswordAuth, TokenEndpointError
from authplug._renew import pool as _pool
from authplug._renew import renewal as renewal_module
from authplug._renew import schedule
from authplug._renew.schedule import BACKOFF_CAP, JITTER, SPREAD_MAX
from authplug.spec import GENERIC
from authplug.testing import FakeClock, OAuth2Emulator, Request, asettle, settle
from authplug.testing import Response as EmulatorResponse
from authplug.testing._server import _RequestHandler, _Server

from ..conftest import Driver
from ..forked import wait_for_child
from ..gated import GatedEmulator

#: The longest any step may take before the test calls it stranded (a safety net).
SAFETY = 30.0
#: Seconds each emulator token lives.
LIFETIME = 3600.0
#: authplug's default leeway.
LEEWAY = 60.0
#: Past every due time of a fresh token (at most LIFETIME - LEEWAY), before its expiry.
IN_WINDOW = LIFETIME - LEEWAY + 10
#: Backoff tests use a wider leeway so that 60 one-second steps stay before expiry.
WIDE_LEEWAY = 120.0
#: One-second steps through an outage.
STEPS = 60

RENEWAL_THREAD = "authplug-renewal"


# -- emulators -------------------------------------------------------------------------


class FlakyEmulator(OAuth2Emulator):
    """Token calls of the grant types in ``failing`` answer 503 (an outage)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.failing: set[str] = set()

    def check_request(self, request: Request, params: dict[str, str]) -> EmulatorResponse | None:
        if params.get("grant_type") in self.failing:
            page = b"<html><head><title>503 Service Unavailable</title></head></html>"
            return EmulatorResponse(503, page, {"Content-Type": "text/html"})
        return super().check_request(request, params)


class RefreshInEmulator(OAuth2Emulator):
    """Token answers say when to renew: ``refresh_in`` seconds after issue."""

    refresh_in = 600

    def token_body(
        self, access: str, refresh: str | None, lifetime: float | None
    ) -> dict[str, Any]:
        body = super().token_body(access, refresh, lifetime)
        body["refresh_in"] = self.refresh_in
        return body


SCOPE_CHALLENGE = 'Bearer error="insufficient_scope", scope="reports:write"'
SCOPE_PATHS = {
    "/reports": SCOPE_CHALLENGE,
    # Two challenges in one header: the Bearer one is read, not the first one.
    "/reports-multi": f'Basic realm="api", {SCOPE_CHALLENGE}',
}


class ScopedApiEmulator(OAuth2Emulator):
    """An API that refuses some paths for lack of scope.

    ``/api/reports`` and ``/api/reports-multi`` answer 401 with an
    ``insufficient_scope`` Bearer challenge to any valid token (``scope_hits`` counts
    them). ``/api/bare`` refuses an invalid token with 401 and no challenge at all;
    every other path is the emulator's own (401 ``invalid_token`` for a bad token).
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.scope_hits: list[str | None] = []

    def _api(self, request: Request, path: str) -> EmulatorResponse:
        if path in SCOPE_PATHS:
            header = request.headers.get("authorization")
            with self._lock:
                self.scope_hits.append(header)
            return EmulatorResponse(
                401,
                b'{"error": "insufficient_scope"}',
                {"WWW-Authenticate": SCOPE_PATHS[path], "Content-Type": "application/json"},
            )
        response = super()._api(request, path)
        if path == "/bare" and response.status == 401:
            return EmulatorResponse(401, b"", {})
        return response


class Doorway:
    """A token URL on a port of its own that can be shut (connections refused).

    It serves the emulator's token endpoint while open. Shut, nothing listens on its
    port: a token call meets a refused connection, as with an unreachable provider.
    Reopened, it listens on the same port again.
    """

    def __init__(self, emulator: OAuth2Emulator) -> None:
        self._emulator = emulator
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.token_url = f"http://127.0.0.1:{self.port}{emulator.token_path}"
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        server = _Server(("127.0.0.1", self.port), _RequestHandler)  # SO_REUSEADDR
        server.app = self._emulator.handle
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread

    def shut(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None and thread is not None:
            server.shutdown()
            thread.join(SAFETY)
            server.server_close()


# -- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture
def gated() -> Iterator[GatedEmulator]:
    with GatedEmulator() as emulator:
        try:
            yield emulator
        finally:
            emulator.release()


def _auth(emulator: OAuth2Emulator, *, token_url: str | None = None, **options: Any) -> BaseAuth:
    """The password grant against an emulator (or another URL for its token endpoint)."""
    return OAuth2PasswordAuth(
        token_url=token_url or emulator.token_url,
        username=emulator.username,
        password=emulator.password,
        client_id=emulator.client_id,
        client_secret=emulator.client_secret,
        **options,
    )


def _issued(emulator: OAuth2Emulator) -> list[str]:
    """The access tokens the token endpoint issued, in the order it answered."""
    return [entry.issued for entry in emulator.journal if entry.issued is not None]


def _records(log: pytest.LogCaptureFixture, level: int, words: str = "") -> list[str]:
    """Messages of the "authplug" logger at exactly ``level`` that contain ``words``."""
    return [
        r.getMessage()
        for r in log.records
        if r.name == "authplug" and r.levelno == level and words in r.getMessage()
    ]


def _renewal_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == RENEWAL_THREAD}


def _drain() -> None:
    """Wait for every renewal to end, and prove that each one does.

    ``settle()`` already waits for a leader's logging and ``on_token``; this also shows
    that no renewal lingers (idle workers of the renewal pool may, briefly).
    """
    assert _pool.quiet(SAFETY), "a renewal never ended"


def _current(auth: BaseAuth) -> str:
    token = auth.token
    assert token is not None
    return token.access_token


def _sent(emulator: OAuth2Emulator) -> str | None:
    """The Authorization header of the last API request."""
    return emulator.api_log[-1].authorization


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Turn the event loop until ``condition()`` holds."""
    deadline = time.monotonic() + SAFETY
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.01)


# -- 1. stale while revalidate: nobody waits for a renewal held open -------------------


class Sent(NamedTuple):
    """One request of a wave: its status, the header it carried, and whether the held
    renewal was still open at the endpoint when its answer arrived."""

    kind: str
    status: int
    authorization: str
    held_open: bool


RUNS: dict[str, dict[str, int]] = {
    "requests": {"requests": 32},
    "httpx": {"httpx": 32},
    "httpx_async": {"httpx_async": 200},
    "aiohttp": {"aiohttp": 200},
    "all": {"requests": 32, "httpx": 32, "httpx_async": 200, "aiohttp": 200},
}


async def _wave(
    auth: BaseAuth, url: str, gated: GatedEmulator, counts: Mapping[str, int]
) -> list[Sent]:
    """Send ``counts[kind]`` requests of each kind at once: threads with requests,
    threads with httpx.Client, tasks with httpx.AsyncClient and with aiohttp (the auth
    object as the session's middleware). Raw clients, no settling."""
    outcomes: list[Sent] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    go = threading.Event()
    context = ssl.create_default_context()  # one for all httpx clients (plain http here)

    def record(kind: str, response: Any) -> None:
        if kind == "aiohttp":
            status, headers = response.status, response.request_info.headers
        else:
            status, headers = response.status_code, response.request.headers
        sent = Sent(kind, status, str(headers.get("Authorization", "")), gated.holding > 0)
        with lock:
            outcomes.append(sent)

    def with_requests() -> None:
        try:
            with requests.Session() as session:
                session.auth = auth
                go.wait(SAFETY)
                record("requests", session.get(url, timeout=10))
        except BaseException as exc:
            errors.append(exc)

    def with_httpx() -> None:
        try:
            with httpx.Client(auth=auth, timeout=10, verify=context) as client:
                go.wait(SAFETY)
                record("httpx", client.get(url))
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=with_requests, daemon=True)
        for _ in range(counts.get("requests", 0))
    ]
    threads += [
        threading.Thread(target=with_httpx, daemon=True) for _ in range(counts.get("httpx", 0))
    ]
    for thread in threads:
        thread.start()
    limits = httpx.Limits(max_connections=20)
    clients = [
        httpx.AsyncClient(auth=auth, timeout=10, limits=limits, verify=context) for _ in range(10)
    ]

    async def one(index: int) -> None:
        record("httpx_async", await clients[index % len(clients)].get(url))

    session = aiohttp.ClientSession(middlewares=(auth,), connector=aiohttp.TCPConnector(limit=20))

    async def with_aiohttp() -> None:
        async with session.get(url) as response:
            await response.read()
        record("aiohttp", response)

    try:
        go.set()
        await asyncio.gather(
            *(one(i) for i in range(counts.get("httpx_async", 0))),
            *(with_aiohttp() for _ in range(counts.get("aiohttp", 0))),
        )
        await _until(lambda: not any(t.is_alive() for t in threads), "the threads end")
    finally:
        for client in clients:
            await client.aclose()
        await session.close()
    assert errors == []
    return outcomes


@pytest.mark.parametrize("run", list(RUNS))
def test_requests_during_a_held_renewal_all_go_out_with_the_current_token(
    gated: GatedEmulator, clock: FakeClock, run: str
) -> None:
    """Stale while revalidate: nothing waits for a renewal, and there is one renewal.

    The token is in its renewal window; its renewal (a refresh) is held open at the
    token endpoint. A first wave of concurrent requests (threads with requests, threads
    with httpx.Client, tasks with httpx.AsyncClient, or all three at once) finds the
    token due: one of them starts the renewal, all go out at once with the current
    token. A second wave, sent once the renewal is known to be held at the endpoint,
    completes entirely while it is still held: every request answered 200 with the
    old token. The endpoint saw one token call. After release and settle, the next
    requests carry the renewed token, and there was still only that one renewal.
    """
    counts = RUNS[run]
    total = sum(counts.values())
    auth = _auth(gated, clock=clock)
    old = f"Bearer {auth.get_token().access_token}"
    gated.reset_counters()
    clock.advance(IN_WINDOW)
    gated.hold_next(1)
    url = gated.api_url()

    async def scenario() -> None:
        tasks_before = len(asyncio.all_tasks())
        first = await _wave(auth, url, gated, counts)
        assert len(first) == total
        assert {(s.status, s.authorization) for s in first} == {(200, old)}
        await _until(gated.arrived.is_set, "the renewal reaches the token endpoint")
        # A renewal thread leads it, whoever started it (the loop may end meanwhile):
        # no task is left on the loop.
        assert {t.daemon for t in _renewal_threads()} == {True}
        assert len(_renewal_threads()) >= 1
        assert len(asyncio.all_tasks()) == tasks_before

        second = await _wave(auth, url, gated, counts)
        completed_while_held = [s for s in second if s.held_open and s.status == 200]
        assert len(completed_while_held) == total
        assert {s.authorization for s in second} == {old}
        assert Counter(s.kind for s in second) == counts
        assert gated.holding == 1
        assert gated.token_calls == {"refresh_token": 1}
        assert _issued(gated) == []  # the renewal has not been answered yet
        assert auth.token is not None
        assert f"Bearer {auth.token.access_token}" == old

        gated.release()
        await asettle(auth)
        (new,) = _issued(gated)
        after = await _wave(auth, url, gated, dict.fromkeys(counts, 1))
        assert {(s.status, s.authorization) for s in after} == {(200, f"Bearer {new}")}
        assert gated.token_calls == {"refresh_token": 1}
        assert gated.api_calls == 2 * total + len(counts)

    asyncio.run(asyncio.wait_for(scenario(), 4 * SAFETY))


# -- 2. outages: failing renewals cost no request and back off ------------------------


def _expected_gap(index: int) -> tuple[int, int]:
    """Bounds of the one-second steps between attempt ``index`` and the next.

    The pause after failure ``index + 1`` is min(1 * 2**index, cap) stretched by less
    than 25%; the next attempt is the first step at or after it.
    """
    base = min(2.0**index, BACKOFF_CAP)
    return math.ceil(base), math.ceil(base * (1 + JITTER))


def _attempt_bounds(steps: int) -> tuple[int, int]:
    """How many attempts fit in steps 0..steps: the shortest and longest gaps."""
    counts = []
    for pick in (1, 0):  # longest gaps first: fewest attempts
        at, count = 0, 1
        while True:
            at += _expected_gap(count - 1)[pick]
            if at > steps:
                break
            count += 1
        counts.append(count)
    return counts[0], counts[1]


def _step_through(
    driver: Driver,
    auth: BaseAuth,
    emulator: OAuth2Emulator,
    clock: FakeClock,
    steps: int,
    attempted: Callable[[], int],
) -> tuple[list[int], list[int], list[str | None]]:
    """A request at each one-second step 0..steps; returns (statuses, attempt steps,
    headers sent). ``attempted()`` counts renewal attempts so far."""
    statuses: list[int] = []
    attempts: list[int] = []
    headers: list[str | None] = []
    for step in range(steps + 1):
        if step:
            clock.advance(1)
        before = attempted()
        statuses.append(driver.send(auth, "GET", emulator.api_url()).status)
        _drain()
        headers.append(_sent(emulator))
        if attempted() > before:
            assert attempted() == before + 1
            attempts.append(step)
    return statuses, attempts, headers


OUTAGES = ("503", "refresh_refused_grant_503", "unreachable")


@pytest.mark.parametrize("outage", OUTAGES)
def test_failing_background_renewal_costs_no_request_and_backs_off(
    driver: Driver, clock: FakeClock, authlog: pytest.LogCaptureFixture, outage: str
) -> None:
    """An outage of the token endpoint while the token is due costs no request.

    The token is in its window; the endpoint fails: every token call answers 503, or
    the refresh is refused (400) and the full grant answers 503, or nothing listens on
    the token URL at all. One request per FakeClock second for 60 s: all 200 with the
    current token. Background attempts are spaced by the backoff (1, 2, 4, 8 s, then
    10 s, each stretched by less than 25%): each gap lies within those bounds, so 8 or
    9 attempts in 61 steps (``retries=0``: one token call per attempt). The first
    failure is a WARNING, the others INFO. When the endpoint recovers, the first
    successful renewal replaces the token: the next request carries the new one.
    """
    with FlakyEmulator() as emulator:
        door = Doorway(emulator) if outage == "unreachable" else None
        if door is not None:
            door.open()
        try:
            auth = _auth(
                emulator,
                token_url=door.token_url if door else None,
                clock=clock,
                retries=0,
                leeway=WIDE_LEEWAY,
            )
            assert driver.send(auth, "GET", emulator.api_url()).status == 200
            old = _current(auth)
            emulator.reset_counters()
            if outage == "503":
                emulator.failing = {"refresh_token", "password"}
            elif outage == "refresh_refused_grant_503":
                emulator.reject_refresh = True
                emulator.failing = {"password"}
            elif door is not None:
                door.shut()
            clock.advance(LIFETIME - WIDE_LEEWAY)  # due, whatever the draw; 120 s left

            def warned() -> int:
                return len(_records(authlog, logging.WARNING, "background token renewal"))

            def attempts_logged() -> int:
                return warned() + len(
                    _records(authlog, logging.INFO, "background token renewal failed")
                )

            statuses, attempts, headers = _step_through(
                driver, auth, emulator, clock, STEPS, attempts_logged
            )
            assert statuses == [200] * (STEPS + 1)
            assert set(headers) == {f"Bearer {old}"}
            assert attempts[0] == 0
            gaps = [b - a for a, b in itertools.pairwise(attempts)]
            for index, gap in enumerate(gaps):
                low, high = _expected_gap(index)
                assert low <= gap <= high, (attempts, index)
            fewest, most = _attempt_bounds(STEPS)
            assert (fewest, most) == (8, 9)
            assert fewest <= len(attempts) <= most, attempts
            assert warned() == 1  # the first failure warns; the next ones are INFO
            n = len(attempts)
            if outage == "503":
                assert emulator.token_calls == {"refresh_token": n}
            elif outage == "refresh_refused_grant_503":
                assert emulator.token_calls == {"refresh_token": n, "password": n}
            else:
                assert emulator.token_calls == {}
            assert emulator.api_calls == STEPS + 1

            # Recovery: step on until a renewal succeeds; it replaces the token.
            emulator.failing = set()
            if door is not None:
                door.open()
            for _ in range(2 * int(BACKOFF_CAP)):
                clock.advance(1)
                result = driver.send(auth, "GET", emulator.api_url())
                assert result.status == 200
                assert _sent(emulator) == f"Bearer {old}"  # renewed behind this request
                if _current(auth) != old:
                    break
            else:
                pytest.fail("no renewal after the endpoint recovered")
            (new,) = _issued(emulator)
            assert _current(auth) == new
            assert driver.send(auth, "GET", emulator.api_url()).status == 200
            assert _sent(emulator) == f"Bearer {new}"
            _drain()
            assert _records(authlog, logging.INFO, f"token renewed after {n} failed attempts")
        finally:
            if door is not None:
                door.shut()


def test_hard_expiry_during_an_outage_hands_the_caller_the_renewal_error(
    driver: Driver, clock: FakeClock
) -> None:
    """At hard expiry callers wait for a renewal and get its error.

    The endpoint answers 503 to every token call. In the window, the failing background
    renewal costs nothing (200 with the current token). Once the token has expired, a
    request waits for a renewal made on its own path, whatever the backoff: it gets
    that renewal's TokenEndpointError (an AuthError, HTTP 503) and sends nothing to
    the API. A caller within the next second gets the remembered error without a token
    call. When the endpoint recovers, the next request renews and succeeds.
    """
    with FlakyEmulator() as emulator:
        auth = _auth(emulator, clock=clock, retries=0)
        assert driver.send(auth, "GET", emulator.api_url()).status == 200
        old = _current(auth)
        emulator.reset_counters()
        emulator.failing = {"refresh_token", "password"}
        clock.advance(IN_WINDOW)
        assert driver.send(auth, "GET", emulator.api_url()).status == 200
        assert emulator.token_calls == {"refresh_token": 1}

        clock.advance(LIFETIME - IN_WINDOW + 5)  # expired; the last failure is 55 s old
        with pytest.raises(TokenEndpointError) as info:
            driver.send(auth, "GET", emulator.api_url())
        assert info.value.status_code == 503
        assert emulator.token_calls == {"refresh_token": 2}
        with pytest.raises(TokenEndpointError):
            driver.send(auth, "GET", emulator.api_url())
        assert emulator.token_calls == {"refresh_token": 2}  # remembered, no call
        assert emulator.api_calls == 1
        assert _current(auth) == old

        emulator.failing = set()
        clock.advance(2)
        assert driver.send(auth, "GET", emulator.api_url()).status == 200
        assert emulator.token_calls == {"refresh_token": 3}
        (new,) = _issued(emulator)
        assert _sent(emulator) == f"Bearer {new}"  # renewed on the request path


# -- 3. refused credentials: one ERROR, attempts at the cap ----------------------------


def test_refused_credentials_log_one_error_and_retry_at_the_cap(
    driver: Driver, clock: FakeClock, authlog: pytest.LogCaptureFixture
) -> None:
    """A background renewal whose credentials are refused logs ERROR once.

    The refresh token is refused and the password changed at the provider: each
    background attempt is a refresh (400) then a full grant (400,
    CredentialsRejectedError). Over 60 one-second steps every request succeeds with
    the current token, attempts come at the first step at least 10 s (the cap, stretched
    by less than 25%) after the previous one, and exactly one ERROR record comes from
    "authplug", without the password.
    When the credentials work again the next attempt renews the token; a later refusal
    is logged at ERROR again.
    """
    with OAuth2Emulator() as emulator:
        auth = _auth(emulator, clock=clock, retries=0, leeway=WIDE_LEEWAY)
        password = emulator.password
        assert driver.send(auth, "GET", emulator.api_url()).status == 200
        old = _current(auth)
        emulator.reset_counters()
        emulator.reject_refresh = True
        emulator.password = "changed-at-the-provider"
        clock.advance(LIFETIME - WIDE_LEEWAY)

        def attempted() -> int:
            return emulator.token_calls["password"]

        statuses, attempts, headers = _step_through(driver, auth, emulator, clock, STEPS, attempted)
        assert statuses == [200] * (STEPS + 1)
        assert set(headers) == {f"Bearer {old}"}
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        assert attempts[0] == 0
        assert all(BACKOFF_CAP <= gap <= math.ceil(BACKOFF_CAP * (1 + JITTER)) for gap in gaps)
        assert 5 <= len(attempts) <= 7, attempts
        n = len(attempts)
        assert emulator.token_calls == {"refresh_token": n, "password": n}
        errors = _records(authlog, logging.ERROR)
        assert len(errors) == 1, errors
        assert "refused the credentials" in errors[0]
        assert password not in errors[0]
        assert _records(authlog, logging.WARNING, "background token renewal") == []

        emulator.password = password  # fixed at the provider
        for _ in range(2 * int(BACKOFF_CAP)):
            clock.advance(1)
            assert driver.send(auth, "GET", emulator.api_url()).status == 200
            if _current(auth) != old:
                break
        else:
            pytest.fail("no renewal after the credentials were fixed")
        assert emulator.token_calls == {"refresh_token": n + 1, "password": n + 1}
        assert _issued(emulator) == [_current(auth)]

        emulator.password = "changed-again"
        clock.advance(LIFETIME - WIDE_LEEWAY)
        assert driver.send(auth, "GET", emulator.api_url()).status == 200
        assert emulator.token_calls["password"] == n + 2
        _drain()
        assert len(_records(authlog, logging.ERROR)) == 2  # logged again after a success


# -- 4. due times spread over a window -------------------------------------------------


class RenewalStarts(logging.Handler):
    """The providers whose background renewal failed, in order (one WARNING each)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.providers: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "background token renewal failed" in message:
            self.providers.append(message.partition(":")[0])


def test_each_object_renews_at_the_due_time_its_draw_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The renewer schedules a fetched token's renewal with ``due_at`` and its lifetime.

    Three objects with one-hour tokens, their draws fixed at 0, 0.5 and 0.9, start their
    background renewals exactly at 3540, 3390 and 3270 s (``LIFETIME - LEEWAY - draw *
    SPREAD_MAX``), none a second before. How the draws spread a fleet over the window is
    proven on ``due_at`` itself (tests/unit/test_schedule.py). The token URL is shut once
    the tokens are fetched, so a renewal is a quick refused connection whose first failure
    is logged with the object's name.
    """
    draws = {"wire-0": 0.0, "wire-1": 0.5, "wire-2": 0.9}
    expected = {name: int(LIFETIME - LEEWAY - d * SPREAD_MAX) for name, d in draws.items()}
    fixed = iter(draws.values())

    def entry_with_fixed_draw(token: Any, **options: Any) -> Any:
        value = next(fixed)  # one entry per fetched token: a second call fails the test
        return schedule.entry_for(token, **{**options, "draw": lambda: value})

    monkeypatch.setattr(renewal_module, "entry_for", entry_with_fixed_draw)
    clock = FakeClock()
    with OAuth2Emulator() as emulator:
        door = Doorway(emulator)
        door.open()
        try:
            auths = {
                name: _auth(
                    emulator,
                    token_url=door.token_url,
                    clock=clock,
                    retries=0,
                    spec=dataclasses.replace(GENERIC, name=name),
                )
                for name in draws
            }
            for auth in auths.values():
                auth.get_token()
        finally:
            door.shut()
        assert emulator.token_calls == {"password": len(draws)}

    starts = RenewalStarts()
    logger = logging.getLogger("authplug")
    logger.addHandler(starts)
    started_at: dict[str, int] = {}
    try:
        first = min(expected.values()) - 1
        clock.advance(first)
        for second in range(first, max(expected.values()) + 1):
            if second > first:
                clock.advance(1)
            for name, auth in auths.items():
                if name not in started_at:
                    auth.get_token()
            _drain()
            started, starts.providers = starts.providers, []
            for name in started:
                assert name not in started_at
                started_at[name] = second
    finally:
        logger.removeHandler(starts)
    assert started_at == expected


# -- 5. refresh_in sets the due time ---------------------------------------------------


def test_refresh_in_from_the_token_answer_sets_the_due_time(
    driver: Driver, clock: FakeClock
) -> None:
    """A ``refresh_in`` field (seconds after issue) is obeyed over the lifetime rule.

    Token answers carry ``expires_in: 3600`` and ``refresh_in: 600``. At 599 s a
    request makes no token call; at 601 s it goes out with the current token and one
    renewal runs in the background. The renewed token is due 600 s after its own issue.
    """
    with RefreshInEmulator() as emulator:
        auth = _auth(emulator, clock=clock)
        assert driver.send(auth, "GET", emulator.api_url()).status == 200
        old = _current(auth)
        assert emulator.token_calls == {"password": 1}

        clock.advance(599)
        assert driver.send(auth, "GET", emulator.api_url()).status == 200
        assert emulator.token_calls == {"password": 1}

        clock.advance(2)
        assert driver.send(auth, "GET", emulator.api_url()).status == 200
        assert _sent(emulator) == f"Bearer {old}"  # not held up by the renewal
        assert emulator.token_calls == {"password": 1, "refresh_token": 1}
        new = _current(auth)
        assert new != old
        assert driver.send(auth, "GET", emulator.api_url()).status == 200
        assert _sent(emulator) == f"Bearer {new}"

        clock.advance(599)
        assert driver.send(auth, "GET", emulator.api_url()).status == 200
        assert emulator.token_calls == {"password": 1, "refresh_token": 1}
        clock.advance(2)
        assert driver.send(auth, "GET", emulator.api_url()).status == 200
        assert emulator.token_calls == {"password": 1, "refresh_token": 2}


# -- 6. insufficient_scope is handed back -----------------------------------------------


def test_insufficient_scope_reaches_the_caller_without_a_token_call(
    driver: Driver, authlog: pytest.LogCaptureFixture
) -> None:
    """A refusal for lack of scope is the caller's; a stale token's is renewed.

    401 with ``WWW-Authenticate: Bearer error="insufficient_scope",
    scope="reports:write"`` (alone, or after a Basic challenge in the same header)
    reaches the caller untouched: no token call, no replay, one INFO record naming the
    scope. 401 with ``error="invalid_token"``, or with no challenge at all, still
    renews the token and replays the request.
    """
    with ScopedApiEmulator() as emulator:
        auth = _auth(emulator)
        assert driver.send(auth, "GET", emulator.api_url()).status == 200
        token = f"Bearer {_current(auth)}"
        assert emulator.token_calls == {"password": 1}

        for hit, path in enumerate(SCOPE_PATHS, start=1):
            result = driver.send(auth, "GET", emulator.api_url(path))
            assert (result.status, result.history) == (401, 0)
            assert result.data == {"error": "insufficient_scope"}
            assert emulator.token_calls == {"password": 1}
            assert emulator.scope_hits == [token] * hit  # not replayed
            scoped = _records(authlog, logging.INFO, "reports:write")
            assert len(scoped) == hit
            assert "lack of scope" in scoped[-1]
            assert path in scoped[-1]

        emulator.revoke_all()
        result = driver.send(auth, "GET", emulator.api_url())
        assert (result.status, result.history) == (200, 1)
        assert emulator.api_log[-2].authorization == token
        assert emulator.api_log[-2].status == 401
        assert emulator.token_calls == {"password": 1, "refresh_token": 1}

        emulator.revoke_all()
        result = driver.send(auth, "GET", emulator.api_url("/bare"))
        assert (result.status, result.history) == (200, 1)
        assert emulator.token_calls == {"password": 1, "refresh_token": 2}
        assert len(_records(authlog, logging.INFO, "reports:write")) == len(SCOPE_PATHS)


# -- 7. lifecycle: close, with, async with, process exit -------------------------------


def test_a_closed_auth_renews_only_on_the_request_path(driver: Driver, clock: FakeClock) -> None:
    """After ``close()`` no renewal runs in the background; requests still work.

    In the renewal window a request goes out with the current token and starts no
    renewal (no token call, no "authplug-renewal" thread). Once the token expires the
    next request renews on its own path, as on first use, and carries the new token.
    """
    with OAuth2Emulator() as emulator:
        auth = _auth(emulator, clock=clock)
        assert driver.send(auth, "GET", emulator.api_url()).status == 200
        old = _current(auth)
        auth.close()
        threads_before = _renewal_threads()
        clock.advance(IN_WINDOW)
        for _ in range(3):
            assert driver._send(auth, "GET", emulator.api_url()).status == 200
            assert _renewal_threads() <= threads_before
            settle(auth)
            assert _sent(emulator) == f"Bearer {old}"
        assert emulator.token_calls == {"password": 1}

        clock.advance(LIFETIME - IN_WINDOW)  # expired
        assert driver._send(auth, "GET", emulator.api_url()).status == 200
        assert emulator.token_calls == {"password": 1, "refresh_token": 1}
        (_, new) = _issued(emulator)
        assert _sent(emulator) == f"Bearer {new}"


def test_with_block_closes_the_auth(clock: FakeClock) -> None:
    """``with auth:`` yields the auth object and closes it on exit.

    Inside the block a due token is renewed in the background; after it, a due token
    is not (no token call) until it expires.
    """
    with OAuth2Emulator() as emulator, requests.Session() as session:
        with _auth(emulator, clock=clock) as auth:
            session.auth = auth
            assert session.get(emulator.api_url(), timeout=10).status_code == 200
            clock.advance(IN_WINDOW)
            assert session.get(emulator.api_url(), timeout=10).status_code == 200
            settle(auth)
            assert emulator.token_calls == {"password": 1, "refresh_token": 1}
        renewed = _current(auth)

        clock.advance(IN_WINDOW)
        assert session.get(emulator.api_url(), timeout=10).status_code == 200
        settle(auth)
        assert emulator.token_calls == {"password": 1, "refresh_token": 1}
        assert _sent(emulator) == f"Bearer {renewed}"
        clock.advance(LIFETIME - IN_WINDOW)
        assert session.get(emulator.api_url(), timeout=10).status_code == 200
        assert emulator.token_calls == {"password": 1, "refresh_token": 2}


@pytest.mark.parametrize("how", ["aclose", "async_with"])
async def test_closing_keeps_the_answer_of_a_renewal_under_way(
    gated: GatedEmulator, clock: FakeClock, how: str
) -> None:
    """Closing never throws away the answer of a token call that reached the endpoint.

    The token is due; an async request goes out at once with it and leaves a renewal
    whose refresh is held at the endpoint. ``await auth.aclose()`` (or leaving
    ``async with auth:``) returns while it is held, and leaves no task on the loop.
    Released, the renewal's token is stored: the next request carries it, without a
    token call. The closed auth renews no more in the background; at expiry a request
    renews on its own path.
    """
    auth = _auth(gated, clock=clock)
    url = gated.api_url()
    async with httpx.AsyncClient(auth=auth, timeout=10) as client:
        assert (await client.get(url)).status_code == 200
        old = _current(auth)
        gated.reset_counters()
        clock.advance(IN_WINDOW)
        gated.hold_next(1)
        mine = asyncio.current_task()

        async def held_renewal() -> None:
            response = await client.get(url)
            assert response.status_code == 200
            assert response.request.headers["Authorization"] == f"Bearer {old}"
            await _until(gated.arrived.is_set, "the renewal reaches the token endpoint")

        if how == "async_with":
            async with auth as entered:
                assert entered is auth
                await held_renewal()
        else:
            await held_renewal()
            await auth.aclose()
        assert asyncio.all_tasks() == {mine}
        assert gated.holding == 1
        assert gated.token_calls == {"refresh_token": 1}

        gated.release()
        await asettle(auth)
        (renewed,) = _issued(gated)
        assert _current(auth) == renewed

        response = await client.get(url)
        assert response.status_code == 200
        assert response.request.headers["Authorization"] == f"Bearer {renewed}"
        assert gated.token_calls == {"refresh_token": 1}

        clock.advance(IN_WINDOW)  # due again: closed, so no background renewal
        response = await client.get(url)
        assert response.request.headers["Authorization"] == f"Bearer {renewed}"
        assert _pool.quiet(SAFETY)
        assert gated.token_calls == {"refresh_token": 1}

        clock.advance(LIFETIME)
        response = await client.get(url)
        assert response.status_code == 200
        assert gated.token_calls == {"refresh_token": 2}
        (_, new) = _issued(gated)
        assert response.request.headers["Authorization"] == f"Bearer {new}"


EXITING_CHILD = """
import sys, threading
from authplug import OAuth2PasswordAuth
from authplug.testing import FakeClock

token_url, username, password, client_id, client_secret = sys.argv[1:6]
clock = FakeClock()
auth = OAuth2PasswordAuth(
    token_url=token_url, username=username, password=password,
    client_id=client_id, client_secret=client_secret, clock=clock, retries=0,
)
first = auth.get_token()
print("fetched", flush=True)
sys.stdin.readline()  # the parent now holds the next token call
clock.advance(float(sys.argv[6]))
again = auth.get_token()  # due: handed back at once, renewed by a daemon thread
print("same" if again.access_token == first.access_token else "changed", flush=True)
sys.stdin.readline()  # the renewal is held at the endpoint
alive = [t for t in threading.enumerate() if t.name == "authplug-renewal"]
print(f"renewal threads {len(alive)} daemon {all(t.daemon for t in alive)}", flush=True)
"""


def test_a_process_exits_while_its_renewal_is_held(gated: GatedEmulator) -> None:
    """A background renewal never keeps the process from exiting.

    A child Python process fetches a token from this process's emulator, finds it due
    and gets it back at once while its renewal thread (a daemon) makes a token call
    that the emulator holds open. The child then returns from its script: it exits
    with code 0 while that call is still held at the endpoint, unanswered.
    """
    kwargs = [
        gated.token_url,
        gated.username,
        gated.password,
        gated.client_id or "",
        gated.client_secret or "",
        str(IN_WINDOW),
    ]
    process = subprocess.Popen(
        [sys.executable, "-c", EXITING_CHILD, *kwargs],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(2 * SAFETY, process.kill)
    watchdog.start()
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stdout.readline() == "fetched\n"
        gated.hold_next(1)
        process.stdin.write("go\n")
        process.stdin.flush()
        assert process.stdout.readline() == "same\n"
        assert gated.arrived.wait(SAFETY), "the child's renewal never reached the endpoint"
        process.stdin.write("exit\n")
        process.stdin.flush()
        assert process.stdout.readline() == "renewal threads 1 daemon True\n"
        process.stdin.close()
        returncode = process.wait(SAFETY)
        still_held = gated.holding
        stderr = process.stderr.read() if process.stderr else ""
        process.stdout.close()
        if process.stderr:
            process.stderr.close()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert returncode == 0, stderr
    assert still_held == 1  # the child exited while its renewal was held open
    assert gated.token_calls == {"password": 1, "refresh_token": 1}
    assert len(_issued(gated)) == 1  # the held call was never answered before exit


# -- 8. fork: the child renews on its own ------------------------------------------------


def _child_renews(auth: BaseAuth, clock: FakeClock, url: str, when: str, old: str) -> int:
    """In a forked child: the exit code (0 when it renewed on its own)."""
    with requests.Session() as session:
        session.auth = auth
        if when == "expired":
            clock.advance(LIFETIME - IN_WINDOW + 10)
            response = session.get(url, timeout=10)
            sent = response.request.headers.get("Authorization")
            if response.status_code != 200 or sent in (None, f"Bearer {old}"):
                return 2
        else:  # due: its own background renewal, although the parent's one is held
            response = session.get(url, timeout=10)
            if response.status_code != 200:
                return 3
            settle(auth)
            if _current(auth) == old:
                return 4
            response = session.get(url, timeout=10)
            if response.request.headers.get("Authorization") != f"Bearer {_current(auth)}":
                return 5
    return 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("when", ["due", "expired"])
def test_a_forked_child_renews_on_its_own(
    gated: GatedEmulator, clock: FakeClock, when: str
) -> None:
    """A child forked during a held background renewal makes its own token call.

    The parent's token is due; its renewal thread's refresh is held at the endpoint.
    The process forks. The child does not wait on the inherited renewal: with the
    token still due it starts a renewal of its own in the background, and with the
    token expired it renews on the request path; either way it sends a token it got
    itself and exits 0, while the parent's call is still held. Released, the parent's
    renewal completes too: two token calls, two different tokens.
    """
    auth = _auth(gated, clock=clock, retries=0)
    url = gated.api_url()
    with requests.Session() as session:  # warm every import a request makes
        session.auth = auth
        assert session.get(url, timeout=10).status_code == 200
        old = _current(auth)
        gated.reset_counters()
        clock.advance(IN_WINDOW)
        gated.hold_next(1)
        response = session.get(url, timeout=10)
        assert response.status_code == 200
        assert response.request.headers["Authorization"] == f"Bearer {old}"
    assert gated.arrived.wait(SAFETY), "the parent's renewal never reached the endpoint"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            code = _child_renews(auth, clock, url, when, old)
        except BaseException:
            code = 9
        finally:
            os._exit(code)

    try:
        status = wait_for_child(pid, SAFETY, "the forked child never finished; killed it")
        held_at_exit = gated.holding
        calls_at_exit = gated.token_calls.copy()
        issued_at_exit = _issued(gated)
    finally:
        gated.release()
    assert os.waitstatus_to_exitcode(status) == 0
    assert held_at_exit == 1
    assert calls_at_exit == {"refresh_token": 2}  # the parent's (held) and the child's own
    (child_token,) = issued_at_exit  # the parent's call is still unanswered
    settle(auth)
    assert gated.token_calls == {"refresh_token": 2}
    issued = _issued(gated)
    assert len(issued) == 2
    assert issued[0] == child_token
    assert _current(auth) == issued[1] != child_token
    assert old not in issued
