"""A forked child starts clean: objects that hold locks, threads or flights reset there.

A lock held by another thread at the moment of ``fork()`` stays held forever in the
child, and a flight led by a thread that does not exist there never ends. Objects
registered here get their ``_after_fork()`` called in the child
(``os.register_at_fork``); they are held weakly.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["reset_after_fork"]


class _Resettable(Protocol):
    def _after_fork(self) -> None: ...


_OBJECTS: weakref.WeakSet[_Resettable] = weakref.WeakSet()


def reset_after_fork(obj: _Resettable) -> None:
    """Call ``obj._after_fork()`` in every child this process forks from now on."""
    _OBJECTS.add(obj)


def _in_child() -> None:
    for obj in list(_OBJECTS):
        obj._after_fork()


os.register_at_fork(after_in_child=_in_child)
