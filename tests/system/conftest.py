"""The system tests that send an API request send it through one client.

Their subject is a cache, a process or the command line, never the client: ``driver``
here is one requests driver, not the nine-client axis of ``tests/clients/``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..conftest import Driver, make_driver


@pytest.fixture
def driver() -> Iterator[Driver]:
    """One requests driver: the subject of these tests is not the client."""
    made = make_driver("requests")
    yield made
    made.close()
