"""Waiting for a forked child, shared by the fork tests of two folders."""

from __future__ import annotations

import os
import signal
import time

import pytest


def wait_for_child(pid: int, limit: float, stuck: str) -> int:
    """The wait status of child ``pid``; a child still running after ``limit`` seconds is
    killed and the test fails with ``stuck``."""
    deadline = time.monotonic() + limit
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(stuck)
        time.sleep(0.02)
