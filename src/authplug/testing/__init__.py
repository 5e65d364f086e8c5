"""Test against real servers on loopback, offline: emulators, a server helper, a clock.

Install with ``pip install authplug[testing]``. The pytest plugin (registered
automatically) provides the ``oauth2_emulator`` fixture; emulators also work as context
managers::

    from authplug.testing import OAuth2Emulator

    with OAuth2Emulator(token_lifetime=60) as emulator:
        auth = OAuth2PasswordAuth(token_url=emulator.token_url, ...)
        ...
        assert emulator.token_calls["password"] == 1
"""

from __future__ import annotations

from ._clock import FakeClock
from ._emulator import ApiHit, OAuth2Emulator
from ._server import LoopbackServer, Request, Response

__all__ = ["ApiHit", "FakeClock", "LoopbackServer", "OAuth2Emulator", "Request", "Response"]
