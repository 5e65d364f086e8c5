"""Sphinx configuration of authplug's documentation site.

``tox -e docs`` builds it with warnings as errors (``-W -n``) from the installed package,
then checks its Python examples (``tests/system/test_readme.py``). The build needs no network:
there is no intersphinx, so names of other projects are plain text (see nitpick_ignore).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from typing import Any

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

import authplug

project = "authplug"
author = "authplug developers"
copyright = "authplug developers"
release = authplug.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    # After napoleon. Types from the annotations, __init__'s included: autodoc's own
    # autodoc_typehints="description" leaves a class's ``from __future__ import
    # annotations`` strings unevaluated (ClientAuthMethod, not its Literal).
    "sphinx_autodoc_typehints",
]

exclude_patterns = ["_build"]
templates_path: list[str] = []
html_theme = "furo"
html_title = f"authplug {release}"
pygments_style = "sphinx"
pygments_dark_style = "monokai"
toc_object_entries_show_parents = "hide"  # "get_token", not "BaseAuth.get_token"
default_role = "literal"  # `x` reads as code, never as a link that may not resolve

# -- autodoc and napoleon: Google-style docstrings, types from the annotations ----------

# No "members" here: a default members=True would override each directive's own list.
# Nor "show-inheritance": api.rst asks for it where the bases say something (not object).
autodoc_default_options = {
    "undoc-members": True,  # then _require_docstring names each one without a docstring
    "member-order": "bysource",
}
typehints_fully_qualified = False
typehints_document_rtype = True
typehints_use_rtype = False  # the return type goes with "Returns:", not apart
typehints_document_rtype_none = False
autodoc_preserve_defaults = True  # leeway=60, not the evaluated default of a constant
autodoc_class_signature = "mixed"
autoclass_content = "class"  # the class docstring's Args: documents __init__
python_use_unqualified_type_names = True

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = False  # Attributes: as attribute entries, which :attr: reaches
napoleon_use_rtype = False
napoleon_attr_annotations = True

# -- nitpicky (-n): every reference must resolve, except to other projects' names -------

# Without intersphinx (the build has no network), references to the standard library
# and to the HTTP clients cannot resolve. Sphinx already accepts builtins and typing's
# classes; these are the rest, named by their modules.
nitpick_ignore_regex = [
    (r"py:.*", r"(typing|collections|contextlib|os|pathlib|ssl|types|enum|asyncio|http)(\..+)?"),
    (r"py:.*", r"(httpx|httpx2|requests|niquests|aiohttp|redis|keyring|pytest|_pytest)(\..+)?"),
    (r"py:data", r"Ellipsis"),  # the ... of tuple[str, ...]
]
nitpick_ignore = [
    # The type of OAuth2Emulator.journal's entries: authplug.testing does not export it,
    # so the reference describes its fields with the attribute instead.
    ("py:class", "authplug.testing._api.JournalEntry"),
]

# -- every public name is documented ----------------------------------------------------

#: Modules whose ``__all__`` is the public API: each name must be documented somewhere.
PUBLIC_MODULES = (
    "authplug",
    "authplug.auth",
    "authplug.errors",
    "authplug.spec",
    "authplug.cache",
    "authplug.events",
    "authplug.sources",
    "authplug.providers",
    "authplug.providers.semansys",
    "authplug.providers.mogoplus",
    "authplug.providers.telmai",
    "authplug.providers.dakota",
    "authplug.providers.loginform",
    "authplug.testing",
    "authplug.cli",
)

log = logging.getLogger("authplug.docs")


def _resolve(name: str) -> object:
    """The object a dotted name stands for (a module's attribute, a class's member)."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(name)


def _check_public_names(app: Sphinx, env: BuildEnvironment) -> None:
    """Warn (an error under -W) for each public name the site does not document.

    A name counts as documented under any name that reaches the same object (the
    reference documents ``authplug.rfc6749_error``, defined in ``authplug.spec``).
    """
    documented = set(env.domains["py"].objects)
    objects = set()
    for name in documented:
        # A name the reference declares by hand may stand for nothing importable.
        with contextlib.suppress(ImportError, AttributeError):
            objects.add(id(_resolve(name)))
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            full = f"{module_name}.{name}"
            if full not in documented and id(getattr(module, name)) not in objects:
                log.warning("the public name %s is not in the API reference (docs/api.rst)", full)


def _require_docstring(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Warn for a documented object without a docstring of its own or inherited."""
    if what in ("module", "attribute", "data"):
        return
    if not any(line.strip() for line in lines):
        log.warning("%s %s has no docstring", what, name)


def _no_inline_type(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Keep napoleon from reading an attribute's first words as its type.

    Napoleon takes ``words: more words`` on an attribute's, a property's or a module
    variable's first line as ``type: description``; this package's are prose (the type
    comes from the annotation), and many read ``What: more``. An empty reST comment
    first (napoleon skips blank lines, not comments) leaves it all as the description.
    Runs before napoleon.
    """
    if what in ("attribute", "data", "property") and any(line.strip() for line in lines):
        lines[:0] = ["..", ""]


def _no_value_docstring(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """A module variable says what it is in its ``#:`` comment or in api.rst, never with
    its value's class docstring (``CertOption``'s would read "Represent a PEP 604 union
    type")."""
    own = inspect.cleandoc(getattr(type(obj), "__doc__", None) or "")
    if what == "data" and own and "\n".join(lines).strip() == own:
        lines.clear()


def _skip_member(
    app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any
) -> bool | None:
    """Leave out namedtuple field aliases: the class docstring's Attributes: has them."""
    doc = getattr(obj, "__doc__", None) or ""
    return True if doc.startswith("Alias for field number") else None


def _public_bases(app: Sphinx, name: str, obj: Any, options: Any, bases: list[Any]) -> None:
    """Show httpx.Auth (and httpx2.Auth) as BaseAuth's bases, not the private classes
    between (``authplug._plugged``: the clients' side, and the class that joins httpx's
    and httpx2's when httpx2 is installed)."""
    bases[:] = [public for base in bases for public in _through_private(base)]


def _through_private(base: type) -> list[type]:
    if getattr(base, "__module__", "").startswith("authplug._"):
        return [public for parent in base.__bases__ for public in _through_private(parent)]
    return [base]


def _protocol_signature(
    app: Sphinx,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    """No ``(*args, **kwargs)`` after a protocol's name: nobody instantiates one."""
    if what == "class" and getattr(obj, "_is_protocol", False):
        return "", return_annotation
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-check-consistency", _check_public_names)
    app.connect("autodoc-process-docstring", _no_value_docstring, priority=300)
    app.connect("autodoc-process-docstring", _no_inline_type, priority=400)
    app.connect("autodoc-process-docstring", _require_docstring)
    app.connect("autodoc-skip-member", _skip_member)
    # Before the extensions that turn the bases into text (priority 500).
    app.connect("autodoc-process-bases", _public_bases, priority=100)
    app.connect("autodoc-process-signature", _protocol_signature)
    return {"parallel_read_safe": True}
