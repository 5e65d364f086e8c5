"""The installed package is what the metadata says it is."""

from __future__ import annotations

import configparser
import importlib
import re
from importlib import metadata
from importlib.resources import files
from pathlib import Path

import authplug

ROOT = Path(__file__).parents[2]


def test_version_matches_metadata() -> None:
    assert authplug.__version__ == metadata.version("authplug")


def test_version_matches_setup_cfg() -> None:
    """setup.cfg names this version, or the attribute it is read from (``attr:``)."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    value = config["metadata"]["version"].strip()
    if value.startswith("attr:"):
        module, _, name = value.removeprefix("attr:").strip().rpartition(".")
        value = getattr(importlib.import_module(module), name)
    assert value == authplug.__version__


def test_changelog_starts_with_this_version() -> None:
    """CHANGELOG.rst lists releases newest first, this one (released or not) on top."""
    text = (ROOT / "CHANGELOG.rst").read_text(encoding="utf-8")
    entries = re.findall(r"^(\d+\.\d+\.\d+\S*) \(([^)\n]+)\)\n=+$", text, re.M)
    assert entries, "CHANGELOG.rst has no entry titled 'VERSION (DATE)' or 'VERSION (unreleased)'"
    assert entries[0][0] == authplug.__version__, entries[0]


def test_py_typed_is_shipped() -> None:
    assert files("authplug").joinpath("py.typed").is_file()


def test_public_names() -> None:
    for name in authplug.__all__:
        assert hasattr(authplug, name), name


def test_pytest_plugin_is_registered() -> None:
    points = metadata.entry_points(group="pytest11")
    assert any(point.value == "authplug.testing.plugin" for point in points)
