"""The layers stay honest: the token brain needs no HTTP library; import stays light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )


def test_token_brain_imports_without_http_libraries() -> None:
    """``_manager``, ``token``, ``errors`` and ``cache`` import with requests and httpx blocked."""
    result = run(
        """
        import sys, types, importlib
        for name in ("requests", "httpx", "httpx2", "authlib", "aiohttp", "niquests", "trio"):
            sys.modules[name] = None
        # Load the submodules without running authplug/__init__.py.
        import importlib.util, pathlib
        spec = importlib.util.find_spec("authplug")
        package = types.ModuleType("authplug")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["authplug"] = package
        for name in (
            "errors", "token", "_clock", "_retry", "cache", "_schedule", "_flight", "_renewal",
            "_manager", "spec", "_aio",
        ):
            importlib.import_module("authplug." + name)
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_import_does_not_load_authlib() -> None:
    """``import authplug`` leaves Authlib (and requests) for the first token call, and
    never loads the optional clients (aiohttp, niquests)."""
    result = run(
        """
        import sys, authplug
        print([name in sys.modules for name in ("authlib", "requests", "aiohttp", "niquests")])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[False, False, False, False]"


def test_an_asyncio_caller_never_needs_trio() -> None:
    """trio is imported only by callers that run on it (httpcore itself loads it when
    installed, so here it is made unimportable)."""
    result = run(
        """
        import asyncio, sys
        sys.modules["trio"] = None
        import httpx
        from authplug import OAuth2PasswordAuth
        from authplug.testing import OAuth2Emulator

        with OAuth2Emulator() as emulator:
            auth = OAuth2PasswordAuth(**emulator.auth_kwargs())

            async def main():
                async with httpx.AsyncClient(auth=auth) as client:
                    return (await client.get(emulator.api_url())).status_code

            print(asyncio.run(main()))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200"]


# What ``import authplug`` may add to ``import requests, httpx``: the package's own light
# modules (the classes, errors, the provider description, the memory cache) and
# dataclasses: 14 modules. It was 235 (with httpx2, trio, anyio, asyncio, httpcore, the
# cache back ends and the providers) before issue 14.
IMPORT_BUDGET = 15
# Never loaded by ``import authplug`` nor by building an auth object: they wait for the
# first token call (Authlib, httpcore and what it brings), for an async caller (asyncio),
# or for a program that names them (the back ends, the providers, the test support).
HEAVY = (
    "authlib",
    "joserfc",
    "cryptography",
    "httpcore",
    "anyio",
    "trio",
    "asyncio",
    "concurrent.futures",
    "redis",
    "filelock",
    "aiohttp",
    "niquests",
    "authplug.cache._file",
    "authplug.cache._redis",
    "authplug.testing",
    "authplug._engine",
)


def test_import_adds_few_modules() -> None:
    """``import authplug`` after ``import requests, httpx``, in a fresh process: a count of
    modules, not a time (``benchmarks/imports.py`` measures the time). httpx2 is made
    unimportable, as for most users: when installed, authplug imports it (its clients
    accept only subclasses of its own ``Auth``)."""
    result = run(
        """
        import json, sys
        sys.modules["httpx2"] = None
        import requests, httpx
        before = set(sys.modules)
        import authplug
        print(json.dumps(sorted(set(sys.modules) - before)))
        """
    )
    assert result.returncode == 0, result.stderr
    added = json.loads(result.stdout)
    assert not [m for m in added if m.startswith((*HEAVY, *MACHINERY_MODULES))], added
    assert "authplug.providers" not in added
    assert len(added) <= IMPORT_BUDGET, (len(added), added)


MACHINERY_MODULES = (
    "authplug._manager",
    "authplug._authlib",
    "authplug._requests_adapter",
    "authplug._httpx_adapter",
    "authplug._aiohttp_adapter",
    "authplug.events",
    "authplug.token",
)


def test_construction_leaves_the_token_call_machinery_unloaded() -> None:
    """Building an auth object (and naming a provider class) still loads no Authlib, no
    httpcore and no asyncio: the first token call does."""
    result = run(
        """
        import json, sys
        import authplug
        from authplug import SemansysAuth
        auth = SemansysAuth(username="u", password="p", client_id="c", client_secret="s")
        print(json.dumps(sorted(m for m in sys.modules if m.startswith(HEAVY))))
        """.replace("HEAVY", repr(HEAVY))
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


SRC = Path(__file__).parents[1] / "src" / "authplug"


def _imports(path: Path) -> set[str]:
    """The modules a source file imports, as dotted names relative to the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = path.relative_to(SRC).parent.parts
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.add(node.module or "")
                continue
            base = list(package[: len(package) - (node.level - 1)])
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add("." + module if module else ".")
            if node.module is None:
                found.update("." + ".".join([*base, a.name]) for a in node.names)
    return found


# The ladder, bottom up: a module may import only what its rule allows.
CORE = (
    "_manager",
    "_schedule",
    "_flight",
    "_renewal",
    "_aio",
    "_discovery",
    "_dpop",
    "token",
    "errors",
    "_redact",
)
HTTP = {"requests", "httpx", "httpx2", "httpcore", "authlib", "urllib3", "aiohttp", "niquests"}
ADAPTERS = ("_requests_adapter", "_httpx_adapter", "_aiohttp_adapter", "_niquests_adapter")
MACHINERY = {
    "._assembly",
    "._authlib",
    "._engine",
    "._transport",
    "._prepared",
    ".auth",
    *(f".{a}" for a in ADAPTERS),
}


@pytest.mark.parametrize("name", CORE)
def test_the_token_brain_knows_no_http_client(name: str) -> None:
    """Timing, flight, renewal plan and manager never import an HTTP client or its adapter."""
    found = _imports(SRC / f"{name}.py")
    assert not {f for f in found if f.split(".")[0] in HTTP}, found
    assert not found & MACHINERY, found


@pytest.mark.parametrize("name", ADAPTERS)
def test_an_adapter_never_imports_another(name: str) -> None:
    found = _imports(SRC / f"{name}.py")
    assert not found & {f".{a}" for a in ADAPTERS if a != name}, found


@pytest.mark.parametrize("path", sorted((SRC / "providers").glob("*.py")), ids=lambda p: p.name)
def test_providers_import_only_the_public_layer(path: Path) -> None:
    """A provider is a description: it imports ``auth``, ``spec``, ``errors`` and its helpers."""
    allowed = {".auth", ".spec", ".errors", ".providers", "__future__", "typing", "uuid"}
    allowed |= {"collections.abc"}
    for found in _imports(path):
        assert found in allowed or found.startswith(".providers."), (path.name, found)
