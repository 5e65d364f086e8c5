"""A person's login kept in a FileTokenCache serves a fleet of processes on every client.

The person logs in once, here; worker processes (``tests/system/login_worker.py``) build
login objects with the same server, client, scope and cache and ``interactive=False``,
so that a login they needed would raise LoginRequiredError. Time is a FakeClock that the
emulator reads and that the workers read from a file: advancing it past the token's
lifetime is one expiry, for every process at once, and nothing sleeps.

The clients are spread over the processes (one process each: requests, httpx, httpx
asyncio, httpx trio, httpx2, httpx2 asyncio, aiohttp, niquests, niquests asyncio, those
importable here); when fewer than eight are importable, the first ones serve two
processes, and with nine the ninth shares the first process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authplug import FileTokenCache, OAuth2AuthorizationCodeAuth, OAuth2DeviceCodeAuth
from authplug.testing import FakeClock, HeadlessPerson, OAuth2Emulator

from ..conftest import ALL_CLIENTS

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(120)]

CLIENT_ID = "my-cli"
SCOPE = "openid offline_access api"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
LIFETIME = 3600.0  # the emulator's token lifetime: advancing the clock past it is one expiry
PROCESSES = 8
THREADS = 16
EXPIRIES = 20
GRACE = 1.0  # seconds given to other processes to arrive (never an assertion on time)
ROOT = Path(__file__).resolve().parents[2]
_NEEDS = {
    "httpx_trio": "trio",
    "httpx2": "httpx2",
    "httpx2_async": "httpx2",
    "aiohttp": "aiohttp",
    "niquests": "niquests",
    "niquests_async": "niquests",
}


def importable_clients() -> list[str]:
    """The driver kinds whose client is installed here."""
    return [
        kind
        for kind in ALL_CLIENTS
        if kind not in _NEEDS or importlib.util.find_spec(_NEEDS[kind]) is not None
    ]


def spread(kinds: list[str], processes: int) -> list[list[str]]:
    """Each process's clients: every kind in some process, every process with a kind."""
    shares: list[list[str]] = [[] for _ in range(processes)]
    for index, kind in enumerate(kinds):
        shares[index % processes].append(kind)
    for index, share in enumerate(shares):
        if not share:
            share.append(kinds[index % len(kinds)])
    return shares


class SharedClock:
    """The test's FakeClock, written to a file at each move for the workers to read."""

    def __init__(self, path: Path) -> None:
        self.fake = FakeClock()
        self.path = path
        self._write()

    def advance(self, seconds: float) -> None:
        self.fake.advance(seconds)
        self._write()

    def _write(self) -> None:
        # Written whole, then renamed: a worker never reads half a line.
        spare = self.path.with_suffix(".new")
        spare.write_text(f"{self.fake.monotonic()!r} {self.fake.time()!r}")
        os.replace(spare, self.path)


class Worker:
    """One worker process, driven a round at a time."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.system.login_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=os.environ | {"PYTHONPATH": _pythonpath()},
        )
        self.kinds = config["kinds"]
        self._tell(json.dumps(config))

    def _tell(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def _hear(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"worker {self.kinds} ended (exit status {self.process.poll()})"
        return line.strip()

    def ready(self) -> None:
        assert self._hear() == "ready"

    def go(self) -> None:
        self._tell("go")

    def result(self) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self._hear())
        return answer

    def stop(self) -> None:
        try:
            self.process.communicate("stop\n", timeout=30)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


def _pythonpath() -> str:
    """The worktree's package first, as for the test itself."""
    here = [str(ROOT / "src"), str(ROOT)]
    return os.pathsep.join(
        here + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )


class Fleet:
    """Worker processes sharing the test's cache, clock and emulator."""

    def __init__(self, shares: list[list[str]], base: dict[str, Any]) -> None:
        self.workers: list[Worker] = []
        for kinds in shares:
            self.workers.append(Worker(base | {"kinds": kinds}))
        for worker in self.workers:
            worker.ready()

    def round(self) -> list[dict[str, Any]]:
        """Every thread of every process sends one request, all at once."""
        for worker in self.workers:
            worker.go()
        return [worker.result() | {"kinds": worker.kinds} for worker in self.workers]

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def clock(tmp_path: Path) -> SharedClock:
    return SharedClock(tmp_path / "clock")


class SpentOnUse(dict[str, "float | bool"]):
    """The emulator's refresh tokens, each spent by its first presentation (the only
    ``get`` the emulator makes of them, under its lock): refresh tokens then rotate
    strictly, as at servers with reuse detection, and a process that sent a rotated-away
    one would get ``invalid_grant``, and then LoginRequiredError."""

    def get(self, key: str, default: float | bool | None = None) -> float | bool | None:  # type: ignore[override]
        return self.pop(key, default)


@pytest.fixture
def idp(clock: SharedClock) -> Iterator[OAuth2Emulator]:
    """A public client's server on the test's clock, whose refresh tokens rotate."""
    with OAuth2Emulator(
        client_id=CLIENT_ID, client_secret=None, token_lifetime=LIFETIME, clock=clock.fake
    ) as emulator:
        emulator._refresh = SpentOnUse()  # no knob for strict rotation: see the class
        yield emulator


def base_config(idp: OAuth2Emulator, clock: SharedClock, cache: Path, flow: str) -> dict[str, Any]:
    return {
        "flow": flow,
        "issuer": idp.issuer,
        "client_id": CLIENT_ID,
        "scope": SCOPE,
        "cache": str(cache),
        "clock": str(clock.path),
        "api_url": idp.api_url(),
        "threads": THREADS,
    }


def failures(results: list[dict[str, Any]]) -> list[Any]:
    """What went wrong in a round: errors, and statuses other than 200, by clients."""
    return [
        (r["kinds"], r["errors"], [s for s in r["statuses"] if s != 200])
        for r in results
        if r["errors"] or any(s != 200 for s in r["statuses"])
    ]


def test_after_one_login_a_fleet_through_20_expiries_makes_20_refreshes_and_no_prompt(
    idp: OAuth2Emulator, clock: SharedClock, tmp_path: Path
) -> None:
    """After one login, 8 processes x 16 threads, every client among them, through 20
    expiries make exactly 20 refresh calls, no other token call, and ask nobody."""
    cache = tmp_path / "logins"
    person = HeadlessPerson(idp)
    OAuth2AuthorizationCodeAuth(
        issuer=idp.issuer,
        client_id=CLIENT_ID,
        scope=SCOPE,
        cache=FileTokenCache(cache),
        clock=clock.fake,
        on_authorize=person.approve,
    ).login()
    assert idp.token_calls == {"authorization_code": 1}
    shares = spread(importable_clients(), PROCESSES)
    fleet = Fleet(shares, base_config(idp, clock, cache, "code"))
    try:
        first = fleet.round()  # the login from the cache, as it is
        assert failures(first) == []
        assert idp.token_calls == {"authorization_code": 1}
        for expiry in range(1, EXPIRIES + 1):
            clock.advance(LIFETIME + 1)
            results = fleet.round()
            assert failures(results) == [], f"expiry {expiry}"
            assert idp.token_calls["refresh_token"] == expiry, f"expiry {expiry}"
    finally:
        fleet.stop()
    assert idp.token_calls == {"authorization_code": 1, "refresh_token": EXPIRIES}
    assert person.prompts == 1
    assert idp.authorize_requests == 1
    assert idp.device_authorizations == 0
    assert idp.api_calls == PROCESSES * THREADS * (EXPIRIES + 1)


@pytest.mark.parametrize(("login_flow", "fleet_flow"), [("device", "code"), ("code", "device")])
def test_a_login_serves_the_other_flow_in_another_process(
    idp: OAuth2Emulator, clock: SharedClock, tmp_path: Path, login_flow: str, fleet_flow: str
) -> None:
    """A login made by one flow serves an object of the other flow with the same issuer,
    client id and scope in another process: no prompt, and it refreshes that login."""
    cache = tmp_path / "logins"
    person = HeadlessPerson(idp)
    common: dict[str, Any] = {
        "issuer": idp.issuer,
        "client_id": CLIENT_ID,
        "scope": SCOPE,
        "cache": FileTokenCache(cache),
        "clock": clock.fake,  # the device polls' waits advance it: nothing sleeps
    }
    if login_flow == "device":
        OAuth2DeviceCodeAuth(on_user_code=person.on_user_code, **common).login()
    else:
        OAuth2AuthorizationCodeAuth(on_authorize=person.approve, **common).login()
    clock.advance(0)  # the device polls moved the fake clock: the workers read it
    made = dict(idp.token_calls)
    assert sum(made.values()) == 1
    fleet = Fleet([["requests"]], base_config(idp, clock, cache, fleet_flow) | {"threads": 2})
    try:
        assert failures(fleet.round()) == []
        assert idp.token_calls == made  # the login as it is, from the cache
        clock.advance(LIFETIME + 1)
        assert failures(fleet.round()) == []
    finally:
        fleet.stop()
    assert idp.token_calls == made | {"refresh_token": 1}
    assert person.prompts == 1


def test_while_one_process_logs_in_the_others_wait_and_use_its_login(
    idp: OAuth2Emulator, clock: SharedClock, tmp_path: Path
) -> None:
    """Processes whose first requests come while another process's person is still
    deciding wait for that login (the cache's lock) and use it: no LoginRequiredError,
    one code exchange, one prompt."""
    cache = tmp_path / "logins"
    person = HeadlessPerson(idp)
    asked, answer = threading.Event(), threading.Event()

    def on_authorize(url: str) -> None:
        asked.set()
        answer.wait(GRACE * 20)
        person.approve(url)

    auth = OAuth2AuthorizationCodeAuth(
        issuer=idp.issuer,
        client_id=CLIENT_ID,
        scope=SCOPE,
        cache=FileTokenCache(cache),
        clock=clock.fake,
        on_authorize=on_authorize,
    )
    shares = [["requests"], ["httpx_async"]]
    fleet = Fleet(shares, base_config(idp, clock, cache, "code") | {"threads": 4})
    login = threading.Thread(target=auth.login)
    try:
        login.start()
        assert asked.wait(GRACE * 20)
        for worker in fleet.workers:
            worker.go()
        # Time for their requests to reach the lock; one that came later would find the
        # login done and pass too (the test would then prove less, never fail wrongly).
        pending = [worker.process.stdout for worker in fleet.workers if worker.process.stdout]
        assert select.select(pending, [], [], GRACE)[0] == []  # all still waiting
        answer.set()
        login.join(GRACE * 20)
        assert failures([w.result() | {"kinds": w.kinds} for w in fleet.workers]) == []
    finally:
        answer.set()
        fleet.stop()
    assert idp.token_calls == {"authorization_code": 1}
    assert person.prompts == 1
    assert idp.api_calls == 2 * 4
