"""One worker process of the login fleet: threads sending requests with one login object
that finds the person's login in a shared FileTokenCache and never asks anyone.

Run as ``python -m tests.system.login_worker``; the first line on stdin is the
configuration, one JSON object:

* ``flow``: ``"code"`` (OAuth2AuthorizationCodeAuth) or ``"device"`` (OAuth2DeviceCodeAuth);
* ``issuer``, ``client_id``, ``scope``, ``cache`` (the FileTokenCache's path);
* ``clock``: the file the test writes its FakeClock's readings to (``monotonic time``);
  this process reads its time there, so that the test moves every process's clock,
  and the emulator's, at once;
* ``kinds``: the clients to send with (``tests/conftest.py``'s driver kinds), spread
  over ``threads`` threads, each thread with a driver (a session, or an event loop and
  an async client) of its own.

It builds its object with ``interactive=False``: a login it needed would raise
LoginRequiredError, reported like any other error. It prints ``ready``; then, for each
``go`` line on stdin, every thread sends one request, all released together, and it
prints one JSON line: ``{"statuses": [...], "errors": [...]}``. It returns at ``stop``
or at the end of stdin.
"""

from __future__ import annotations

import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from authplug import FileTokenCache, OAuth2AuthorizationCodeAuth, OAuth2DeviceCodeAuth
from authplug.auth import BaseAuth

from ..conftest import make_driver


class FileClock:
    """A clock (authplug's ``Clock`` protocol) that reads the test's FakeClock from a file."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)

    def _read(self) -> tuple[float, float]:
        monotonic, wall = self._path.read_text().split()
        return float(monotonic), float(wall)

    def monotonic(self) -> float:
        return self._read()[0]

    def time(self) -> float:
        return self._read()[1]

    def sleep(self, seconds: float) -> None:
        # A retry's backoff: the test's clock does not move for it, so wait for real.
        threading.Event().wait(seconds)

    async def asleep(self, seconds: float) -> None:
        import anyio

        await anyio.sleep(seconds)


def make_auth(config: dict[str, Any]) -> BaseAuth:
    """The login object of this process: the same server, client, scope and cache as the
    test's, and nobody to ask."""
    options: dict[str, Any] = {
        "issuer": config["issuer"],
        "client_id": config["client_id"],
        "scope": config["scope"],
        "cache": FileTokenCache(config["cache"]),
        "clock": FileClock(config["clock"]),
        "interactive": False,
    }
    if config["flow"] == "device":
        return OAuth2DeviceCodeAuth(**options)
    return OAuth2AuthorizationCodeAuth(**options)


def main() -> None:
    config = json.loads(sys.stdin.readline())
    auth = make_auth(config)
    url = config["api_url"]
    count = int(config["threads"])
    kinds = config["kinds"]
    drivers = [make_driver(kinds[index % len(kinds)]) for index in range(count)]
    barrier = threading.Barrier(count)
    errors: list[str] = []

    def one(index: int) -> int:
        barrier.wait()
        try:
            return drivers[index].send(auth, "GET", url).status
        except Exception as exc:  # reported to the test, which shows it
            errors.append(f"{drivers[index].kind}: {type(exc).__name__}: {exc}")
            return 0

    print("ready", flush=True)
    with ThreadPoolExecutor(count) as pool:
        for line in sys.stdin:
            if line.strip() != "go":
                break
            errors.clear()
            statuses = list(pool.map(one, range(count)))
            print(json.dumps({"statuses": statuses, "errors": errors}), flush=True)
    for driver in drivers:
        driver.close()
    auth.close()


if __name__ == "__main__":
    main()
