"""A token exchange across processes sharing one file cache with its subject: one subject
token and one exchange for all of them, and no renewal waits for the cache's lock (the
exchange's renewal renews its subject within the lock it holds)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from authplug import FileTokenCache, OAuth2PasswordAuth, OAuth2TokenExchangeAuth
from authplug.testing import OAuth2Emulator

from ..forked import run_together

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
    with OAuth2Emulator() as idp:
        args = [str(tmp_path / "tokens"), idp.token_url, idp.api_url(), str(threads)]
        statuses = run_together("tests.system.exchange_worker", args, processes_count)
        assert statuses == [[200] * threads] * processes_count
        assert idp.exchanges_by_audience == {ORDERS: 1}
        assert idp.token_calls["password"] == 1
