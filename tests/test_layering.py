"""The layers stay honest: the token brain needs no HTTP library; import stays light."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )


def test_token_brain_imports_without_http_libraries() -> None:
    """``_manager``, ``token``, ``errors`` and ``cache`` import with requests and httpx blocked."""
    result = run(
        """
        import sys, types, importlib
        for name in ("requests", "httpx", "httpx2", "authlib"):
            sys.modules[name] = None
        # Load the submodules without running authplug/__init__.py.
        import importlib.util, pathlib
        spec = importlib.util.find_spec("authplug")
        package = types.ModuleType("authplug")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["authplug"] = package
        for name in ("errors", "token", "_clock", "_retry", "cache", "_manager", "spec"):
            importlib.import_module("authplug." + name)
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_import_does_not_load_authlib() -> None:
    """``import authplug`` leaves Authlib (and requests) for the first token call."""
    result = run(
        """
        import sys, authplug
        print("authlib" in sys.modules, "requests" in sys.modules)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
