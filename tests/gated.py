"""A real emulator whose token endpoint the test can hold open, shared by test modules."""

from __future__ import annotations

import threading
from typing import Any

from authplug.testing import OAuth2Emulator, Request
from authplug.testing import Response as EmulatorResponse

#: The longest a held token call waits for ``release()`` (a safety net).
HOLD_LIMIT = 60.0


class GatedEmulator(OAuth2Emulator):
    """An emulator whose token endpoint can be held open.

    ``hold_next(n)``: the next ``n`` token calls are counted, then kept unanswered
    until ``release()``. ``arrived`` is set when the first of them reaches the
    endpoint; ``holding`` is how many are held at the endpoint right now.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.arrived = threading.Event()
        self._gate = threading.Event()
        self._held = 0
        self._holding = 0
        self._held_lock = threading.Lock()

    @property
    def holding(self) -> int:
        with self._held_lock:
            return self._holding

    def hold_next(self, count: int = 1) -> None:
        with self._held_lock:
            self._held += count

    def release(self) -> None:
        self._gate.set()

    def check_request(self, request: Request, params: dict[str, str]) -> EmulatorResponse | None:
        with self._held_lock:
            held = self._held > 0
            if held:
                self._held -= 1
                self._holding += 1
        if held:
            self.arrived.set()
            self._gate.wait(HOLD_LIMIT)
            with self._held_lock:
                self._holding -= 1
        return super().check_request(request, params)
