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
            "errors", "token", "_clock", "_call.retry", "_call.plan", "cache", "spec", "_aio",
            *RENEW,
        ):
            importlib.import_module("authplug." + name)
        print("ok")
        """.replace("*RENEW", ", ".join(repr(f"_renew.{m}") for m in folder("_renew")))
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
# modules (the classes and their clients' side, their options' defaults, errors, the
# provider description, the memory cache) and dataclasses: 14 modules. It was 235 (with httpx2,
# trio, anyio, asyncio, httpcore, the cache back ends and the providers) before issue 14,
# 15 before issue 21.
IMPORT_BUDGET = 14
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
    "keyring",
    "filelock",
    "aiohttp",
    "niquests",
    "authplug.cache._file",
    "authplug.cache._host",
    "authplug.cache._keyring",
    "authplug.cache._redis",
    "authplug.testing",
    "authplug._call.engine",
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
    assert "authplug._options" not in added  # the checks wait for the first object
    assert len(added) <= IMPORT_BUDGET, (len(added), added)


MACHINERY_MODULES = (
    "authplug._renew.manager",
    "authplug._call.client",
    "authplug._call.authlib",
    "authplug._call.answer",
    "authplug._adapters.requests_hook",
    "authplug._adapters.httpx_flow",
    "authplug._adapters.aiohttp_middleware",
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


# What ``import authplug`` plus building the first auth object (a provider class named
# from the package) may add to ``import requests, httpx``: the import's modules, the
# providers package with that provider's module and their helpers (3 modules), and the
# option checks (2). The options are checked at construction; the token manager, the
# token client and the adapters wait for the object's first use, the key and assertion
# code for an option that needs it. It was 56 modules before issue 21
# (the whole machinery was assembled at construction, and every provider loaded with
# the first).
FIRST_OBJECT_BUDGET = 19
# Never loaded by building an auth object (with default options), beside HEAVY.
ASSEMBLY = (
    *MACHINERY_MODULES,
    "authplug._assembly",
    "authplug._renew",
    "authplug._call",
    "authplug._adapters",
    "authplug._connect_options",
    "authplug._dpop",
    "authplug._assertion",
    "authplug.providers.telmai",
)


def test_import_and_first_object_add_few_modules() -> None:
    """``import authplug`` and one auth object built, after ``import requests, httpx``, in
    a fresh process: the modules added stay within the budget, and none of them is the
    token-call or renewal machinery (``benchmarks/imports.py`` measures the time)."""
    result = run(
        """
        import json, sys
        sys.modules["httpx2"] = None
        import requests, httpx
        before = set(sys.modules)
        from authplug import SemansysAuth
        SemansysAuth(username="u", password="p", client_id="c", client_secret="s")
        print(json.dumps(sorted(set(sys.modules) - before)))
        """
    )
    assert result.returncode == 0, result.stderr
    added = json.loads(result.stdout)
    assert not [m for m in added if m.startswith((*HEAVY, *ASSEMBLY))], added
    assert len(added) <= FIRST_OBJECT_BUDGET, (len(added), added)


SRC = Path(__file__).parents[2] / "src" / "authplug"


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


def folder(name: str) -> list[str]:
    """The modules of one of the package's folders, by name."""
    return sorted(p.stem for p in (SRC / name).glob("*.py") if p.stem != "__init__")


def test_the_folders_init_files_stay_empty() -> None:
    """An ``__init__`` that imported its folder would load the machinery on import."""
    for name in ("_renew", "_call", "_adapters"):
        assert (SRC / name / "__init__.py").read_text(encoding="utf-8") == "", name


HTTP = {"requests", "httpx", "httpx2", "httpcore", "authlib", "urllib3", "aiohttp", "niquests"}
# The effect vocabulary the renewal plans share with token calls: plain data, no HTTP.
PLAN_VOCABULARY = {"._call.plan", "._call.messages"}
# What sits above the three folders and wires them together.
ABOVE = {"._assembly", ".auth", "._plugged", "._options", "._connect_options", ".cli", "._demo"}
ABOVE |= {"._client_auth_options", ".login", ".exchange"}
FOLDERS = {".", "._renew", "._call", "._adapters"}
CLIENT_ADAPTERS = ("requests_hook", "niquests_hook", "httpx_flow", "aiohttp_middleware")


def _internal(found: set[str]) -> set[str]:
    """The package's own modules among ``found`` (a bare folder, the base of a
    ``from .. import module``, is left out: its modules are listed one by one)."""
    return {f for f in found if f.startswith(".") and f not in FOLDERS}


@pytest.mark.parametrize("name", folder("_renew"))
def test_renewal_knows_no_http_client_and_no_adapter(name: str) -> None:
    """``_renew/`` (when to renew, who renews) imports no HTTP library, no adapter, and
    from ``_call/`` only the plans' plain-data vocabulary."""
    found = _imports(SRC / "_renew" / f"{name}.py")
    assert not {f for f in found if f.split(".")[0] in HTTP}, found
    internal = _internal(found)
    assert not {f for f in internal if f.startswith("._adapters")}, found
    assert not {f for f in internal if f.startswith("._call")} - PLAN_VOCABULARY, found
    assert not internal & ABOVE, found


@pytest.mark.parametrize("name", folder("_call"))
def test_token_calls_know_neither_renewal_nor_adapters(name: str) -> None:
    """``_call/`` (how a token call is made) never reaches up into ``_renew/``,
    ``_adapters/`` or the modules that wire them."""
    internal = _internal(_imports(SRC / "_call" / f"{name}.py"))
    assert not {f for f in internal if f.startswith(("._renew", "._adapters"))}, internal
    assert not internal & (ABOVE - {"._options"}), internal


@pytest.mark.parametrize("name", folder("_adapters"))
def test_adapters_never_make_token_calls(name: str) -> None:
    """``_adapters/`` talk to the manager only: nothing of ``_call/`` (token calls go
    through authplug's own transport, never the user's client)."""
    internal = _internal(_imports(SRC / "_adapters" / f"{name}.py"))
    assert not {f for f in internal if f.startswith("._call")}, internal
    assert not internal & ABOVE, internal


@pytest.mark.parametrize("name", CLIENT_ADAPTERS)
def test_an_adapter_never_imports_another(name: str) -> None:
    found = _imports(SRC / "_adapters" / f"{name}.py")
    assert not found & {f"._adapters.{a}" for a in CLIENT_ADAPTERS if a != name}, found


GROUND = sorted(
    p
    for p in [*SRC.glob("*.py"), *(SRC / "cache").glob("*.py")]
    if "." + p.stem not in ABOVE and p.stem not in ("__init__", "__main__", "cli")
)


@pytest.mark.parametrize("path", GROUND, ids=lambda p: p.name)
def test_the_ground_imports_none_of_the_folders(path: Path) -> None:
    """The modules beside the folders (keys, DPoP, secrets, clocks, the public vocabulary,
    the caches) are used by all three folders and import none of them."""
    internal = _internal(_imports(path))
    assert not {f for f in internal if f.startswith(("._renew", "._call", "._adapters"))}, (
        path.name,
        internal,
    )


@pytest.mark.parametrize("path", sorted((SRC / "providers").glob("*.py")), ids=lambda p: p.name)
def test_providers_import_only_the_public_layer(path: Path) -> None:
    """A provider is a description: it imports ``auth``, ``spec``, ``errors`` and its helpers."""
    allowed = {".auth", ".spec", ".errors", ".providers", "__future__", "typing", "uuid"}
    allowed |= {"importlib"}  # the package loads a provider's module when it is named
    allowed |= {"collections.abc"}
    for found in _imports(path):
        assert found in allowed or found.startswith(".providers."), (path.name, found)


@pytest.mark.parametrize("path", sorted((SRC / "providers").glob("*.py")), ids=lambda p: p.name)
def test_providers_import_no_private_name_from_outside(path: Path) -> None:
    """From outside ``providers/``, a provider takes only public names (``_util`` holds
    what providers share, such as the default token URL)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        inside = node.level == 1  # from . import x, from ._util import y
        if inside or (node.module or "").startswith("authplug.providers"):
            continue
        private = [a.name for a in node.names if a.name.startswith("_")]
        assert not private, (path.name, node.module, private)
