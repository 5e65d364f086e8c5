"""A private name means one thing in the package: it is defined in one module (or one
class), or, where several modules each keep their own copy of one idea, it is listed
below with that idea."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).parents[2] / "src" / "authplug"

# Names defined more than once on purpose, each with the one meaning all its copies share.
SAME_MEANING = {
    "_reset_after_fork": "a module's own hook for os.register_at_fork",
    "_after_fork": "the hook of authplug._fork's resettable objects",
    "_handle": "requests' and niquests' response hook (twin drivers)",
    "_resend": "requests' and niquests' send-again of a request (twin drivers)",
    "_release": "requests' and niquests' consume-and-close of a refused response",
    "_answer": "httpx's and aiohttp's reading of a response into the exchange's Answer",
    "_token_newer_than": "an auth object's token for another to be made from (and its Protocol)",
    "_atoken_newer_than": "the same, awaited (BaseAuth, and the Protocol naming it)",
    "_own_options": "an auth class's options that are not BaseAuth's (none, or its own kind)",
}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _definitions() -> dict[str, set[str]]:
    """Every private name defined at a module's top level or in a class body of the
    package (the test kit in ``testing/`` aside: its emulators override by design),
    with where."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        if "testing" in path.relative_to(SRC).parts:
            continue
        module = str(path.relative_to(SRC))
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            for name in _names(node):
                found[name].add(module)
            if isinstance(node, ast.ClassDef):
                for member in node.body:
                    for name in _names(member, in_class=True):
                        found[name].add(f"{module}:{node.name}")
    return {name: where for name, where in found.items() if _private(name)}


def _names(node: ast.stmt, *, in_class: bool = False) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        # A bare annotation defines nothing: a part of a class (a mixin) declaring what
        # its host class has.
        return [node.target.id] if node.value is not None or not in_class else []
    return []


def test_a_private_name_has_one_meaning() -> None:
    """No private name is defined in two places unless it is listed with the meaning its
    copies share."""
    twice = {
        name: sorted(where)
        for name, where in _definitions().items()
        if len(where) > 1 and name not in SAME_MEANING
    }
    assert twice == {}, twice


def test_the_list_of_shared_meanings_is_current() -> None:
    """Every name listed as shared is still defined in more than one place."""
    definitions = _definitions()
    assert [n for n in SAME_MEANING if len(definitions.get(n, ())) < 2] == []
