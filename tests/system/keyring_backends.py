"""Keyring backends for the keyring cache's tests: a real one in a file, and two that fail.

``keyrings.alt.file.PlaintextKeyring`` is a real keyring backend that needs no desktop
session: the tests keep its file in their own folder. The failing ones are that backend
with the failures real ones show: keyring's own errors (a locked keychain, a dismissed
prompt), and Windows Credential Manager's cap on a secret's size.
"""

from __future__ import annotations

from keyring.errors import KeyringError
from keyrings.alt.file import PlaintextKeyring

#: Windows Credential Manager's cap on a secret, in bytes (of UTF-16).
WINDOWS_CAP = 2560


def plaintext_keyring(path: str) -> PlaintextKeyring:
    """A plain-text keyring whose file is ``path``."""
    backend = PlaintextKeyring()
    backend.file_path = path
    return backend


class FailingKeyring(PlaintextKeyring):
    """A keyring whose every read and write raises ``error``: one of keyring's own, as
    a keychain not unlocked or a Secret Service whose unlock prompt was dismissed."""

    def __init__(self, error: KeyringError) -> None:
        super().__init__()
        self.error = error

    def get_password(self, service: str, username: str) -> str | None:
        raise self.error

    def set_password(self, service: str, username: str, password: str) -> None:
        raise self.error


class CappedKeyring(PlaintextKeyring):
    """A keyring that refuses a secret larger than ``cap`` bytes of UTF-16 (Windows
    Credential Manager's cap by default), with the kind of error the Windows backend
    passes on (not one of keyring's own)."""

    cap = WINDOWS_CAP

    def set_password(self, service: str, username: str, password: str) -> None:
        if len(password.encode("utf-16-le")) > self.cap:
            raise OSError(1783, "The stub received bad data")
        super().set_password(service, username, password)


def capped_keyring(path: str, cap: int = WINDOWS_CAP) -> CappedKeyring:
    """A capped plain-text keyring whose file is ``path``."""
    backend = CappedKeyring()
    backend.file_path = path
    backend.cap = cap
    return backend
