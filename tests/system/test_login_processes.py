"""One login at a time across processes sharing a cache: processes whose first requests
all need a person make one prompt and one device login; the others wait for it under the
cache's lock (held as long as a person may take: ``hold``) and use the result."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authplug.testing import HeadlessPerson, OAuth2Emulator

pytestmark = pytest.mark.fleet

PROCESSES = 4
THREADS = 4
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def emulator() -> Iterator[OAuth2Emulator]:
    with OAuth2Emulator(client_id="my-cli", client_secret=None, device_interval=0.2) as running:
        yield running


def _race(cache_spec: str, emulator: OAuth2Emulator) -> tuple[list[list[int]], list[str]]:
    """Start the processes together; play the person for every code any of them shows."""
    person = HeadlessPerson(emulator)
    root = Path(__file__).parents[2]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.system.login_race_worker",
                cache_spec,
                emulator.issuer,
                emulator.api_url(),
                str(THREADS),
            ],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])},
        )
        for _ in range(PROCESSES)
    ]
    lines: queue.Queue[tuple[int, str]] = queue.Queue()

    def read(index: int, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put((index, line.strip()))
        lines.put((index, "<eof>"))

    for index, process in enumerate(processes):
        threading.Thread(target=read, args=(index, process), daemon=True).start()
    try:
        ready = 0
        while ready < PROCESSES:
            _, line = lines.get(timeout=60)
            ready += line == "ready"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        statuses: list[list[int]] = []
        codes: list[str] = []
        ended = 0
        while ended < PROCESSES:
            _, line = lines.get(timeout=120)
            if line.startswith("code "):
                codes.append(line.split()[1])
                person.enter_user_code(codes[-1])
            elif line.startswith("["):
                statuses.append(json.loads(line))
            elif line == "<eof>":
                ended += 1
        return statuses, codes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()


def test_processes_sharing_a_file_cache_log_in_once(
    emulator: OAuth2Emulator, tmp_path: Path
) -> None:
    statuses, codes = _race(f"file:{tmp_path / 'logins'}", emulator)
    assert statuses == [[200] * THREADS] * PROCESSES
    assert len(codes) == 1  # one prompt
    assert emulator.device_authorizations == 1
    assert len(emulator.decisions) == 1  # one person's decision


def test_processes_sharing_redis_log_in_once(emulator: OAuth2Emulator, redis_server: Any) -> None:
    statuses, codes = _race(f"redis:{redis_server.port}", emulator)
    assert statuses == [[200] * THREADS] * PROCESSES
    assert len(codes) == 1
    assert emulator.device_authorizations == 1
