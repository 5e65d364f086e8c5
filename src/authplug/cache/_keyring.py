"""Tokens in the operating system's keyring, for the logins of people.

A person's login (a refresh token that lasts for weeks) belongs where their other
secrets are: the macOS Keychain, Windows Credential Manager, the desktop's Secret
Service. The ``keyring`` package reaches them (``pip install "authplug[keyring]"``); it
is imported when a cache is built, never by ``import authplug``.

Each key's entry is the token's JSON (as a token file keeps it) stored as the password
of (service, key). A keyring has no lock, so renewal is serialised across the user's
processes by a lock file in a per-user runtime folder (``$XDG_RUNTIME_DIR``, else the
user's cache folder; 0700) named from the service, and across the renewals of one
process by the cache's own lock (both in ``_host``). A write never replaces a token
with one issued earlier, for the same reason as in the token file.

A backend that fails (no backend at all, a locked keychain, a refused write) is a
:class:`CacheError` whose message names the backend and says what to do: requests go
on with the process's own token. Some backends cap a secret's size: Windows Credential
Manager at 2560 bytes, which keyring fills with UTF-16 (about 1280 characters of JSON,
less than a token with an ID token and a long refresh token may take); a refused
write says so.

Calls to the backend are not bounded in time: a keyring that asks the person to unlock
it waits for their answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigurationError
from ..spec import read_json
from ..token import Token
from ._base import CacheError, token_from_entry
from ._host import HostCache, HostLock, issued_later

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

__all__ = ["KeyringTokenCache"]

log = logging.getLogger("authplug")

T = TypeVar("T")

#: The smallest cap on a secret among the common backends: Windows Credential Manager's
#: (CRED_MAX_CREDENTIAL_BLOB_SIZE), in bytes of the UTF-16 keyring stores there.
_SMALLEST_CAP = 2560


class KeyringTokenCache(HostCache):
    """Tokens in the OS keyring, renewal single-flight across the user's processes.

    Args:
        service: the keyring service the entries are stored under (one entry per
            token key); give your program's name to keep its logins apart.
        lock_path: the renewal lock file; by default ``authplug/keyring-<service>.lock``
            in ``$XDG_RUNTIME_DIR``, else in the user's cache folder (the folder is
            created with mode 0700).
        lock_timeout: seconds to wait for another process's renewal before going on
            without the lock (a warning is logged).
        keyring: a ``keyring.backend.KeyringBackend`` to use; by default keyring's own
            choice (``keyring.get_keyring()`` at each call, so ``keyring.set_keyring()``
            and ``PYTHON_KEYRING_BACKEND`` apply).

    Attributes:
        service: the keyring service.
        lock_path: the renewal lock file.
        lock_timeout: seconds to wait for another process's renewal.

    Raises:
        ConfigurationError: the ``keyring`` package is not installed, or an argument
            is of the wrong kind.
    """

    def __init__(
        self,
        service: str = "authplug",
        *,
        lock_path: str | os.PathLike[str] | None = None,
        lock_timeout: float = 60.0,
        keyring: KeyringBackend | None = None,
    ) -> None:
        module = _import_keyring()
        if not isinstance(service, str) or not service:
            raise ConfigurationError(
                f"service= must be a non-empty string (your program's name), not {service!r}"
            )
        if keyring is not None and not isinstance(keyring, module.backend.KeyringBackend):
            raise ConfigurationError(
                "keyring= takes a keyring.backend.KeyringBackend instance (or None for "
                f"keyring's default), not {type(keyring).__name__}"
            )
        self.service = service
        self.lock_timeout = lock_timeout
        self.lock_path = Path(lock_path) if lock_path is not None else _default_lock_path(service)
        self._backend = keyring
        self._default: Callable[[], KeyringBackend] = module.get_keyring
        self._keyring_error: type[Exception] = module.errors.KeyringError
        self._no_keyring: type[Exception] = module.errors.NoKeyringError
        self._locked: type[Exception] = module.errors.KeyringLocked
        self._host = HostLock(
            str(self.lock_path),
            lock_timeout,
            f"the keyring service {service!r}",
            private_folder=lock_path is None,
        )

    def __repr__(self) -> str:
        return f"KeyringTokenCache(service={self.service!r}, backend={self._backend_name()!r})"

    def _current(self) -> KeyringBackend:
        return self._backend if self._backend is not None else self._default()

    def _backend_name(self) -> str:
        try:
            backend = self._current()
        except Exception as exc:  # a repr never raises: keyring's set-up may
            return f"unknown ({type(exc).__name__})"
        kind = type(backend)
        return f"{kind.__module__}.{kind.__qualname__}"

    def _backend_call(self, what: str, call: Callable[[KeyringBackend], T], size: int = 0) -> T:
        """``call(backend)``; whatever the backend raises becomes a CacheError that
        names it and says what to do (``size``: an entry's bytes in UTF-16, when writing)."""
        try:
            return call(self._current())
        except self._no_keyring as exc:
            raise CacheError(
                f"no keyring backend is available ({self._backend_name()}): install one "
                "(the Secret Service needs a desktop session), choose one with "
                "PYTHON_KEYRING_BACKEND or keyring=, or keep tokens in a FileTokenCache"
            ) from exc
        except self._locked as exc:
            raise CacheError(
                f"the keyring backend {self._backend_name()} is locked: unlock it (log in to "
                "the desktop session; on macOS, security unlock-keychain)"
            ) from exc
        except Exception as exc:  # a backend is another package's code: any failure
            raise CacheError(self._failure(what, exc, size)) from exc

    def _failure(self, what: str, exc: Exception, size: int) -> str:
        # Only keyring's own errors show their text: another library's might quote
        # what it was given (a token).
        detail = f"{type(exc).__name__}: {str(exc)[:200]}"
        if not isinstance(exc, self._keyring_error):
            detail = type(exc).__name__
        message = (
            f"the keyring backend {self._backend_name()} failed to {what} the entry of "
            f"service {self.service!r} ({detail})"
        )
        if size > _SMALLEST_CAP:
            return message + (
                f"; the entry takes {size} bytes as UTF-16, and some backends refuse a "
                f"secret that large (Windows Credential Manager: {_SMALLEST_CAP} bytes): "
                "keep these tokens in a FileTokenCache"
            )
        return message + (
            "; see that the keyring works (keyring --list-backends), choose another "
            "backend (PYTHON_KEYRING_BACKEND or keyring=), or keep tokens in a FileTokenCache"
        )

    def _read(self, key: str) -> str | None:
        return self._backend_call("read", lambda backend: backend.get_password(self.service, key))

    def get(self, key: str) -> Token | None:
        """The token stored under ``key``, or None (an entry that is not a valid token
        reads as None, with one WARNING).

        Raises:
            CacheError: the backend failed (see the module's docstring).
        """
        where = f"the keyring service {self.service!r} (key {key[:8]}…)"
        return token_from_entry(self._read(key), where)

    def set(self, key: str, token: Token) -> None:
        """Store ``token`` under ``key``.

        A token issued later than ``token`` that is stored already stays (logged at
        INFO), as in a :class:`~authplug.FileTokenCache`.

        Raises:
            CacheError: the lock file cannot be taken, or the backend failed or refused
                the entry (too large for it, say).
        """
        entry = json.dumps(token.to_dict())
        with self._host.writing():
            stored = self._read(key)
            if stored is not None and issued_later(read_json(_utf8(stored)), token):
                log.info(
                    "the keyring service %r holds a token issued after the one being "
                    "stored; it stays (a late answer never replaces a newer refresh token)",
                    self.service,
                )
                return
            self._backend_call(
                "write",
                lambda backend: backend.set_password(self.service, key, entry),
                len(entry.encode("utf-16-le", "surrogatepass")),
            )

    def delete(self, key: str) -> None:
        """Remove the entry of ``key`` (after a revocation); nothing if there is none.

        Raises:
            CacheError: the lock file cannot be taken, or the backend failed.
        """

        def remove(backend: KeyringBackend) -> None:
            # Backends raise PasswordDeleteError for a missing entry, and for failures.
            if backend.get_password(self.service, key) is not None:
                backend.delete_password(self.service, key)

        with self._host.writing():
            self._backend_call("delete", remove)


def _import_keyring() -> Any:
    """The ``keyring`` package, or a ConfigurationError saying how to install it."""
    try:
        import keyring  # the optional extra
        import keyring.backend
        import keyring.errors
    except ImportError as exc:
        raise ConfigurationError(
            "KeyringTokenCache needs the keyring package: pip install 'authplug[keyring]'"
        ) from exc
    return keyring


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _default_lock_path(service: str) -> Path:
    """``authplug/keyring-<service>.lock`` in the user's runtime folder, else cache folder.

    The service may hold any character: the name keeps a safe part of it, and a hash
    of all of it (two services never share a lock).
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    folder = Path(runtime) if os.path.isabs(runtime) else _user_cache_folder()
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", service)[:40]
    digest = hashlib.sha256(service.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return folder / "authplug" / f"keyring-{readable}-{digest}.lock"


def _user_cache_folder() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    cache = os.environ.get("XDG_CACHE_HOME", "")
    return Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"
