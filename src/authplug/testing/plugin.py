"""pytest fixtures: each emulator started on a free loopback port and stopped after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._emulator import OAuth2Emulator


@pytest.fixture
def oauth2_emulator() -> Iterator[OAuth2Emulator]:
    """A generic RFC 6749 token endpoint and protected resource."""
    with OAuth2Emulator() as emulator:
        yield emulator
