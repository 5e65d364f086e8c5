"""A token file shared by the processes of one host.

The file holds a JSON object of key -> token. It is written atomically (a temporary
file in the same folder, then a rename), readable by its owner only (0600), and
renewal is serialised across processes by a lock file (``filelock``), and across the
renewals of one process by a lock of the cache object's own (the lock file is held once
per process; both in ``_host``). A corrupt or truncated file, or an entry that is not a
valid token, reads as empty (one WARNING): the next renewal rewrites it.

A write never replaces a token with one issued earlier (both with ``issued_at``, on
this host's clock): a renewal whose answer comes late (its lock given up meanwhile)
must not put back a refresh token the server has since rotated away; the others would
renew from it, and a server with reuse detection then revokes the whole family.

Like ssh with a private key, the cache refuses a file that another user owns or that
group or others may write: such a file could hand this process someone else's token.
It is then unavailable (never read, never overwritten) and requests go on with the
process's own token.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from ..spec import read_json
from ..token import Token
from ._base import CacheError, token_from_entry
from ._host import HostCache, HostLock, issued_later

__all__ = ["FileTokenCache"]

log = logging.getLogger("authplug")


class FileTokenCache(HostCache):
    """Tokens in one file, renewal single-flight across the processes of a host.

    Args:
        path: the token file (created when first written, mode 0600; ``~`` is the
            user's home, and a missing folder is made, mode 0700). The lock is
            ``path`` + ``".lock"``. The file must belong to the running user and must
            not be writable by group or others, else it is refused.
        lock_timeout: seconds to wait for another process's renewal before going on
            without the lock (a warning is logged).

    Attributes:
        path: the token file.
        lock_timeout: seconds to wait for another process's renewal.
    """

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 60.0) -> None:
        self.path = Path(path).expanduser()  # "~/.config/my-cli/tokens", as people write it
        # A program's first run: its folder does not exist yet (made private to this
        # user). One that cannot be made shows as a CacheError at the first use.
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.lock_timeout = lock_timeout
        self._host = HostLock(str(self.path) + ".lock", lock_timeout, repr(str(self.path)))

    def __repr__(self) -> str:
        return f"FileTokenCache({str(self.path)!r})"

    def _read_file(self, *, quiet: bool = False) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as handle:
                self._check_owner(os.fstat(handle.fileno()))
                raw = handle.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CacheError(
                f"cannot read the token file {str(self.path)!r}: {exc.strerror}"
            ) from exc
        data = read_json(raw)
        if isinstance(data, dict):
            return data
        if raw.strip() and not quiet:
            log.warning(
                "the token file %s is not a JSON object; treating it as empty (the next "
                "renewal rewrites it)",
                self.path,
            )
        return {}

    def _check_owner(self, info: os.stat_result) -> None:
        """Refuse a file another user owns, or that group or others may write."""
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
            raise CacheError(
                f"refusing the token file {str(self.path)!r}: it belongs to another user "
                f"(uid {info.st_uid}); remove it, or give it to this user with mode 0600"
            )
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise CacheError(
                f"refusing the token file {str(self.path)!r}: group or others may write it "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); chmod 600 it"
            )

    def get(self, key: str) -> Token | None:
        """The token stored under ``key``, or None (an entry or a file that is not
        valid reads as None, with one WARNING).

        Raises:
            CacheError: the file cannot be read, or is refused (another user's, or
                writable by group or others).
        """
        return token_from_entry(self._read_file().get(key), f"{self.path} (key {key[:8]}…)")

    def set(self, key: str, token: Token) -> None:
        """Store ``token`` under ``key``: the file is rewritten atomically, mode 0600.

        A token issued later than ``token`` that is stored already stays (logged at
        INFO): see the module's docstring.

        Raises:
            CacheError: the file cannot be locked, read or written, or is refused.
        """
        with self._host.writing():
            data = self._read_file(quiet=True)  # a bad file was reported when read; now replaced
            if issued_later(data.get(key), token):
                log.info(
                    "the token file %s holds a token issued after the one being stored; "
                    "it stays (a late answer never replaces a newer refresh token)",
                    self.path,
                )
                return
            data[key] = token.to_dict()
            self._write(json.dumps(data).encode("utf-8"))

    def delete(self, key: str) -> None:
        """Remove the entry of ``key`` (after a revocation); nothing if there is none."""
        with self._host.writing():
            data = self._read_file(quiet=True)
            if data.pop(key, None) is not None:
                self._write(json.dumps(data).encode("utf-8"))

    def _write(self, payload: bytes) -> None:
        folder = self.path.parent
        try:
            fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{self.path.name}.")
        except OSError as exc:
            raise CacheError(f"cannot write in {str(folder)!r}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise CacheError(f"cannot write {str(self.path)!r}: {exc.strerror}") from exc
