"""pytest fixtures: each emulator started on a free loopback port and stopped after.

Registered through the ``pytest11`` entry point when authplug is installed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._emulator import OAuth2Emulator
from ._emulators import (
    DakotaEmulator,
    LoginFormEmulator,
    MogoplusEmulator,
    SemansysEmulator,
    TelmaiEmulator,
)


@pytest.fixture
def oauth2_emulator() -> Iterator[OAuth2Emulator]:
    """A generic RFC 6749 token endpoint and protected resource."""
    with OAuth2Emulator() as emulator:
        yield emulator


@pytest.fixture
def semansys_emulator() -> Iterator[SemansysEmulator]:
    """Semansys's token endpoint and an API; ``SemansysAuth(**e.auth_kwargs())``."""
    with SemansysEmulator() as emulator:
        yield emulator


@pytest.fixture
def mogoplus_emulator() -> Iterator[MogoplusEmulator]:
    """Mogoplus over HTTPS with client certificates (needs ``authplug[testing]``)."""
    with MogoplusEmulator() as emulator:
        yield emulator


@pytest.fixture
def telmai_emulator() -> Iterator[TelmaiEmulator]:
    """Telmai's ``/auth/token`` and an API."""
    with TelmaiEmulator() as emulator:
        yield emulator


@pytest.fixture
def dakota_emulator() -> Iterator[DakotaEmulator]:
    """Dakota's JSON token endpoint and an API."""
    with DakotaEmulator() as emulator:
        yield emulator


@pytest.fixture
def loginform_emulator() -> Iterator[LoginFormEmulator]:
    """A ``/api/auth/login`` form endpoint and an API."""
    with LoginFormEmulator() as emulator:
        yield emulator
