"""A token file shared by the processes of one host.

The file holds a JSON object of key -> token. It is written atomically (a temporary
file in the same folder, then a rename), readable by its owner only (0600), and
renewal is serialised across processes by a lock file (``filelock``). A corrupt or
truncated file reads as empty: the next renewal rewrites it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from ..token import Token
from ._base import CacheError

__all__ = ["FileTokenCache"]

log = logging.getLogger("authplug")


class FileTokenCache:
    """Tokens in one file, renewal single-flight across the processes of a host.

    Args:
        path: the token file (created when first written, mode 0600). The lock is
            ``path`` + ``".lock"``.
        lock_timeout: seconds to wait for another process's renewal before going on
            without the lock (a warning is logged).
    """

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 60.0) -> None:
        from filelock import FileLock

        self.path = Path(path)
        # thread_local=False: an async caller acquires in a worker thread and may
        # release in another.
        self._lock = FileLock(
            str(self.path) + ".lock", timeout=lock_timeout, mode=0o600, thread_local=False
        )

    def __repr__(self) -> str:
        return f"FileTokenCache({str(self.path)!r})"

    def _read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CacheError(
                f"cannot read the token file {str(self.path)!r}: {exc.strerror}"
            ) from exc
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            log.debug("token file %s is not valid JSON; treating it as empty", self.path)
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> Token | None:
        entry = self._read().get(key)
        if not isinstance(entry, dict):
            return None
        try:
            return Token.from_dict(entry)
        except ValueError:
            return None

    def set(self, key: str, token: Token) -> None:
        with self._locked():
            data = self._read()
            data[key] = token.to_dict()
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

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout as exc:
            raise CacheError(f"timed out waiting for {self._lock.lock_file!r}") from exc
        except OSError as exc:
            raise CacheError(f"cannot lock {self._lock.lock_file!r}: {exc.strerror}") from exc
        try:
            yield
        finally:
            self._lock.release()

    def lock(self, key: str) -> contextlib.AbstractContextManager[None]:
        return self._locked()

    async def aget(self, key: str) -> Token | None:
        return await asyncio.to_thread(self.get, key)

    async def aset(self, key: str, token: Token) -> None:
        await asyncio.to_thread(self.set, key, token)

    @contextlib.asynccontextmanager
    async def alock(self, key: str) -> AsyncIterator[None]:
        locked = self._locked()
        await asyncio.to_thread(locked.__enter__)
        try:
            yield
        finally:
            await asyncio.to_thread(locked.__exit__, None, None, None)
