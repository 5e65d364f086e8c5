"""A forked child resets every object registered with ``reset_after_fork``, held weakly."""

from __future__ import annotations

import gc

from authplug import _fork


class Resettable:
    def __init__(self) -> None:
        self.resets = 0

    def _after_fork(self) -> None:
        self.resets += 1


def test_each_registered_object_is_reset_in_the_child() -> None:
    """The child's hook calls ``_after_fork()`` once on every registered object."""
    first, second = Resettable(), Resettable()
    _fork.reset_after_fork(first)
    _fork.reset_after_fork(second)
    _fork._in_child()
    assert (first.resets, second.resets) == (1, 1)


def test_an_object_gone_is_not_kept_alive_for_the_child() -> None:
    """Registration holds objects weakly: one collected is no longer reset."""

    class Gone(Resettable):
        pass

    gone = Gone()
    _fork.reset_after_fork(gone)
    assert any(isinstance(obj, Gone) for obj in _fork._OBJECTS)
    del gone
    gc.collect()
    assert not any(isinstance(obj, Gone) for obj in _fork._OBJECTS)
