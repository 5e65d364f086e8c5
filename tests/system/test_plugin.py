"""The pytest plugin's fixtures, used as README.rst shows."""

from __future__ import annotations

import httpx
import requests

from authplug import (
    DakotaAuth,
    LoginFormAuth,
    MogoplusAuth,
    OAuth2PasswordAuth,
    SemansysAuth,
    TelmaiAuth,
)
from authplug.testing import (
    DakotaEmulator,
    LoginFormEmulator,
    MogoplusEmulator,
    OAuth2Emulator,
    SemansysEmulator,
    TelmaiEmulator,
)


def test_my_sdk(semansys_emulator: SemansysEmulator) -> None:
    """The README's example, verbatim."""
    auth = SemansysAuth(**semansys_emulator.auth_kwargs())
    with requests.Session() as session:
        session.auth = auth
        assert session.get(semansys_emulator.api_url("/reports")).ok
        semansys_emulator.revoke_all()  # the next call gets a 401, renewed and replayed
        assert session.get(semansys_emulator.api_url("/reports")).ok
        assert semansys_emulator.token_calls == {"password": 1, "refresh_token": 1}


def test_every_fixture(
    oauth2_emulator: OAuth2Emulator,
    mogoplus_emulator: MogoplusEmulator,
    telmai_emulator: TelmaiEmulator,
    dakota_emulator: DakotaEmulator,
    loginform_emulator: LoginFormEmulator,
) -> None:
    """Each fixture is a running emulator its provider class works against."""
    pairs = [
        (OAuth2PasswordAuth, oauth2_emulator),
        (MogoplusAuth, mogoplus_emulator),
        (TelmaiAuth, telmai_emulator),
        (DakotaAuth, dakota_emulator),
        (LoginFormAuth, loginform_emulator),
    ]
    for cls, emulator in pairs:
        auth = cls(**emulator.auth_kwargs())
        verify = getattr(emulator, "ca_file", None)
        context = httpx.create_ssl_context(verify=True)
        if verify:
            context.load_verify_locations(verify)
        assert httpx.get(emulator.api_url(), auth=auth, verify=context).status_code == 200
        assert emulator.token_calls.total() == 1
