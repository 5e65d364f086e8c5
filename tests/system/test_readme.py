"""The Python examples of README.rst and of the documentation site (docs/) are valid code
that uses the package's real names."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from pathlib import Path

import pytest

from authplug import BaseAuth

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.rst").read_text(encoding="utf-8")
DOCS = sorted((ROOT / "docs").rglob("*.rst"))
SHARED_OPTIONS = set(inspect.signature(BaseAuth.__init__).parameters) - {"self"}

_DIRECTIVE = re.compile(r"^( *)\.\. code-block:: python\s*$")
# Python under another directive's name, which python_blocks would not see.
_UNCHECKED = re.compile(
    r"^ *\.\. (?:(?:code|sourcecode):: *(?:python3?|py3?)|code-block:: *(?:py3?|python3))\s*$",
    re.M,
)


def python_blocks(text: str) -> list[str]:
    """The ``.. code-block:: python`` blocks of a reST text, dedented.

    Blocks nested in another construct (a list item, a note) count too; the
    directive's options (``:caption:``, ``:emphasize-lines:``) are skipped.
    """
    lines = text.splitlines()
    blocks = []
    for number, line in enumerate(lines):
        directive = _DIRECTIVE.match(line)
        if directive is None:
            continue
        indent = len(directive.group(1))
        body: list[str] = []
        for following in lines[number + 1 :]:
            stripped = following.strip()
            if stripped and len(following) - len(following.lstrip()) <= indent:
                break
            if not body and stripped.startswith(":"):  # an option of the directive
                continue
            body.append(following)
        blocks.append(textwrap.dedent("\n".join(body)).strip("\n") + "\n")
    return blocks


BLOCKS = python_blocks(README)


def _keywords(cls: type) -> set[str]:
    """The keyword names ``cls`` accepts (an auth class: its own and the shared options)."""
    names = {
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
    return names | SHARED_OPTIONS if issubclass(cls, BaseAuth) else names


def check_example(code: str, where: str) -> None:
    """A copy-pasted example is a valid module whose calls match the real signatures.

    Each name imported from authplug or one of its modules must be public there (in its
    ``__all__``); each call of an imported class must use its real keyword arguments.
    """
    tree = ast.parse(code, where)  # a top-level "await" or "async with" would fail here
    compile(tree, where, "exec")
    imported: dict[str, object] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        if node.module != "authplug" and not node.module.startswith("authplug."):
            continue
        module = importlib.import_module(node.module)
        public = getattr(module, "__all__", None)
        for alias in node.names:
            assert public is None or alias.name in public, (where, node.module, alias.name)
            imported[alias.asname or alias.name] = getattr(module, alias.name)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        cls = imported.get(node.func.id)
        if not isinstance(cls, type):
            continue
        given = {k.arg for k in node.keywords if k.arg is not None}
        assert given <= _keywords(cls), (where, cls.__name__, given - _keywords(cls))
        # SemansysAuth(..., cache=…) and f(**kwargs) leave the rest unsaid.
        elided = any(isinstance(a, ast.Constant) and a.value is ... for a in node.args)
        if not elided and all(k.arg is not None for k in node.keywords):
            # Raises TypeError when a required argument is missing.
            inspect.signature(cls).bind(*node.args, **dict.fromkeys(given))


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
    check_example(code, "README.rst")


@pytest.mark.parametrize("page", DOCS, ids=[str(p.relative_to(ROOT / "docs")) for p in DOCS])
def test_docs_examples_compile_and_call_real_names(page: Path) -> None:
    """Each Python example of each documentation page passes the README's check."""
    text = page.read_text(encoding="utf-8")
    unchecked = _UNCHECKED.findall(text)
    assert not unchecked, f"write these as '.. code-block:: python': {unchecked}"
    for number, code in enumerate(python_blocks(text)):
        check_example(code, f"{page.relative_to(ROOT)} (block {number})")


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


def test_the_getting_started_page_gives_readme_s_commands() -> None:
    """The two set-up commands on the site are README's (CI runs README's test command)."""
    page = (ROOT / "docs" / "getting-started.rst").read_text(encoding="utf-8")
    commands = re.findall(r"^ +\$ (python3 -m pip install .*)$", page, re.M)
    assert len(commands) >= 2
    for command in commands:
        assert f"$ {command}\n" in README, command
