"""The providers authplug serves out of the box, one module each.

Each is a :class:`~authplug.spec.ProviderSpec` plus a keyword-only class that says
which credentials it takes and where its token URL is.
"""

from __future__ import annotations

from .dakota import DakotaAuth
from .loginform import LoginFormAuth
from .mogoplus import MogoplusAuth
from .semansys import SemansysAuth
from .telmai import TelmaiAuth

__all__ = ["PROVIDERS", "DakotaAuth", "LoginFormAuth", "MogoplusAuth", "SemansysAuth", "TelmaiAuth"]

#: Lower-case provider name -> auth class (used by the command line).
PROVIDERS = {
    "semansys": SemansysAuth,
    "mogoplus": MogoplusAuth,
    "telmai": TelmaiAuth,
    "dakota": DakotaAuth,
    "loginform": LoginFormAuth,
}
