"""A token exchange across processes sharing one file cache with its subject: one subject
token and one exchange for all of them, and no renewal waits for the cache's lock (the
exchange's renewal renews its subject within the lock it holds)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from authplug import FileTokenCache, OAuth2PasswordAuth, OAuth2TokenExchangeAuth
from authplug.testing import OAuth2Emulator

pytestmark = pytest.mark.fleet

ORDERS = "https://orders.internal"


def test_an_exchange_and_its_subject_share_a_file_cache_without_waiting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """In one process: the exchange's renewal renews the subject inside the lock it holds
    on the same file: no "cache unavailable" (a lock timeout) on the way."""
    caplog.set_level(logging.WARNING, logger="authplug")
    with OAuth2Emulator() as idp:
        cache = FileTokenCache(tmp_path / "tokens", lock_timeout=30)
        subject = OAuth2PasswordAuth(
            token_url=idp.token_url,
            username=idp.username,
            password=idp.password,
            client_id=idp.client_id,
            client_secret=idp.client_secret,
            cache=cache,
        )
        auth = OAuth2TokenExchangeAuth(
            token_url=idp.token_url,
            client_id=idp.client_id,
            client_secret=idp.client_secret,
            subject_token=subject,
            audience=ORDERS,
            cache=cache,
        )
        auth.get_token()
    assert idp.exchanges_by_audience == {ORDERS: 1}
    assert "unavailable" not in caplog.text


def test_processes_share_one_exchange_and_one_subject(tmp_path: Path) -> None:
    processes_count, threads = 4, 8
    root = Path(__file__).parents[2]
    with OAuth2Emulator() as idp:
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.system.exchange_worker",
                    str(tmp_path / "tokens"),
                    idp.token_url,
                    idp.api_url(),
                    str(threads),
                ],
                cwd=root,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])},
            )
            for _ in range(processes_count)
        ]
        try:
            for process in processes:
                assert process.stdout is not None
                assert process.stdout.readline().strip() == "ready"
            for process in processes:
                assert process.stdin is not None
                process.stdin.write("go\n")
                process.stdin.flush()
            statuses = []
            for process in processes:
                out, _ = process.communicate(timeout=120)
                statuses.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(10)
        assert statuses == [[200] * threads] * processes_count
        assert idp.exchanges_by_audience == {ORDERS: 1}
        assert idp.token_calls["password"] == 1
