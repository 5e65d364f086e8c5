"""The providers authplug serves out of the box, one module each.

Each is a :class:`~authplug.spec.ProviderSpec` plus a keyword-only class that says
which credentials it takes and where its token URL is.

A provider's module is imported when its class is first named (PEP 562): a program
that uses one provider loads that one only.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..auth import BaseAuth
    from .dakota import DakotaAuth
    from .loginform import LoginFormAuth
    from .mogoplus import MogoplusAuth
    from .semansys import SemansysAuth
    from .telmai import TelmaiAuth

    #: Lower-case provider name -> auth class (used by the command line).
    PROVIDERS: dict[str, type[BaseAuth]]

__all__ = ["PROVIDERS", "DakotaAuth", "LoginFormAuth", "MogoplusAuth", "SemansysAuth", "TelmaiAuth"]

#: Lower-case provider name -> (its module, its auth class's name).
_CLASSES = {
    "semansys": (".semansys", "SemansysAuth"),
    "mogoplus": (".mogoplus", "MogoplusAuth"),
    "telmai": (".telmai", "TelmaiAuth"),
    "dakota": (".dakota", "DakotaAuth"),
    "loginform": (".loginform", "LoginFormAuth"),
}
_MODULES = {cls: module for module, cls in _CLASSES.values()}


def __getattr__(name: str) -> Any:
    if name == "PROVIDERS":
        value: Any = {key: __getattr__(cls) for key, (_, cls) in _CLASSES.items()}
    elif name in _MODULES:
        value = getattr(import_module(_MODULES[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
