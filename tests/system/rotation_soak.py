"""The rotation soak: a fleet of worker processes renewing one token by rotating refresh
tokens, leaving and being replaced while their refreshes are in flight.

:func:`soak` runs one cell (one server, one cache, one way of leaving) and returns its
counts, read on the server (token answers by outcome, family revocations) and from the
workers (the final status of every request, the exceptions). ``benchmarks/rotation.py``
prints them as a table; ``tests/system/test_rotation_fleet.py`` runs a short version.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

REPO_ROOT = Path(__file__).resolve().parents[2]


def _worker_env() -> dict[str, str]:
    """The workers import the authplug this process imported, and these tests."""
    import authplug

    where = [str(Path(authplug.__file__).resolve().parents[1]), str(REPO_ROOT)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(where)}


class SoakServer(Protocol):
    """What the soak needs of a harness (DjangoOAuthServer, OidcProviderServer)."""

    name: str
    token_url: str
    api_url: str
    holding_url: str  # {"holding": N}: refresh answers the server holds back right now

    def stats(self) -> Counter[str]: ...
    def reset_counts(self) -> None: ...


#: Access tokens live 4 s at DOT, 5 s at oidc-provider (whole seconds, and its clock's
#: second may end at once): renewed from 2.5 s and 3 s on, before the server's expiry.
#: Shorter lives (1.5 s, renewed every 0.5 s while a refresh answer is held 0.3 s) make
#: a token due again before the fleet has adopted it: a replay then meets the next
#: rotation (one replay per request), which no client can turn into a 200.
LIFETIME = {"dot": 4, "oidc": 5}
LEEWAY = {"dot": 1.5, "oidc": 2.0}


@contextlib.contextmanager
def rotating_server(name: str, refresh_delay: float) -> Iterator[Any]:
    """``"dot"`` (django-oauth-toolkit, rotation with reuse protection) or ``"oidc"``
    (oidc-provider, ``rotateRefreshToken``), each holding a refresh answer
    ``refresh_delay`` seconds after it has rotated."""
    if name == "dot":
        from tests.servers.django_oauth import DjangoOAuthServer

        with DjangoOAuthServer(
            access_token_lifetime=LIFETIME["dot"],
            run_migrations=False,
            reuse_protection=True,
            refresh_delay=refresh_delay,
        ) as dot:
            yield dot
        return
    from tests.servers.oidc_provider import OidcProviderServer

    with OidcProviderServer(
        password_grant=True,
        rotate_refresh_tokens=True,
        extra_config={
            "ttl": {"AccessToken": LIFETIME["oidc"]},
            "refresh_delay_ms": int(refresh_delay * 1000),
        },
    ) as oidc:
        yield oidc


@dataclass
class Plan:
    """One cell of the soak."""

    cache: str  # "file:PATH" or "redis:PORT"
    mode: str  # "exit", "sigterm", "loop", "sigkill" (see tests/system/rotation_worker.py)
    client_id: str
    client_secret: str
    username: str | None = None
    password: str | None = None
    token: dict[str, Any] | None = None  # credentials without a working full grant
    processes: int = 8
    threads: int = 16
    renewals: int = 100
    time_limit: float = 300.0
    pause: tuple[float, float] = (0.2, 0.6)
    leeway: float = 1.0
    leave_at_refresh: float = 0.5
    leave_delay: tuple[float, float] = (0.0, 0.1)  # after the server holds our refresh
    lifetime: float = 20.0
    after_kill: float = 4.0  # with "sigkill": seconds the fleet goes on after the kill
    kill_marker: str | None = None
    log: str | None = None  # the workers' log lines (DEBUG) go to this file


@dataclass
class Result:
    """What one cell counted."""

    server: Counter[str]
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    left: Counter[str] = field(default_factory=Counter)
    started: int = 0
    seconds: float = 0.0

    def answers(self, outcome: str) -> int:
        """Token answers with ``outcome`` (``ok``, ``invalid_grant``, ...), every grant."""
        return sum(n for key, n in self.server.items() if key.endswith(f":{outcome}"))

    @property
    def renewals(self) -> int:
        """Tokens the server issued after the first one."""
        return max(0, self.server["refresh_token:ok"] + self.full_grants - 1)

    @property
    def full_grants(self) -> int:
        return sum(
            n
            for key, n in self.server.items()
            if key.endswith(":ok") and not key.startswith(("refresh_token:", "api:"))
        )

    @property
    def refresh_calls(self) -> int:
        return sum(n for key, n in self.server.items() if key.startswith("refresh_token:"))

    @property
    def invalid_grant(self) -> int:
        return self.answers("invalid_grant")

    @property
    def revocations(self) -> int:
        """Token families the server revoked (DOT's reuse protection, oidc-provider's
        ``grant.revoked``)."""
        return self.server["family_revocations"] + self.server["grant_revocations"]

    @property
    def fallbacks(self) -> int:
        """Full grants after the first token: renewals that did not refresh."""
        return max(0, self.full_grants - 1)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def not_200(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != "200")


class _Process:
    """A worker and the thread that reads its lines."""

    def __init__(self, config: dict[str, Any], lines: queue.Queue[dict[str, Any]]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.system.rotation_worker"],
            cwd=REPO_ROOT,
            env=_worker_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        with contextlib.suppress(OSError):
            self.process.stdin.write(json.dumps(config).encode() + b"\n")
            self.process.stdin.flush()
        self.reader = threading.Thread(
            target=self._read, args=(self.process.stdout, lines), daemon=True
        )
        self.reader.start()

    @staticmethod
    def _read(stdout: IO[bytes], lines: queue.Queue[dict[str, Any]]) -> None:
        for line in stdout:
            with contextlib.suppress(ValueError):
                lines.put(json.loads(line))

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # the worker stops and reports

    def reap(self, timeout: float) -> None:
        self.close()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _config(server: SoakServer, plan: Plan) -> dict[str, Any]:
    config: dict[str, Any] = {
        "cache": plan.cache,
        "token_url": server.token_url,
        "api_url": server.api_url,
        "holding_url": server.holding_url,
        "client_id": plan.client_id,
        "client_secret": plan.client_secret,
        "threads": plan.threads,
        "pause": list(plan.pause),
        "leeway": plan.leeway,
        "mode": plan.mode,
        "leave_at_refresh": plan.leave_at_refresh,
        "leave_delay": list(plan.leave_delay),
        "lifetime": plan.lifetime,
        "kill_marker": plan.kill_marker,
        "log": plan.log,
    }
    if plan.token is not None:
        config["token"] = plan.token
    else:
        config["username"] = plan.username
        config["password"] = plan.password
    return config


def soak(server: SoakServer, plan: Plan) -> Result:
    """Run ``plan`` against ``server`` until ``plan.renewals`` tokens were issued after the
    first (or ``plan.time_limit`` seconds; with ``"sigkill"``, ``plan.after_kill``
    seconds after the kill), replacing every worker that leaves."""
    server.reset_counts()
    config = _config(server, plan)
    lines: queue.Queue[dict[str, Any]] = queue.Queue()
    result = Result(server=Counter())
    started = time.monotonic()
    workers = [_Process(config, lines) for _ in range(plan.processes)]
    result.started = len(workers)
    killed_at: float | None = None
    checked = 0.0
    try:
        while True:
            now = time.monotonic()
            killed_at = _drain(lines, result, killed_at, now)
            if now - started > plan.time_limit:
                break
            if killed_at is not None and now - killed_at > plan.after_kill:
                break
            if now - checked > 0.5:
                checked = now
                if Result(server=server.stats()).renewals >= plan.renewals:
                    break
            for index, worker in enumerate(workers):
                if worker.process.poll() is not None:
                    worker.reap(5)
                    workers[index] = _Process(config, lines)
                    result.started += 1
            time.sleep(0.05)
    finally:
        for worker in workers:
            worker.close()
        for worker in workers:
            worker.reap(40)
    _drain(lines, result, killed_at, time.monotonic())
    result.seconds = time.monotonic() - started
    result.server = server.stats()
    return result


def _drain(
    lines: queue.Queue[dict[str, Any]], result: Result, killed_at: float | None, now: float
) -> float | None:
    while True:
        try:
            line = lines.get_nowait()
        except queue.Empty:
            return killed_at
        if "status" in line:
            result.statuses.update(line["status"])
        elif "error" in line and "call" not in line:
            result.errors[f"{line['error']}: {line['message']}"] += 1
        elif "call" in line:
            result.calls[f"{line['call']}:{line['outcome']}"] += 1
        elif "leaving" in line:
            how = line["leaving"] + (" in flight" if line["in_flight"] else "")
            result.left[how] += 1
            if line["leaving"] == "sigkill":
                killed_at = now
