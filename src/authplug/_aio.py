"""The event loop a coroutine runs on: asyncio or trio, behind one small interface.

httpx's async client runs on either (``sniffio`` says which); aiohttp and niquests run
on asyncio. The token manager needs five things of the loop it is called on: to know
whether it is closed, to start a detached task (a renewal that no caller's
cancellation can strand), to be woken from another thread, to sleep, and to run a
blocking call in a worker thread. :func:`current` gives them for the running loop.

trio is imported only when a caller runs on trio, and asyncio only by a coroutine that
runs on it: a sync user loads neither (when asyncio is not imported, no asyncio loop can
be running, nor can a task be cancelled by one).
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "Loop",
    "Task",
    "current",
    "is_cancellation",
    "on_trio",
    "running",
    "sleep",
    "to_thread",
    "within",
]

T = TypeVar("T")


class Task(Protocol):
    """A detached task, as the manager keeps it."""

    def cancel(self) -> object: ...
    def done(self) -> bool: ...


class Loop(Protocol):
    """One running event loop (an asyncio loop, or one ``trio.run``)."""

    def same(self, other: Loop | None) -> bool:
        """Whether ``other`` is this very loop."""

    def is_closed(self) -> bool:
        """The loop ended: nothing started on it will ever finish."""

    def spawn(self, work: Coroutine[Any, Any, None], done: Callable[[Task], None]) -> Task:
        """Run ``work`` detached from the caller; ``done`` is called when it ends."""

    def waker(self) -> tuple[Callable[[], None], Callable[[float], Awaitable[bool]]]:
        """``(wake, wait)``: ``wake()`` may be called from any thread, once or more;
        ``await wait(seconds)`` is True once woken, False after ``seconds``."""


class _Asyncio:
    __slots__ = ("loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def same(self, other: Loop | None) -> bool:
        return isinstance(other, _Asyncio) and other.loop is self.loop

    def is_closed(self) -> bool:
        return self.loop.is_closed()

    def spawn(self, work: Coroutine[Any, Any, None], done: Callable[[Task], None]) -> Task:
        task = self.loop.create_task(work)
        task.add_done_callback(done)
        return task

    def waker(self) -> tuple[Callable[[], None], Callable[[float], Awaitable[bool]]]:
        import asyncio

        loop = self.loop
        future: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not future.done():
                future.set_result(None)

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(resolve)

        async def wait(seconds: float) -> bool:
            if not future.done():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(future), seconds)
            return future.done()

        return wake, wait


class _TrioTask:
    """A trio system task, cancellable through its own cancel scope."""

    __slots__ = ("_done", "scope")

    def __init__(self, scope: Any) -> None:
        self.scope = scope
        self._done = False

    def cancel(self) -> None:
        self.scope.cancel()

    def done(self) -> bool:
        return self._done


class _Trio:
    __slots__ = ("token",)

    def __init__(self, token: Any) -> None:
        self.token = token

    def same(self, other: Loop | None) -> bool:
        return isinstance(other, _Trio) and other.token is self.token

    def is_closed(self) -> bool:
        import trio

        try:
            self.token.run_sync_soon(_nothing)
        except trio.RunFinishedError:
            return True
        return False

    def spawn(self, work: Coroutine[Any, Any, None], done: Callable[[Task], None]) -> Task:
        import trio

        task = _TrioTask(trio.CancelScope())

        async def run() -> None:
            try:
                with task.scope:
                    await work
            finally:
                task._done = True
                done(task)

        # A system task: it outlives the caller's nursery and cancel scopes, and is
        # cancelled only when the run ends. It runs in a copy of the caller's context,
        # as an asyncio task does (a trace's current span, say, is the caller's).
        trio.lowlevel.spawn_system_task(
            run, name="authplug-renewal", context=contextvars.copy_context()
        )
        return task

    def waker(self) -> tuple[Callable[[], None], Callable[[float], Awaitable[bool]]]:
        import trio

        event = trio.Event()
        token = self.token

        def wake() -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(event.set)

        async def wait(seconds: float) -> bool:
            with trio.move_on_after(seconds):
                await event.wait()
            return event.is_set()

        return wake, wait


def _nothing() -> None:
    return None


def _library() -> str | None:
    import sniffio  # here, not at import: only coroutines and waiting threads ask

    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


def on_trio() -> bool:
    """Whether the calling coroutine runs on trio."""
    return _library() == "trio"


def current() -> Loop:
    """The loop the calling coroutine runs on."""
    if on_trio():
        import trio

        return _Trio(trio.lowlevel.current_trio_token())
    import asyncio

    return _Asyncio(asyncio.get_running_loop())


def running() -> Loop | None:
    """The loop running in this thread, if any (for a blocking call made on it)."""
    library = _library()
    if library == "trio":
        import trio

        return _Trio(trio.lowlevel.current_trio_token())
    loaded = sys.modules.get("asyncio")
    if loaded is None:  # never imported: no asyncio loop runs
        return None
    try:
        return _Asyncio(loaded.get_running_loop())
    except RuntimeError:
        return None


async def sleep(seconds: float) -> None:
    """Sleep on the running loop."""
    if on_trio():
        import trio

        await trio.sleep(seconds)
    else:
        import asyncio

        await asyncio.sleep(seconds)


async def to_thread(call: Callable[..., T], *args: Any) -> T:
    """Run a blocking ``call`` in a worker thread of the running loop."""
    if on_trio():
        import trio

        return await trio.to_thread.run_sync(call, *args)
    import asyncio

    return await asyncio.to_thread(call, *args)


async def within(work: Coroutine[Any, Any, T], seconds: float) -> tuple[bool, T | None]:
    """Await ``work`` for ``seconds`` at most: ``(True, its result)``, or ``(False, None)``
    once it was cancelled for taking longer."""
    if on_trio():
        import trio

        with trio.move_on_after(seconds):
            return True, await work
        return False, None
    import asyncio

    try:
        return True, await asyncio.wait_for(work, seconds)
    except asyncio.TimeoutError:
        return False, None


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is the running loop cancelling the task."""
    loaded = sys.modules.get("asyncio")
    if loaded is not None and isinstance(exc, loaded.CancelledError):
        return True
    return type(exc).__name__ == "Cancelled" and type(exc).__module__.startswith("trio")
