"""Test against real servers on loopback, offline: emulators, a server helper, a clock.

Install with ``pip install authplug[testing]``. The pytest plugin (registered
automatically) provides the fixtures ``oauth2_emulator``, ``semansys_emulator``,
``mogoplus_emulator``, ``telmai_emulator``, ``dakota_emulator`` and
``loginform_emulator``; emulators also work as context managers::

    from authplug.testing import OAuth2Emulator

    with OAuth2Emulator(token_lifetime=60) as emulator:
        auth = OAuth2PasswordAuth(token_url=emulator.token_url, ...)
        ...
        assert emulator.token_calls["password"] == 1

The generic emulator also logs people in (authorization code with PKCE, device grant);
:class:`HeadlessPerson` approves or denies there as a person in a browser would.
"""

from __future__ import annotations

from ._clock import FakeClock
from ._dpop import DPoPVerifier
from ._emulator import ApiHit, OAuth2Emulator
from ._emulators import (
    DakotaEmulator,
    LoginFormEmulator,
    MogoplusEmulator,
    SemansysEmulator,
    TelmaiEmulator,
)
from ._person import HeadlessPerson
from ._server import LoopbackServer, Request, Response
from ._settle import asettle, settle

__all__ = [
    "EMULATORS",
    "ApiHit",
    "DPoPVerifier",
    "DakotaEmulator",
    "FakeClock",
    "HeadlessPerson",
    "LoginFormEmulator",
    "LoopbackServer",
    "MogoplusEmulator",
    "OAuth2Emulator",
    "Request",
    "Response",
    "SemansysEmulator",
    "TelmaiEmulator",
    "asettle",
    "settle",
]

#: Lower-case provider name -> emulator class.
EMULATORS: dict[str, type[OAuth2Emulator]] = {
    "semansys": SemansysEmulator,
    "mogoplus": MogoplusEmulator,
    "telmai": TelmaiEmulator,
    "dakota": DakotaEmulator,
    "loginform": LoginFormEmulator,
}
