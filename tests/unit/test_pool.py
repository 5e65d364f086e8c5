"""The renewal pool counts every job until it ends, even one that raises or never starts."""

from __future__ import annotations

import logging
import threading
import types

import pytest

from authplug._renew import pool


class NoThread:
    """A ``threading.Thread`` that cannot start (as at interpreter shutdown)."""

    def __init__(self, **options: object) -> None:
        pass

    def start(self) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")


@pytest.fixture
def no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool module sees a threading without threads; a fresh, empty pool."""
    fake = types.SimpleNamespace(
        Thread=NoThread, Condition=threading.Condition, Lock=threading.Lock
    )
    monkeypatch.setattr(pool, "threading", fake)
    monkeypatch.setattr(pool, "_POOL", pool._Pool())
    monkeypatch.setattr(pool, "_PENDING", pool._Count())


def test_a_job_that_raises_is_logged_and_no_longer_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A job's unexpected exception is one WARNING; the pool goes quiet after it."""

    def broken() -> None:
        raise ValueError("unexpected")

    caplog.set_level(logging.WARNING, logger="authplug")
    pool.submit(broken)
    assert pool.quiet(10)
    (record,) = [r for r in caplog.records if "renewal thread failed" in r.getMessage()]
    assert "ValueError('unexpected')" in record.getMessage()


@pytest.mark.usefixtures("no_threads")
def test_a_submitted_job_without_a_thread_raises_and_is_not_counted() -> None:
    """No thread to serve it: submit raises, the worker and the job are not counted."""
    with pytest.raises(RuntimeError, match="interpreter shutdown"):
        pool.submit(lambda: None)
    assert pool._POOL.workers == 0
    assert pool.quiet(0)


@pytest.mark.usefixtures("no_threads")
def test_a_spawned_job_without_a_thread_raises_and_is_not_counted() -> None:
    """The same for a job that runs in a thread of its own."""
    with pytest.raises(RuntimeError, match="interpreter shutdown"):
        pool.spawn(lambda: None)
    assert pool.quiet(0)


def test_a_forked_child_starts_with_an_empty_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a fork the pool and its count are new: the parent's workers are not there."""
    monkeypatch.setattr(pool, "_POOL", pool._POOL)
    monkeypatch.setattr(pool, "_PENDING", pool._PENDING)
    old_pool, old_count = pool._POOL, pool._PENDING
    pool._reset_after_fork()
    assert pool._POOL is not old_pool
    assert pool._PENDING is not old_count
    assert (pool._POOL.workers, pool._POOL.idle, pool._PENDING.value) == (0, 0, 0)
