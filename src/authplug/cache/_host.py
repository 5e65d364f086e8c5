"""What the caches kept on one host share: a renewal lock file, and no late overwrite.

:class:`HostCache` is their common part: the lock, and the async methods (the sync ones
in worker threads). The file and keyring caches define how an entry is read and written.

The file and keyring caches serialise renewal across the processes of a host by a lock
file (``filelock``). The lock file is re-entered by any thread of the process that
holds it (an async renewal takes it in one worker thread and releases it in another),
so it cannot keep two renewals, or two read-modify-writes, of one process apart: a
lock of the cache object's own does, for each. A forked child gets new ones (a lock
held by a parent's thread at fork time is not the child's to release).

And a write never replaces a token with one issued earlier (both with ``issued_at``, on
this host's clock): a renewal whose answer comes late (its lock given up meanwhile)
must not put back a refresh token the server has since rotated away.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from .. import _aio
from .._fork import reset_after_fork
from ..token import Token
from ._base import CacheError

__all__ = ["HostCache", "HostLock", "issued_later"]


class HostLock:
    """A lock file for the processes of one host, held once per process.

    Args:
        path: the lock file (created when first taken, mode 0600).
        timeout: seconds to wait for it, in all, before giving up (CacheError).
        what: what the messages name as locked (the token file, the keyring service).
        private_folder: create the lock file's folder (mode 0700) when it is missing.
    """

    def __init__(
        self, path: str, timeout: float, what: str, *, private_folder: bool = False
    ) -> None:
        self.path = path
        self.timeout = timeout
        self._what = what
        self._private_folder = private_folder
        self._file = self._new_file_lock()
        self._renewing = threading.Lock()
        self._writing = threading.Lock()
        reset_after_fork(self)

    def _new_file_lock(self) -> Any:
        from filelock import FileLock

        # thread_local=False: an async caller acquires in a worker thread and may
        # release in another.
        return FileLock(self.path, timeout=self.timeout, mode=0o600, thread_local=False)

    def _after_fork(self) -> None:
        self._file = self._new_file_lock()
        self._renewing = threading.Lock()
        self._writing = threading.Lock()

    @contextlib.contextmanager
    def held(self, timeout: float | None = None) -> Iterator[None]:
        """The lock file for the block (``timeout`` seconds at most to take it).

        Raises:
            CacheError: it was not free in time, or cannot be created.
        """
        from filelock import Timeout

        lock = self._file
        if self._private_folder:
            self._make_folder()
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

    def _make_folder(self) -> None:
        folder = os.path.dirname(self.path)
        try:
            # 0700: the folder is the user's own (a lock file others could take would
            # hold off this user's renewals).
            os.makedirs(folder, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create the folder {folder!r}: {exc.strerror}") from exc

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """The lock file, then one read-modify-write of this process at a time (a write
        outside a renewal, from another thread, re-enters the lock file)."""
        with self.held():
            if not self._writing.acquire(timeout=self.timeout):
                raise CacheError(f"timed out waiting to write {self._what}")
            try:
                yield
            finally:
                self._writing.release()

    @contextlib.contextmanager
    def renewal(self, hold: float | None = None) -> Iterator[None]:
        """One renewal of this process at a time, then the lock file (other processes).

        ``hold``: how long the holder may need it (a person logging in): the wait is that
        long when it is longer than ``timeout``.

        Raises:
            CacheError: another renewal held either for ``timeout`` (or ``hold``) seconds
                in all, or the lock file cannot be created.
        """
        wait = max(self.timeout, hold or 0.0)
        end = time.monotonic() + wait
        if not self._renewing.acquire(timeout=wait):
            raise CacheError(f"timed out waiting for another renewal of {self._what}")
        try:
            # One wait in all (the caches' ``max_wait``), whichever lock it is spent on.
            with self.held(max(0.0, end - time.monotonic())):
                yield
        finally:
            self._renewing.release()

    @contextlib.asynccontextmanager
    async def arenewal(self, hold: float | None = None) -> AsyncIterator[None]:
        """Async :meth:`renewal`: the locks are taken and released in worker threads."""
        locked = self.renewal(hold)
        await _aio.to_thread(locked.__enter__)
        try:
            yield
        finally:
            await _aio.to_thread(locked.__exit__, None, None, None)


class HostCache:
    """The renewal lock and the async methods of a cache kept on one host.

    A subclass sets ``_host`` and defines get, set and delete.
    """

    _host: HostLock

    @property
    def max_wait(self) -> float:
        """The longest a cache operation may wait (the lock)."""
        return self._host.timeout

    def get(self, key: str) -> Token | None:
        """The token stored under ``key``, or None."""
        raise NotImplementedError

    def set(self, key: str, token: Token) -> None:
        """Store ``token`` under ``key``."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove the entry of ``key``."""
        raise NotImplementedError

    #: :meth:`lock` takes ``hold=``: authplug asks for a lock a person's login may hold.
    takes_hold = True

    def lock(self, key: str, hold: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the renewal lock file (one for every key) for the block, against the
        other renewals of this process too.

        Args:
            key: the token's key.
            hold: how long the holder may need the lock (a person logging in): the
                others wait that long when it is longer than ``lock_timeout``.

        Raises:
            CacheError: another renewal held it for ``lock_timeout`` seconds (or
                ``hold``), or it cannot be created.
        """
        return self._host.renewal(hold)

    async def aget(self, key: str) -> Token | None:
        """Async :meth:`get`, in a worker thread."""
        return await _aio.to_thread(self.get, key)

    async def aset(self, key: str, token: Token) -> None:
        """Async :meth:`set`, in a worker thread."""
        await _aio.to_thread(self.set, key, token)

    async def adelete(self, key: str) -> None:
        """Async :meth:`delete`, in a worker thread."""
        await _aio.to_thread(self.delete, key)

    def alock(
        self, key: str, hold: float | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Async :meth:`lock`: the lock file is taken and released in worker threads."""
        return self._host.arenewal(hold)


def issued_later(entry: Any, token: Token) -> bool:
    """Whether the stored ``entry`` (a decoded token dict) is a valid token issued after
    ``token`` (both must say when). A bad entry is overwritten (it was reported when read).
    """
    if not isinstance(entry, dict) or token.issued_at is None:
        return False
    try:
        stored = Token.from_dict(entry)
    except Exception:  # anything unreadable is no reason to keep it
        return False
    return stored.issued_at is not None and stored.issued_at > token.issued_at
