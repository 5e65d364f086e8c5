"""The reporter: one report per happening, logged by policy, told to observers as events."""

from __future__ import annotations

import logging

import pytest

from authplug import CredentialsRejectedError, TokenEndpointError
from authplug._renew.report import (
    CacheFailed,
    CacheReached,
    CallStarting,
    NewToken,
    RenewalFailed,
    Renewed,
    Replaying,
    Reporter,
)
from authplug.events import CacheLookup, Event, Fallback, Renewal, Replay


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="authplug")
    return caplog


def levels(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.levelname for record in caplog.records]


def failed(error: Exception, failures: int = 1, *, background: bool = True) -> RenewalFailed:
    assert isinstance(error, (CredentialsRejectedError, TokenEndpointError))
    return RenewalFailed(error, background, failures, pause=30.0, time_left=120.0)


def test_refused_credentials_log_error_once_until_a_renewal_succeeds(
    records: pytest.LogCaptureFixture,
) -> None:
    """A background renewal refused by the endpoint logs ERROR once; a success re-arms it."""
    report = Reporter("test")
    refused = CredentialsRejectedError("no", status_code=400)
    for failures in (1, 2, 3):
        report(failed(refused, failures))
    assert levels(records) == ["ERROR"]
    assert "refused the credentials" in records.records[0].getMessage()
    report(Renewed(failures=3))
    report(failed(refused))
    assert levels(records) == ["ERROR", "INFO", "ERROR"]
    assert records.records[1].getMessage() == "test: token renewed after 3 failed attempts"


def test_other_failures_log_warning_first_then_info(records: pytest.LogCaptureFixture) -> None:
    """Any other background failure: WARNING at the first in a row, INFO at the next."""
    report = Reporter("test")
    down = TokenEndpointError("unreachable")
    for failures in (1, 2, 3):
        report(failed(down, failures))
    assert levels(records) == ["WARNING", "INFO", "INFO"]
    assert records.records[0].getMessage() == (
        "test: background token renewal failed (oauth2: unreachable); the current token is used "
        "for its last 120s, next attempt in 30s"
    )


def test_a_callers_failure_is_not_logged(records: pytest.LogCaptureFixture) -> None:
    """A failure on the request path reaches its caller as an exception: no log line."""
    Reporter("test")(failed(TokenEndpointError("down"), background=False))
    assert records.records == []


def test_a_renewal_without_failures_before_logs_nothing(records: pytest.LogCaptureFixture) -> None:
    """``Renewed`` after no failure is silent."""
    Reporter("test")(Renewed(failures=0))
    assert records.records == []


def test_the_cache_going_down_warns_once_and_its_return_is_told(
    records: pytest.LogCaptureFixture,
) -> None:
    """Cache down: WARNING once, DEBUG while it stays down, INFO when it is back."""
    report = Reporter("test")
    report(CacheReached())  # up all along: nothing to say
    report(CacheFailed(OSError("refused")))
    report(CacheFailed(OSError("refused")))
    report(CacheReached())
    report(CacheReached())
    report(CacheFailed(OSError("again")))
    assert levels(records) == ["WARNING", "DEBUG", "INFO", "WARNING"]
    assert records.records[2].getMessage() == "test: the token cache is reachable again"


def test_observers_get_the_public_events_only() -> None:
    """Public events pass through; records with an event are translated; the rest stay
    in the log."""
    seen: list[Event] = []
    report = Reporter("test", [seen.append])
    report(Renewal("test", "stale", 30.0, True))
    report(CacheLookup("test", "hit"))
    report(Replaying("GET https://api.example.com", 401))
    report(CallStarting("password", "token expired"))
    report(NewToken("ab…yz"))
    report(failed(TokenEndpointError("down", error="temporarily_unavailable")))
    assert seen == [
        Renewal("test", "stale", 30.0, True),
        CacheLookup("test", "hit"),
        Replay("test", 401),
        Fallback("test", 120.0, "temporarily_unavailable"),
    ]


def test_a_failure_with_no_valid_token_left_is_no_fallback() -> None:
    """Fallback only while the current token still has time left."""
    seen: list[Event] = []
    report = Reporter("test", [seen.append])
    down = TokenEndpointError("down")
    report(RenewalFailed(down, True, 1, pause=1.0, time_left=None))
    report(RenewalFailed(down, True, 2, pause=2.0, time_left=-5.0))
    assert seen == []


def test_the_fallback_event_carries_no_free_text() -> None:
    """A provider's free-text error code becomes "unrecognised" in the event."""
    seen: list[Event] = []
    error = TokenEndpointError("down", error="secret s3cr3t in the text")
    Reporter("test", [seen.append])(failed(error))
    assert seen == [Fallback("test", 120.0, "unrecognised")]


def test_an_observer_that_raises_is_logged_by_type_and_the_others_still_hear(
    records: pytest.LogCaptureFixture,
) -> None:
    """Observing never breaks a request: the exception's type is logged, not its text."""
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise ValueError("leaky detail")

    Reporter("test", [broken, seen.append])(Replaying("GET /", 401))
    assert seen == [Replay("test", 401)]
    messages = [record.getMessage() for record in records.records]
    assert "test: an event observer raised ValueError" in messages
    assert not any("leaky detail" in message for message in messages)
