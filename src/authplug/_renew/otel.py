"""OpenTelemetry: authplug's events as spans and metrics, when ``opentelemetry-api`` is
installed (``pip install authplug[otel]``).

Each token call becomes a span, ``authplug.token_call``, in the context of the code that
led it (a request that needed a token, or the background renewal's thread or task); the
other events feed counters and histograms. authplug only uses the API: where the spans
and metrics go is the application's choice of SDK and exporter, and with none set up
the API's no-op implementations cost next to nothing.

Nothing of OpenTelemetry is imported until the first event, and nothing at all when it
is not installed (:func:`observer` returns None, and then no event is built).
"""

from __future__ import annotations

import functools
import importlib.util
import threading
import time
from collections.abc import Callable
from typing import Any

from .._version import __version__
from ..events import CacheLookup, Event, Fallback, Renewal, Replay, TokenCall

__all__ = ["Telemetry", "observer"]

#: Span and instrument names, and the attributes they carry (never a secret or a token).
SPAN = "authplug.token_call"
PROVIDER = "authplug.provider"
GRANT = "authplug.grant_type"
REASON = "authplug.reason"
OUTCOME = "authplug.outcome"
ATTEMPTS = "authplug.attempts"
ERROR_CODE = "authplug.error"
BACKGROUND = "authplug.background"
RESULT = "authplug.cache.result"
STATUS = "http.response.status_code"  # OpenTelemetry's semantic convention
ERROR_TYPE = "error.type"  # likewise


class Telemetry:
    """Turns events into spans and metrics through the global tracer and meter providers
    (OpenTelemetry's proxies: a provider set up after this object still receives them)."""

    def __init__(self) -> None:
        from opentelemetry.metrics import get_meter
        from opentelemetry.trace import SpanKind, Status, StatusCode, get_tracer

        self._client = SpanKind.CLIENT
        self._error_status = Status(StatusCode.ERROR)
        self._tracer = get_tracer("authplug", __version__)
        meter = get_meter("authplug", __version__)
        self._renewals = meter.create_counter(
            "authplug.renewals", unit="{renewal}", description="Token renewals started, by reason"
        )
        self._time_left = meter.create_histogram(
            "authplug.token.time_left",
            unit="s",
            description="Seconds the token had left when its renewal started",
        )
        self._duration = meter.create_histogram(
            "authplug.token_call.duration",
            unit="s",
            description="Token calls, retries included, by grant and outcome",
        )
        self._replays = meter.create_counter(
            "authplug.replays",
            unit="{request}",
            description="Requests sent again with a renewed token after the API refused one",
        )
        self._fallbacks = meter.create_counter(
            "authplug.fallbacks",
            unit="{request}",
            description="Requests sent with the still-valid token after a renewal failed",
        )
        self._lookups = meter.create_counter(
            "authplug.cache.lookups",
            unit="{lookup}",
            description="Token cache lookups by renewals: hit, miss or outage",
        )

    def __call__(self, event: Event) -> None:
        if isinstance(event, TokenCall):
            self._token_call(event)
        elif isinstance(event, Renewal):
            attributes = {PROVIDER: event.provider, REASON: event.reason}
            self._renewals.add(1, {**attributes, BACKGROUND: event.background})
            if event.time_left is not None:
                self._time_left.record(event.time_left, attributes)
        elif isinstance(event, Replay):
            self._replays.add(1, {PROVIDER: event.provider, STATUS: event.status_code})
        elif isinstance(event, Fallback):
            self._fallbacks.add(1, {PROVIDER: event.provider})
        elif isinstance(event, CacheLookup):
            self._lookups.add(1, {PROVIDER: event.provider, RESULT: event.result})

    def _token_call(self, event: TokenCall) -> None:
        attributes: dict[str, Any] = {
            PROVIDER: event.provider,
            GRANT: event.grant,
            REASON: event.reason,
            OUTCOME: event.outcome,
            ATTEMPTS: event.attempts,
        }
        if event.status_code is not None:
            attributes[STATUS] = event.status_code
        if event.error is not None:
            attributes[ERROR_CODE] = event.error
        if event.outcome != "ok":
            attributes[ERROR_TYPE] = event.error or event.outcome
        # The event arrives when the call has ended: the span is given its real start.
        end = time.time_ns()
        span = self._tracer.start_span(
            SPAN,
            kind=self._client,
            attributes=attributes,
            start_time=end - int(event.duration * 1e9),
        )
        if event.outcome != "ok":
            span.set_status(self._error_status)
        span.end(end_time=end)
        self._duration.record(
            event.duration, {PROVIDER: event.provider, GRANT: event.grant, OUTCOME: event.outcome}
        )


@functools.cache
def _installed() -> bool:
    return importlib.util.find_spec("opentelemetry") is not None


_made = threading.Lock()
_made_once: list[Telemetry | None] = []  # empty until the first event


def _telemetry() -> Telemetry | None:
    """The one Telemetry of this process, made by the first event, whichever thread's."""
    if not _made_once:
        with _made:
            if not _made_once:
                try:
                    _made_once.append(Telemetry())
                except ImportError:  # an "opentelemetry" namespace without the API
                    _made_once.append(None)
    return _made_once[0]


def _observe(event: Event) -> None:
    telemetry = _telemetry()
    if telemetry is not None:
        telemetry(event)


def observer() -> Callable[[Event], None] | None:
    """The observer that feeds OpenTelemetry, or None when it is not installed (then
    nothing is imported and no event is built)."""
    return _observe if _installed() else None
