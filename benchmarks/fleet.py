"""Token calls and per-request cost for N processes, with and without a shared cache.

Each of N worker processes builds its own auth object (as a fleet's workers do) and
sends R requests to a loopback API. Without a shared cache every process logs in; with
a FileTokenCache (one host) or a RedisTokenCache (a fleet; needs redis-server) only the
first does. A static-header run gives the baseline per-request time.

    python benchmarks/fleet.py [--processes 8] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import table

from authplug.testing import OAuth2Emulator


def worker(cache: str, token_url: str, api_url: str, count: int) -> None:
    from authplug import FileTokenCache, OAuth2PasswordAuth, RedisTokenCache

    options: dict[str, Any] = {}
    kind, _, where = cache.partition(":")
    if kind == "file":
        options["cache"] = FileTokenCache(where)
    elif kind == "redis":
        import redis

        options["cache"] = RedisTokenCache(redis.Redis(host="127.0.0.1", port=int(where)))
    headers = {}
    auth = None
    if kind == "static":
        headers = {"Authorization": f"Bearer {where}"}
    else:
        auth = OAuth2PasswordAuth(
            token_url=token_url,
            username="demo-user",
            password="demo-password",
            client_id="demo-client",
            client_secret="demo-secret",
            **options,
        )
    print("ready", flush=True)
    sys.stdin.readline()
    times = []
    with httpx.Client(auth=auth, headers=headers) as client:
        for _ in range(count):
            start = time.perf_counter()
            client.get(api_url).raise_for_status()
            times.append(time.perf_counter() - start)
    print(json.dumps(times), flush=True)


def run(cache: str, emulator: OAuth2Emulator, processes: int, count: int) -> list[list[float]]:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                cache,
                emulator.token_url,
                emulator.api_url(),
                str(count),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for proc in procs:
        assert proc.stdout is not None
        proc.stdout.readline()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    return [json.loads(proc.communicate()[0]) for proc in procs]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="requests per process")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="authplug-fleet-"))
    redis_proc = None
    caches = ["none", f"file:{folder / 'tokens.json'}"]
    redis_server = shutil.which("redis-server")
    if redis_server:
        port = free_port()
        redis_proc = subprocess.Popen(
            [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        caches.append(f"redis:{port}")
    rows = []
    try:
        with OAuth2Emulator(token_delay=0.05) as emulator:
            static_token = httpx.post(
                emulator.token_url,
                data={
                    "grant_type": "password",
                    "username": "demo-user",
                    "password": "demo-password",
                    "client_id": "demo-client",
                    "client_secret": "demo-secret",
                },
            ).json()["access_token"]
            for cache in ["static:" + static_token, *caches]:
                emulator.reset_counters()
                results = run(cache, emulator, args.processes, args.requests)
                steady = [t for times in results for t in times[1:]]
                first = [times[0] for times in results]
                label = cache.split(":")[0]
                names = {"static": "static header (baseline)", "none": "authplug, no shared cache"}
                rows.append(
                    [
                        names.get(label, f"authplug, {label} cache"),
                        args.processes,
                        emulator.token_calls.total(),
                        f"{statistics.median(first) * 1e3:.1f} ms",
                        f"{statistics.median(steady) * 1e6:.0f} µs",
                    ]
                )
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
    headers = ["set-up", "processes", "token calls", "first request", "later requests"]
    print("Medians over all processes.\n")
    print(table(headers, rows))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:5], int(sys.argv[5]))
    else:
        main()
