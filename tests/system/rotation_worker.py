"""One worker process of the rotation soak: threads sending requests with one auth object
that shares its tokens through a FileTokenCache or a RedisTokenCache, and that may leave
while a refresh it started is on the wire.

Run as ``python -m tests.system.rotation_worker``; the first line on stdin is the configuration,
one JSON object (not an argument: a process list would show the credentials):

* ``cache``: ``"file:PATH"`` or ``"redis:PORT"``;
* ``token_url``, ``api_url``, ``client_id``, ``client_secret``;
* ``username`` and ``password`` (the password grant), or ``token`` (a token dict handed
  in, and a client credentials object whose server refuses that grant: credentials with
  no full grant that works);
* ``threads``, ``pause`` (``[min, max]`` seconds between two requests of a thread),
  ``leeway``;
* ``mode``, how this process leaves: ``"exit"`` (the main thread returns, the interpreter
  exits), ``"sigterm"`` or ``"sigkill"`` (sent to itself), ``"loop"`` (the threads run
  each job in its own ``asyncio.run()``, httpx.AsyncClient, so that renewals run on
  loops that end; the process then leaves as ``"exit"``); ``"mixed"``: one of these
  three, drawn at start; ``"stay"``: never leaves on its own;
* ``leave_at_refresh``: the chance that the process leaves while a refresh it started
  is on the wire: once ``holding_url`` (the server's count of refresh answers it holds
  back) says the server has it, ``leave_delay`` (``[min, max]`` seconds) later;
  ``lifetime``: seconds after which it leaves anyway (at a random moment);
* ``kill_marker``: with ``"sigkill"``, only the process that creates this file first
  kills itself (once per run);
* ``log``: a file for authplug's log lines (DEBUG), optional.

It prints ``ready``, then one JSON line per event the soak counts (``"status"`` counts
flushed every 0.2 s, ``"error"`` for an exception a request raised, ``"call"`` for each
token call this process made, ``"leaving"``), and ``{"done": true}`` when it leaves by
returning. It stops when its stdin closes (the soak is over): no more requests, the
ones under way end, it returns.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import ssl
import sys
import threading
import time
from collections import Counter
from typing import Any

import httpx
import requests

from authplug import (
    BaseAuth,
    FileTokenCache,
    OAuth2ClientCredentialsAuth,
    OAuth2PasswordAuth,
    RedisTokenCache,
    TokenCache,
)
from authplug.events import CacheLookup, Event, TokenCall

_out = threading.Lock()


def emit(**record: Any) -> None:
    """One JSON line on stdout (whole lines, whatever thread writes)."""
    line = json.dumps(record) + "\n"
    with _out:
        try:
            sys.stdout.write(line)
            sys.stdout.flush()
        except (OSError, ValueError):  # the soak stopped reading
            pass


def make_cache(spec: str) -> TokenCache:
    kind, _, where = spec.partition(":")
    if kind == "file":
        return FileTokenCache(where, lock_timeout=30)
    import redis

    return RedisTokenCache(
        redis.Redis(host="127.0.0.1", port=int(where)), lock_timeout=30, wait_timeout=30
    )


class Worker:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.mode: str = config["mode"]
        if self.mode == "mixed":
            self.mode = random.choice(("exit", "sigterm", "loop"))
        self.stop = threading.Event()
        self.left = threading.Event()
        self.served = threading.Event()  # a request got its answer
        self.statuses: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.auth = self._auth()
        # One TLS context for every job's client (plain HTTP here; building one per
        # client would load the CA bundle each time).
        self.tls = ssl.create_default_context()

    def _auth(self) -> BaseAuth:
        config = self.config
        common: dict[str, Any] = {
            "token_url": config["token_url"],
            "client_id": config["client_id"],
            "client_secret": config["client_secret"],
            "cache": make_cache(config["cache"]),
            "leeway": config["leeway"],
            "on_event": self.observe,
            "timeout": 30,
        }
        if "token" in config:
            return OAuth2ClientCredentialsAuth(token=config["token"], **common)
        return OAuth2PasswordAuth(
            username=config["username"], password=config["password"], **common
        )

    # -- leaving ---------------------------------------------------------------------

    def observe(self, event: Event) -> None:
        if isinstance(event, TokenCall):
            emit(call=event.grant, outcome=event.outcome, error=event.error)
        elif (
            isinstance(event, CacheLookup)
            and event.result != "hit"
            and self.served.is_set()
            and random.random() < self.config["leave_at_refresh"]
        ):
            # A renewal found nothing fresh in the cache: its token call goes out now
            # (a refresh: this process has had a token).
            threading.Thread(target=self.leave_when_held, daemon=True).start()

    def leave_when_held(self) -> None:
        """Leave once the server holds a refresh answer back: ours, since renewals
        across the fleet take turns under the cache's lock."""
        deadline = time.monotonic() + 3.0
        with httpx.Client(timeout=5) as http:
            while time.monotonic() < deadline and not self.stop.is_set():
                try:
                    held = http.get(self.config["holding_url"]).json()["holding"]
                except (httpx.HTTPError, ValueError, KeyError):
                    return
                if held:
                    low, high = self.config["leave_delay"]
                    time.sleep(random.uniform(low, high))
                    self.leave(True)
                    return
                time.sleep(0.01)

    def leave(self, in_flight: bool) -> None:
        if self.stop.is_set() or self.left.is_set():
            return
        if self.mode == "stay":
            return
        if self.mode == "sigkill":
            marker = self.config.get("kill_marker")
            if not in_flight or marker is None:
                return
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return  # another process was killed already
        self.left.set()
        self.flush()
        emit(leaving=self.mode, in_flight=in_flight)
        if self.mode == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        elif self.mode == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            self.stop.set()  # the main thread returns; the threads are daemons

    # -- requests --------------------------------------------------------------------

    def count(self, key: str) -> None:
        self.served.set()
        with self.lock:
            self.statuses[key] += 1

    def flush(self) -> None:
        with self.lock:
            counts, self.statuses = self.statuses, Counter()
        if counts:
            emit(status=dict(counts))

    def failed(self, exc: BaseException) -> None:
        if self.left.is_set() and self.mode == "loop":
            return  # the process is on its way out
        self.count(f"error:{type(exc).__name__}")
        emit(error=type(exc).__name__, message=str(exc)[:300])

    def pause(self) -> None:
        low, high = self.config["pause"]
        self.stop.wait(random.uniform(low, high))

    def sync_thread(self, index: int) -> None:
        api = self.config["api_url"]
        with httpx.Client(auth=self.auth, timeout=30) as client, requests.Session() as session:
            session.auth = self.auth
            while not self.stop.is_set():
                try:
                    if index % 2:
                        status = client.get(api).status_code
                    else:
                        status = session.get(api, timeout=30).status_code
                except Exception as exc:
                    self.failed(exc)
                else:
                    if not self.left.is_set():
                        self.count(str(status))
                self.pause()

    def loop_thread(self, index: int) -> None:
        api = self.config["api_url"]

        async def job() -> None:
            # A short job on a loop of its own: a renewal it starts outlives the loop.
            async with httpx.AsyncClient(auth=self.auth, timeout=30, verify=self.tls) as client:
                for _ in range(random.randint(1, 3)):
                    status = (await client.get(api)).status_code
                    if not self.left.is_set():
                        self.count(str(status))

        while not self.stop.is_set():
            try:
                asyncio.run(job())
            except Exception as exc:
                self.failed(exc)
            self.pause()

    def run(self) -> None:
        target = self.loop_thread if self.mode == "loop" else self.sync_thread
        threads = [
            threading.Thread(target=target, args=(index,), daemon=True, name=f"req-{index}")
            for index in range(self.config["threads"])
        ]
        lifetime = self.config.get("lifetime")
        if lifetime:
            timer = threading.Timer(random.uniform(0.3, 1.0) * lifetime, self.leave, (False,))
            timer.daemon = True
            timer.start()
        threading.Thread(target=self.watch_stdin, daemon=True).start()
        emit(ready=True)
        for thread in threads:
            thread.start()
        while not self.stop.wait(0.2):
            self.flush()
        if not self.left.is_set():
            # The soak is over: let the requests under way end, then report.
            for thread in threads:
                thread.join(timeout=30)
        self.flush()
        emit(done=True)

    def watch_stdin(self) -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        self.stop.set()


def main() -> None:
    config = json.loads(sys.stdin.buffer.readline())
    if config.get("log"):  # authplug's log lines, for a soak that went wrong
        import logging

        logging.basicConfig(
            filename=config["log"],
            level=logging.DEBUG,
            format=f"%(asctime)s {os.getpid()} %(threadName)s %(name)s %(message)s",
        )
        logging.getLogger("httpcore").setLevel(logging.INFO)
    Worker(config).run()


if __name__ == "__main__":
    main()
