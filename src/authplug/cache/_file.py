"""A token file shared by the processes of one host.

The file holds a JSON object of key -> token. It is written atomically (a temporary
file in the same folder, then a rename), readable by its owner only (0600), and
renewal is serialised across processes by a lock file (``filelock``), and across the
renewals of one process by a lock of the cache object's own (the lock file is held once
per process). A corrupt or truncated file, or an entry that is not a valid token, reads
as empty (one WARNING): the next renewal rewrites it.

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
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from .. import _aio
from .._fork import reset_after_fork
from ..spec import read_json
from ..token import Token
from ._base import CacheError, token_from_entry

__all__ = ["FileTokenCache"]

log = logging.getLogger("authplug")


class FileTokenCache:
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
        self._lock = self._new_lock()
        # The file lock is re-entered by any thread of this process (an async renewal
        # takes it in one worker thread and stores in another), so it cannot keep two
        # renewals of this process apart: this lock does, for lock()/alock() only.
        self._renewing = threading.Lock()
        # And one read-modify-write of the file at a time in this process (a write
        # outside a renewal, from another thread, re-enters the file lock too).
        self._writing = threading.Lock()
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"FileTokenCache({str(self.path)!r})"

    @property
    def max_wait(self) -> float:
        """The longest a cache operation may wait (the lock)."""
        return self.lock_timeout

    def _new_lock(self) -> Any:
        from filelock import FileLock

        # thread_local=False: an async caller acquires in a worker thread and may
        # release in another.
        return FileLock(
            str(self.path) + ".lock", timeout=self.lock_timeout, mode=0o600, thread_local=False
        )

    def _after_fork(self) -> None:
        # A lock held by a parent's thread at fork time is not this process's to release.
        self._lock = self._new_lock()
        self._renewing = threading.Lock()
        self._writing = threading.Lock()

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
        with self._locked(), self._written():
            data = self._read_file(quiet=True)  # a bad file was reported when read; now replaced
            if _issued_later(data.get(key), token):
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
        with self._locked(), self._written():
            data = self._read_file(quiet=True)
            if data.pop(key, None) is not None:
                self._write(json.dumps(data).encode("utf-8"))

    @contextlib.contextmanager
    def _written(self) -> Iterator[None]:
        """One read-modify-write of the file at a time in this process."""
        if not self._writing.acquire(timeout=self.lock_timeout):
            raise CacheError(f"timed out waiting to write {str(self.path)!r}")
        try:
            yield
        finally:
            self._writing.release()

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

    @contextlib.contextmanager
    def _locked(self, timeout: float | None = None) -> Iterator[None]:
        from filelock import Timeout

        lock = self._lock
        try:
            lock.acquire(timeout=timeout)
        except Timeout as exc:
            raise CacheError(f"timed out waiting for {lock.lock_file!r}") from exc
        except OSError as exc:
            raise CacheError(f"cannot lock {lock.lock_file!r}: {exc.strerror}") from exc
        try:
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def _renewal(self, wait: float) -> Iterator[None]:
        """One renewal of this process at a time, then the lock file (other processes)."""
        end = time.monotonic() + wait
        if not self._renewing.acquire(timeout=wait):
            raise CacheError(f"timed out waiting for another renewal of {str(self.path)!r}")
        try:
            # One wait in all (``max_wait``), whichever lock it is spent on.
            with self._locked(max(0.0, end - time.monotonic())):
                yield
        finally:
            self._renewing.release()

    #: :meth:`lock` takes ``hold=``: authplug asks for a lock a person's login may hold.
    takes_hold = True

    def lock(self, key: str, hold: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the lock file (``path`` + ``".lock"``, one for every key) for the block,
        against the other renewals of this process too.

        Args:
            key: the token's key.
            hold: how long the holder may need the lock (a person logging in): the
                others wait that long when it is longer than ``lock_timeout``.

        Raises:
            CacheError: another renewal held it for ``lock_timeout`` seconds (or
                ``hold``), or it cannot be created.
        """
        return self._renewal(max(self.lock_timeout, hold or 0.0))

    async def aget(self, key: str) -> Token | None:
        """Async :meth:`get`, in a worker thread."""
        return await _aio.to_thread(self.get, key)

    async def aset(self, key: str, token: Token) -> None:
        """Async :meth:`set`, in a worker thread."""
        await _aio.to_thread(self.set, key, token)

    async def adelete(self, key: str) -> None:
        """Async :meth:`delete`, in a worker thread."""
        await _aio.to_thread(self.delete, key)

    @contextlib.asynccontextmanager
    async def alock(self, key: str, hold: float | None = None) -> AsyncIterator[None]:
        """Async :meth:`lock`: the lock file is taken and released in worker threads."""
        locked = self._renewal(max(self.lock_timeout, hold or 0.0))
        await _aio.to_thread(locked.__enter__)
        try:
            yield
        finally:
            await _aio.to_thread(locked.__exit__, None, None, None)


def _issued_later(entry: Any, token: Token) -> bool:
    """Whether the stored ``entry`` is a valid token issued after ``token`` (both must
    say when). A bad entry is overwritten (it was reported when read)."""
    if not isinstance(entry, dict) or token.issued_at is None:
        return False
    try:
        stored = Token.from_dict(entry)
    except Exception:  # anything unreadable is no reason to keep it
        return False
    return stored.issued_at is not None and stored.issued_at > token.issued_at
