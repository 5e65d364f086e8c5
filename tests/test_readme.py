"""README.rst's Python examples are valid code that uses the package's real names."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

import pytest

import authplug
from authplug import BaseAuth

README = (Path(__file__).parents[1] / "README.rst").read_text(encoding="utf-8")
BLOCKS = [
    textwrap.dedent(match.group(1))
    for match in re.finditer(r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", README, re.M)
]
SHARED_OPTIONS = set(inspect.signature(BaseAuth.__init__).parameters) - {"self"}


def _keywords(cls: type) -> set[str]:
    """The keyword names ``cls`` accepts (an auth class: its own and the shared options)."""
    names = {
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
    return names | SHARED_OPTIONS if issubclass(cls, BaseAuth) else names


def test_the_readme_has_an_example_for_every_provider() -> None:
    """Each provider class is shown, with requests, httpx and httpx async."""
    assert len(BLOCKS) >= 8
    for name in ("SemansysAuth", "MogoplusAuth", "TelmaiAuth", "DakotaAuth", "LoginFormAuth"):
        (block,) = [
            b
            for b in BLOCKS
            if f"from authplug import {name}\n" in b and "httpx.Client(auth=auth)" in b
        ]
        for usage in ("session.auth = auth", "httpx.Client(auth=auth)", "asyncio.run(main())"):
            assert usage in block, (name, usage)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_example_compiles_and_calls_real_names(code: str) -> None:
    """A copy-pasted example is a valid module whose calls match the real signatures."""
    tree = ast.parse(code)  # a top-level "await" or "async with" would fail here
    compile(tree, "README.rst", "exec")
    imported: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "authplug":
            for alias in node.names:
                assert alias.name in authplug.__all__, alias.name
                imported[alias.asname or alias.name] = getattr(authplug, alias.name)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        cls = imported.get(node.func.id)
        if not isinstance(cls, type):
            continue
        given = {k.arg for k in node.keywords if k.arg is not None}
        assert given <= _keywords(cls), (cls.__name__, given - _keywords(cls))
        # SemansysAuth(..., cache=…) and f(**kwargs) leave the rest unsaid.
        elided = any(isinstance(a, ast.Constant) and a.value is ... for a in node.args)
        if not elided and all(k.arg is not None for k in node.keywords):
            # Raises TypeError when a required argument is missing.
            inspect.signature(cls).bind(*node.args, **dict.fromkeys(given))


def test_the_options_table_lists_real_options() -> None:
    """Every option in the Options table is a keyword argument of every auth class."""
    table = README.split("Every auth class takes these keyword arguments:", 1)[1]
    table = table.split("\n\n", 2)[1]
    listed = set(re.findall(r"^``(\w+)", table, re.M))
    assert listed == SHARED_OPTIONS - {"spec", "token_url", "refresh_url"} - {
        "client_id",
        "client_secret",
        "username",
        "password",
        "scope",
    }
