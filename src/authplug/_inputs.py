"""What authplug reads from outside for client authentication, read within bounds.

- :func:`kind_of` tells what key-like text is (a PEM, the base64 of one, a PEM's body
  without its BEGIN/END lines, a JWS, a JWE, a base64 SAML assertion...) so that a
  message can say what was given without quoting any of it: such text is a secret.
- :func:`plausible_path` says whether text that names no file may be shown as a path.
- :func:`read_small_file` reads a key or assertion file: a regular file of at most
  :data:`MAX_FILE` bytes. A FIFO would block the caller, a device such as
  ``/dev/zero`` never end.
- :func:`call_within` (awaited) and :func:`run_within` (blocking) run a user's blocking
  callable in a thread of its own, waited for at most a given time.

The holder :class:`~authplug._redact.Hidden` keeps such arguments out of reprs and
traceback locals until they are read here.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import errno
import os
import stat
import threading
from collections.abc import Callable
from typing import Literal, TypeVar

from ._lazy import regex

__all__ = [
    "MAX_FILE",
    "FileProblem",
    "Kind",
    "Overdue",
    "call_within",
    "kind_of",
    "noun",
    "plausible_path",
    "read_small_file",
    "run_within",
]

T = TypeVar("T")

#: The largest key or assertion file read (a key is a few kB, an assertion less).
MAX_FILE = 64 << 10

Kind = Literal[
    "pem", "damaged-pem", "base64-pem", "pem-body", "base64-json", "base64-xml", "jws", "jwe"
]

_NOUNS: dict[Kind, str] = {
    "pem": "a PEM key",
    "damaged-pem": "text like a PEM key whose BEGIN or END line is damaged",
    "base64-pem": "base64 text that decodes to a PEM key",
    "pem-body": (
        "base64 text without the BEGIN/END lines of a PEM (a PEM key's body, or a DER key)"
    ),
    "base64-json": "base64 text that decodes to JSON",
    "base64-xml": "base64 text that decodes to XML (a SAML assertion)",
    "jws": "a JWS (a signed token)",
    "jwe": "a JWE (an encrypted token)",
}

_BASE64 = regex(r"[A-Za-z0-9+/_-]+={0,2}")
_SEGMENT = regex(r"[A-Za-z0-9_-]*")
# A PEM's armour with a typo: a run of dashes, or its words, where a key's text stands.
_ARMOUR = regex(r"-{3,}|\bBEGIN\b|\bEND\b|PRIVATE KEY")
# A run of base64 this long is key material or a token, not a file or directory name.
_TOKEN_RUN = regex(r"[A-Za-z0-9+=_-]{40,}")
_PATH_SEPARATORS = regex(r"[\\/]")
_EXTENSION = regex(r"\.[A-Za-z0-9]{1,8}$")


def _decoded(text: str) -> bytes | None:
    """The bytes of base64 (standard or URL-safe, line breaks allowed), else None."""
    compact = "".join(text.split())
    if not _BASE64().fullmatch(compact):
        return None
    body = compact.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _is_jose(text: str, parts: int) -> bool:
    """A compact JWS (3 parts) or JWE (5 parts): a JSON header, base64url segments."""
    segments = text.split(".")
    if len(segments) != parts or not all(_SEGMENT().fullmatch(s) for s in segments):
        return False
    header = _decoded(segments[0]) if segments[0] else None
    return header is not None and header.lstrip().startswith(b"{")


def kind_of(text: str) -> Kind | None:
    """What ``text`` looks like, if it looks like key material or a token; else None."""
    stripped = text.strip()
    if "-----BEGIN" in stripped:
        return "pem"
    if _is_jose(stripped, 3):
        return "jws"
    if _is_jose(stripped, 5):
        return "jwe"
    decoded = _decoded(stripped) if len(stripped) >= 16 else None
    if decoded is not None:
        start = decoded.lstrip()
        if b"-----BEGIN" in decoded:
            return "base64-pem"
        if start.startswith(b"<"):
            return "base64-xml"
        if start.startswith(b"{"):
            return "base64-json"
        if decoded[:1] == b"\x30" and len(decoded) >= 32:  # an ASN.1 SEQUENCE: a DER key
            return "pem-body"
    if _ARMOUR().search(stripped):
        return "damaged-pem"
    return None


def noun(kind: Kind) -> str:
    """``kind`` in words, for a message."""
    return _NOUNS[kind]


def plausible_path(text: str) -> bool:
    """Whether ``text``, which names no file, may be shown in a message as a path.

    Only text shaped like a path is: one line, a directory separator, a leading ``~``
    or a file extension, and no long base64 run (that is key material or a token, and
    a value that is a secret must never be repeated).
    """
    if not text or len(text) > 1024 or not text.isprintable():
        return False
    if any(len(part) > 255 for part in _PATH_SEPARATORS().split(text)):
        return False
    if _TOKEN_RUN().search(text):
        return False
    return bool(
        _PATH_SEPARATORS().search(text) or text.startswith("~") or _EXTENSION().search(text)
    )


class FileProblem:
    """Why a file was not read: ``missing`` when nothing by that name is there (the name
    may not be a path at all), else ``reason`` says what is wrong with the file."""

    __slots__ = ("missing", "reason")

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        self.reason = reason
        self.missing = missing

    def __repr__(self) -> str:
        return f"FileProblem({self.reason!r}, missing={self.missing!r})"


# A name that cannot be a file here: nothing to report of the file, only of the text.
_NO_FILE = {errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.EINVAL, errno.ELOOP}
# Opening a FIFO for reading waits for a writer unless asked not to (no such flag on
# Windows, which has no FIFOs to open by name).
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def read_small_file(path: str | os.PathLike[str]) -> bytes | FileProblem:
    """The content of a regular file of at most :data:`MAX_FILE` bytes, or why not.

    Never raises for what the file system says, and never waits on a FIFO or reads
    a device: the file is opened without blocking and looked at before it is read.
    """
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except ValueError:  # a NUL character: no file has such a name
        return FileProblem("no such file", missing=True)
    except OSError as exc:
        return FileProblem(exc.strerror or type(exc).__name__, missing=exc.errno in _NO_FILE)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            return FileProblem("not a regular file")
        if info.st_size > MAX_FILE:
            return FileProblem(f"larger than {MAX_FILE >> 10} KiB")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE:
            chunk = os.read(descriptor, MAX_FILE + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_FILE:  # it grew since it was looked at
            return FileProblem(f"larger than {MAX_FILE >> 10} KiB")
        return b"".join(chunks)
    except OSError as exc:
        return FileProblem(exc.strerror or type(exc).__name__)
    finally:
        os.close(descriptor)


class Overdue(Exception):
    """A call did not return within its limit (it runs on, detached)."""


def _start(
    call: Callable[[], T], done: Callable[[], None], name: str = "authplug-assertion"
) -> list[tuple[T | None, BaseException | None]]:
    """Run ``call()`` in a daemon thread of its own, in a copy of the caller's context;
    ``done()`` when it ends. The list gets its ``(value, error)``."""
    outcome: list[tuple[T | None, BaseException | None]] = []

    def run() -> None:
        try:
            outcome.append((call(), None))
        except BaseException as exc:  # handed to the waiting caller, which raises it
            outcome.append((None, exc))
        finally:
            done()

    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(run,), name=name, daemon=True)
    try:
        thread.start()
    except RuntimeError:  # the interpreter is exiting (3.12 starts no thread then)
        context.run(run)  # here, then: a renewal that exit waits for still ends
    return outcome


def _result(outcome: list[tuple[T | None, BaseException | None]], limit: float) -> T:
    if not outcome:
        raise Overdue(f"it did not return within {limit:g}s")
    value, error = outcome[0]
    if error is not None:
        raise error
    return value  # type: ignore[return-value]  # set together with error=None


def run_within(call: Callable[[], T], limit: float, name: str = "authplug-assertion") -> T:
    """``call()`` in a daemon thread of its own (named ``name``), waited for at most
    ``limit`` seconds: :func:`call_within` for a blocking caller (a sync request, a
    renewal thread, closing)."""
    finished = threading.Event()
    outcome = _start(call, finished.set, name)
    finished.wait(limit)
    return _result(outcome, limit)


async def call_within(call: Callable[[], T], limit: float) -> T:
    """``call()`` in a daemon thread of its own, awaited at most ``limit`` seconds.

    Not in the event loop's worker threads: ``asyncio.run()`` joins those when it ends
    (and trio waits for a thread it cannot cancel), so a call that hangs would hold the
    program. A call that outlives ``limit`` raises :class:`Overdue` here and runs on,
    detached; what it returns later is dropped. The call runs in a copy of the caller's
    context, as in ``asyncio.to_thread``.
    """
    from . import _aio

    wake, woken = _aio.current().waker()
    outcome = _start(call, wake)
    await woken(limit)
    return _result(outcome, limit)
