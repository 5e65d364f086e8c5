"""The token endpoint's tests send their requests through one client.

A token call never goes through the user's client (it goes through authplug's own
transport), so which client sends the API request changes nothing these tests prove:
``driver`` here is one requests driver, not the nine-client axis of ``tests/clients/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import Driver, make_driver

#: The client that sends the API requests of the endpoint tests.
ONE_CLIENT = "requests"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark this folder's tests ``endpoint``: tox runs them on the oldest and newest Python."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.endpoint)


@pytest.fixture
def driver() -> Iterator[Driver]:
    """One requests driver: the subject of these tests is the token endpoint."""
    made = make_driver(ONE_CLIENT)
    yield made
    made.close()
