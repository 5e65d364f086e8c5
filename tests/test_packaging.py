"""The installed package is what the metadata says it is."""

from __future__ import annotations

from importlib import metadata
from importlib.resources import files

import authplug


def test_version_matches_metadata() -> None:
    assert authplug.__version__ == metadata.version("authplug")


def test_py_typed_is_shipped() -> None:
    assert files("authplug").joinpath("py.typed").is_file()


def test_public_names() -> None:
    for name in authplug.__all__:
        assert hasattr(authplug, name), name


def test_pytest_plugin_is_registered() -> None:
    points = metadata.entry_points(group="pytest11")
    assert any(point.value == "authplug.testing.plugin" for point in points)
