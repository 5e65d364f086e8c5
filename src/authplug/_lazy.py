"""Names a package exports without importing their modules until first use (PEP 562).

``import authplug`` should cost little on top of ``import requests, httpx``: the cache
back ends and the provider classes are loaded when a program first names them.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, AnyStr

__all__ = ["exports", "regex"]


def regex(pattern: AnyStr, flags: int = 0) -> Callable[[], re.Pattern[AnyStr]]:
    """A regular expression compiled when first used: ``NAME().match(...)``.

    Compiling the package's patterns at import cost more than a millisecond in all.
    """

    @functools.cache
    def compiled() -> re.Pattern[AnyStr]:
        return re.compile(pattern, flags)

    return compiled


def exports(
    package: str, namespace: dict[str, Any], lazy: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``.

    ``lazy`` maps an exported name to the module (relative to ``package``) that defines
    it; the first lookup imports that module and keeps the value in ``namespace``, so
    later lookups are plain attribute reads.
    """
    names = sorted(set(public) | set(namespace))

    def __getattr__(name: str) -> Any:
        module = lazy.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__
