"""Events (``on_event=``) and OpenTelemetry: spans for token calls, metrics for the rest.

The OpenTelemetry SDK's in-memory span exporter and metric reader are installed as the
global providers once for this process (OpenTelemetry allows one each); the tests read
what authplug sent through the API, and scan it for secrets as the log tests do.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from authplug import (
    BaseAuth,
    CacheError,
    CredentialsRejectedError,
    MemoryTokenCache,
    OAuth2ClientCredentialsAuth,
    Token,
    TokenEndpointError,
)
from authplug.events import (
    CacheLookup,
    Event,
    Fallback,
    Renewal,
    Replay,
    TokenCall,
    error_code,
)
from authplug.testing import FakeClock, OAuth2Emulator, Response, settle

from ..conftest import Driver, password_auth


class Telemetry:
    """What authplug sent to OpenTelemetry since :meth:`mark`."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        self._before: dict[tuple[str, frozenset[Any]], float] = {}

    def mark(self) -> None:
        self.exporter.clear()
        self._before = self._points()

    def spans(self, name: str = "authplug.token_call") -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name == name]

    def _points(self) -> dict[tuple[str, frozenset[Any]], float]:
        points: dict[tuple[str, frozenset[Any]], float] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        # counters: the sum; histograms: how many values were recorded
                        value = getattr(point, "value", None)
                        count = point.count if value is None else value  # type: ignore[union-attr]
                        key = (metric.name, frozenset((point.attributes or {}).items()))
                        points[key] = float(count)
        self.last_json = data.to_json() if data else ""
        return points

    def delta(self, name: str) -> dict[frozenset[Any], float]:
        """How much each series of ``name`` grew since :meth:`mark`."""
        now = self._points()
        return {
            attrs: value - self._before.get((metric, attrs), 0.0)
            for (metric, attrs), value in now.items()
            if metric == name and value != self._before.get((metric, attrs), 0.0)
        }


@pytest.fixture(scope="module")
def otel() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(telemetry.exporter))
    meter_provider = MeterProvider(metric_readers=[telemetry.reader])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    yield telemetry
    # The global providers cannot be unset: later tests in this process keep them. The
    # exporter stops keeping spans (and drops them silently); the providers are not shut
    # down, since the SDK logs a warning for each span or metric it then refuses.
    telemetry.exporter.shutdown()


@pytest.fixture
def telemetry(otel: Telemetry) -> Telemetry:
    otel.mark()
    return otel


class Events(list[Event]):
    """An ``on_event=`` callback that keeps what it is told (from any thread)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self if isinstance(e, kind)]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


# -- on_event ------------------------------------------------------------------------


def test_first_request_tells_renewal_lookup_and_token_call(
    emulator: OAuth2Emulator, driver: Driver
) -> None:
    events = Events()
    auth = password_auth(emulator, on_event=events)
    assert driver.send(auth, "GET", emulator.api_url()).status == 200
    assert driver.send(auth, "GET", emulator.api_url()).status == 200
    assert events[:2] == [
        Renewal("oauth2", "first_use", None, False),
        CacheLookup("oauth2", "miss"),
    ]
    (call,) = events.of(TokenCall)
    assert (call.provider, call.grant, call.reason, call.outcome) == (
        "oauth2",
        "password",
        "first_use",
        "ok",
    )
    assert (call.attempts, call.status_code, call.error) == (1, 200, None)
    assert call.duration > 0
    assert len(events) == 3  # the second request used the token: nothing to tell


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_retries_refusals_and_failures_are_told(
    emulator: OAuth2Emulator, clock: FakeClock, mode: str
) -> None:
    events = Events()

    def fetch(auth: BaseAuth) -> Token:
        return auth.get_token() if mode == "sync" else asyncio.run(auth.aget_token())

    emulator.fail_next(2, status=503)
    fetch(password_auth(emulator, clock=clock, on_event=events))
    emulator.fail_next(2, status=502)
    with pytest.raises(TokenEndpointError):
        fetch(password_auth(emulator, clock=clock, retries=1, on_event=events))
    with pytest.raises(CredentialsRejectedError):
        fetch(password_auth(emulator, clock=clock, client_secret="wrong", on_event=events))
    calls = [(c.outcome, c.attempts, c.status_code, c.error) for c in events.of(TokenCall)]
    assert calls == [
        ("ok", 3, 200, None),
        ("failed", 2, 502, None),
        ("refused", 1, 401, "invalid_client"),
    ]


def test_a_refused_refresh_then_the_grant_are_two_calls(
    emulator: OAuth2Emulator, clock: FakeClock
) -> None:
    events = Events()
    auth = password_auth(emulator, clock=clock, on_event=events)
    first = auth.get_token()
    emulator.reject_refresh = True
    assert first.lifetime is not None
    clock.advance(first.lifetime + 1)
    auth.get_token()
    calls = [(c.grant, c.reason, c.outcome, c.error) for c in events.of(TokenCall)]
    assert calls == [
        ("password", "first_use", "ok", None),
        ("refresh_token", "expired", "refused", "invalid_grant"),
        ("password", "expired", "ok", None),
    ]
    assert events.of(Renewal)[1].time_left == -1


def test_background_renewal_and_fallback(
    emulator: OAuth2Emulator, clock: FakeClock, driver: Driver
) -> None:
    """A stale token is renewed in the background; when that renewal fails, requests go
    on with the still-valid token: a Fallback is told."""
    events = Events()
    auth = password_auth(emulator, clock=clock, on_event=events, retries=0)
    assert driver.send(auth, "GET", emulator.api_url()).status == 200
    clock.advance(3600 - 59)  # due for renewal (inside the 60 s leeway)
    assert driver.send(auth, "GET", emulator.api_url()).status == 200
    settle(auth)
    (background,) = [e for e in events.of(Renewal) if e.background]
    assert background.reason == "stale"
    assert background.time_left == pytest.approx(59)
    assert events.of(TokenCall)[-1].outcome == "ok"

    events.clear()
    clock.advance(3600 - 30)  # stale again, 30 s left; the endpoint now fails
    emulator.fail_next(10, status=503)
    assert driver.send(auth, "GET", emulator.api_url()).status == 200
    settle(auth)
    (fallback,) = events.of(Fallback)
    assert fallback.provider == "oauth2"
    assert fallback.time_left == pytest.approx(30)
    assert [(c.outcome, c.status_code) for c in events.of(TokenCall)] == [("failed", 503)]


def test_replay_after_401_is_told(emulator: OAuth2Emulator, driver: Driver) -> None:
    events = Events()
    auth = password_auth(emulator, on_event=events)
    assert driver.send(auth, "GET", emulator.api_url()).status == 200
    emulator.revoke_all()
    result = driver.send(auth, "GET", emulator.api_url())
    assert (result.status, result.history) == (200, 1)
    assert events.of(Replay) == [Replay("oauth2", 401)]
    assert [r.reason for r in events.of(Renewal)] == ["first_use", "refused"]


def test_cache_hits_misses_and_outages(emulator: OAuth2Emulator, clock: FakeClock) -> None:
    events = Events()
    shared = MemoryTokenCache()
    password_auth(emulator, clock=clock, cache=shared, on_event=events).get_token()
    password_auth(emulator, clock=clock, cache=shared, on_event=events).get_token()

    class Down(MemoryTokenCache):
        def get(self, key: str) -> Token | None:
            raise CacheError("the cache is down")

    password_auth(emulator, clock=clock, cache=Down(), on_event=events).get_token()
    assert [e.result for e in events.of(CacheLookup)] == ["miss", "hit", "outage"]
    assert emulator.token_calls.total() == 2


def test_a_failing_observer_breaks_nothing(
    emulator: OAuth2Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("observer bug")

    auth = password_auth(emulator, on_event=broken)
    assert auth.get_token().access_token
    assert "an event observer raised RuntimeError" in caplog.text


def test_error_codes_in_events_are_codes() -> None:
    """A provider's free text never reaches an event (it may quote what it was sent)."""
    assert error_code("invalid_grant") == "invalid_grant"
    assert error_code("urn:ietf:params:oauth:error:x") == "urn:ietf:params:oauth:error:x"
    assert error_code("bad secret 'hunter2' for client") == "unrecognised"
    assert error_code("x" * 65) == "unrecognised"
    assert error_code(None) is None


def test_on_event_must_be_callable(emulator: OAuth2Emulator) -> None:
    from authplug import ConfigurationError

    with pytest.raises(ConfigurationError, match="on_event= must be callable"):
        password_auth(emulator, on_event="print")


# -- OpenTelemetry ---------------------------------------------------------------------


def test_token_call_span(emulator: OAuth2Emulator, driver: Driver, telemetry: Telemetry) -> None:
    """One span per token call, a child of the span the request ran in."""
    auth = password_auth(emulator)
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("checkout") as parent:
        assert driver.send(auth, "GET", emulator.api_url()).status == 200
    (span,) = telemetry.spans()
    assert attributes(span) == {
        "authplug.provider": "oauth2",
        "authplug.grant_type": "password",
        "authplug.reason": "first_use",
        "authplug.outcome": "ok",
        "authplug.attempts": 1,
        "http.response.status_code": 200,
    }
    assert span.kind is trace.SpanKind.CLIENT
    assert span.status.status_code is trace.StatusCode.UNSET
    assert span.end_time is not None
    assert span.start_time is not None
    assert span.end_time > span.start_time
    # The call is led in the caller's thread, or in a task started from the caller's
    # (which copies its context): either way the request's span is the parent.
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id


def test_refused_token_call_span_and_metrics(
    emulator: OAuth2Emulator, clock: FakeClock, telemetry: Telemetry
) -> None:
    with pytest.raises(CredentialsRejectedError):
        password_auth(emulator, clock=clock, client_secret="wrong").get_token()
    (span,) = telemetry.spans()
    assert span.status.status_code is trace.StatusCode.ERROR
    assert attributes(span)["authplug.outcome"] == "refused"
    assert attributes(span)["authplug.error"] == "invalid_client"
    assert attributes(span)["error.type"] == "invalid_client"
    assert attributes(span)["http.response.status_code"] == 401
    durations = telemetry.delta("authplug.token_call.duration")
    key = frozenset(
        {
            "authplug.provider": "oauth2",
            "authplug.grant_type": "password",
            "authplug.outcome": "refused",
        }.items()
    )
    assert durations == {key: 1}


def test_metrics_count_renewals_replays_fallbacks_and_lookups(
    emulator: OAuth2Emulator, clock: FakeClock, driver: Driver, telemetry: Telemetry
) -> None:
    auth = password_auth(emulator, clock=clock, retries=0)
    assert driver.send(auth, "GET", emulator.api_url()).status == 200
    emulator.revoke_all()
    assert driver.send(auth, "GET", emulator.api_url()).status == 200  # replayed
    clock.advance(3600 - 30)
    emulator.fail_next(5, status=503)
    assert driver.send(auth, "GET", emulator.api_url()).status == 200  # fallback
    settle(auth)

    def series(**attrs: Any) -> frozenset[Any]:
        return frozenset({"authplug.provider": "oauth2", **attrs}.items())

    renewals = telemetry.delta("authplug.renewals")
    assert renewals == {
        series(**{"authplug.reason": "first_use", "authplug.background": False}): 1,
        series(**{"authplug.reason": "refused", "authplug.background": False}): 1,
        series(**{"authplug.reason": "stale", "authplug.background": True}): 1,
    }
    assert telemetry.delta("authplug.replays") == {series(**{"http.response.status_code": 401}): 1}
    assert telemetry.delta("authplug.fallbacks") == {series(): 1}
    assert telemetry.delta("authplug.cache.lookups") == {
        series(**{"authplug.cache.result": "miss"}): 3
    }
    # time left at renewal: recorded for the two renewals that had a token
    assert sum(telemetry.delta("authplug.token.time_left").values()) == 2
    calls = {
        (dict(attrs)["authplug.grant_type"], dict(attrs)["authplug.outcome"]): n
        for attrs, n in telemetry.delta("authplug.token_call.duration").items()
    }
    assert calls == {
        ("password", "ok"): 1,
        ("refresh_token", "ok"): 1,
        ("refresh_token", "failed"): 1,
    }


def test_spans_and_metrics_hold_no_secret(
    emulator: OAuth2Emulator, clock: FakeClock, driver: Driver, telemetry: Telemetry
) -> None:
    """Every span and metric exported while tokens were fetched, refreshed, refused and
    replayed, as JSON: no secret, password, access or refresh token in it."""
    auth = password_auth(emulator, clock=clock)
    assert driver.send(auth, "GET", emulator.api_url()).status == 200
    tokens = [auth.token]
    emulator.revoke_all()
    assert driver.send(auth, "GET", emulator.api_url()).status == 200
    tokens.append(auth.token)
    with pytest.raises(CredentialsRejectedError):
        password_auth(emulator, client_secret="wr0ng-s3cret-value").get_token()
    exported = "\n".join(span.to_json() for span in telemetry.exporter.get_finished_spans())
    telemetry.delta("authplug.renewals")  # reads the metrics as JSON too
    exported += telemetry.last_json
    assert "authplug.token_call" in exported
    assert "authplug.renewals" in exported
    secrets = [emulator.password, emulator.client_secret, "wr0ng-s3cret-value"]
    for token in tokens:
        assert token is not None
        secrets += [token.access_token, token.refresh_token or token.access_token]
    for secret in secrets:
        assert secret
        assert secret not in exported


def test_a_real_server_in_the_span(telemetry: Telemetry) -> None:
    """Against Authlib's own Flask server: a grant, a refresh, a revoked token replayed,
    and a wrong secret, each read by that server."""
    from ..servers.authlib_flask import AuthlibServer

    with AuthlibServer() as server:
        client = server.client("client_credentials", "client_secret_basic", tricky=True)
        auth = OAuth2ClientCredentialsAuth(
            token_url=server.token_url,
            client_id=client.client_id,
            client_secret=client.client_secret,
            client_auth="client_secret_basic",
        )
        import requests

        with requests.Session() as session:
            session.auth = auth
            assert session.get(server.api_url).status_code == 200
            assert auth.token is not None
            server.revoke(auth.token.access_token, client)
            response = session.get(server.api_url)
            assert (response.status_code, len(response.history)) == (200, 1)
        wrong = OAuth2ClientCredentialsAuth(
            token_url=server.token_url, client_id=client.client_id, client_secret="nope"
        )
        with pytest.raises(CredentialsRejectedError):
            wrong.get_token()
        assert server.token_calls() == {"client_credentials": 3}
    seen = [
        (
            attributes(s)["authplug.reason"],
            attributes(s)["authplug.outcome"],
            attributes(s).get("http.response.status_code"),
            attributes(s).get("authplug.error"),
        )
        for s in telemetry.spans()
    ]
    assert seen == [
        ("first_use", "ok", 200, None),
        ("refused", "ok", 200, None),
        ("first_use", "refused", 401, "invalid_client"),
    ]
    assert telemetry.delta("authplug.replays") == {
        frozenset({"authplug.provider": "oauth2", "http.response.status_code": 401}.items()): 1
    }


# -- without OpenTelemetry, nothing ----------------------------------------------------


def run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_without_opentelemetry_nothing_is_imported_or_built(emulator: OAuth2Emulator) -> None:
    """opentelemetry made unimportable: no observer, no event built, no module loaded."""
    out = run(
        f"""
        import json, sys
        sys.modules["opentelemetry"] = None
        from authplug import OAuth2PasswordAuth
        auth = OAuth2PasswordAuth(**{emulator.auth_kwargs()!r})
        auth.get_token()
        print(json.dumps([auth._manager._report.observers == (),
                          sorted(m for m, module in sys.modules.items()
                                 if m.startswith("opentelemetry") and module is not None),
                          "authplug.events" in sys.modules]))
        """
    )
    # authplug.events is the module of the event types: imported, but no event is built
    assert json.loads(out) == [True, [], True]


def test_opentelemetry_waits_for_the_first_event(emulator: OAuth2Emulator) -> None:
    """Installed, OpenTelemetry is imported by the first event, not by import or set-up."""
    out = run(
        f"""
        import json, sys
        from authplug import OAuth2PasswordAuth
        auth = OAuth2PasswordAuth(**{emulator.auth_kwargs()!r})
        before = "opentelemetry.trace" in sys.modules
        auth.get_token()
        print(json.dumps([before, "opentelemetry.trace" in sys.modules]))
        """
    )
    assert json.loads(out) == [False, True]


def test_observer_sees_the_same_events_as_opentelemetry(
    emulator: OAuth2Emulator, telemetry: Telemetry
) -> None:
    """on_event and OpenTelemetry are fed together: one token call, one event, one span."""
    events = Events()
    auth = password_auth(emulator, on_event=events)
    auth.get_token()
    assert len(events.of(TokenCall)) == len(telemetry.spans()) == 1


def test_error_answer_body_never_reaches_the_span(telemetry: Telemetry) -> None:
    """An error code that is free text (it quotes the secret) is 'unrecognised'."""
    from authplug.testing import LoopbackServer, Request

    def app(request: Request) -> Response:
        return Response.json(400, {"error": "client secret s3cr3t-x is wrong"})

    with LoopbackServer(app) as server:
        auth = OAuth2ClientCredentialsAuth(
            token_url=server.url + "/token", client_id="c", client_secret="s3cr3t-x"
        )
        with pytest.raises(CredentialsRejectedError):
            auth.get_token()
    (span,) = telemetry.spans()
    assert attributes(span)["authplug.error"] == "unrecognised"
    assert "s3cr3t" not in span.to_json()
