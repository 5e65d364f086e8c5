"""Rotating refresh tokens shared by a fleet of processes that leave mid-refresh.

Real servers with reuse detection (django-oauth-toolkit with
``REFRESH_TOKEN_REUSE_PROTECTION``, oidc-provider with ``rotateRefreshToken``) revoke a
whole token family when a rotated refresh token is used again, so one rotated token that
a leaving process drops shows up as ``invalid_grant``, a family revocation and a
password-grant fallback. The long version is ``benchmarks/rotation.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import PASSWORD, USERNAME
from tests.system.redis_server import RedisServer
from tests.system.rotation_soak import LEEWAY, Plan, Result, rotating_server, soak

pytestmark = [pytest.mark.timeout(120), pytest.mark.fleet]

REFRESH_DELAY = 0.3  # the servers hold each refresh answer after rotating


@pytest.fixture(scope="module")
def dot() -> Iterator[Any]:
    with rotating_server("dot", REFRESH_DELAY) as server:
        yield server


@pytest.fixture(scope="module")
def oidc() -> Iterator[Any]:
    with rotating_server("oidc", REFRESH_DELAY) as server:
        yield server


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.port
    finally:
        server.stop()


def plan(server: Any, cache: str, mode: str, **overrides: Any) -> Plan:
    client = server.client("password", "client_secret_post")
    options: dict[str, Any] = {
        "cache": cache,
        "mode": mode,
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "username": USERNAME,
        "password": PASSWORD,
        "processes": 2,
        "threads": 3,
        "renewals": 2,
        "time_limit": 40,  # a bound: the soak stops at 2 renewals
        "leave_at_refresh": 1.0,  # every process leaves while its refresh is on the wire
        "lifetime": 0,
        "leeway": LEEWAY["oidc" if "oidc" in type(server).__name__.lower() else "dot"],
    }
    return Plan(**(options | overrides))


def cache_for(kind: str, tmp_path: Path, redis_port: int) -> str:
    if kind == "file":
        return f"file:{tmp_path / 'tokens.json'}"
    import redis

    redis.Redis(host="127.0.0.1", port=redis_port).flushall()
    return f"redis:{redis_port}"


def describe(result: Result) -> str:
    return f"server {dict(result.server)}, left {dict(result.left)}, errors {dict(result.errors)}"


@pytest.mark.parametrize(
    ("server_name", "cache_kind"),
    [
        pytest.param("dot", "file", id="dot-file"),
        pytest.param("oidc", "redis", id="oidc-redis", marks=pytest.mark.redis),
    ],
)
def test_a_fleet_leaving_mid_refresh_never_reuses_a_rotated_refresh_token(
    server_name: str,
    cache_kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_port: int,
) -> None:
    """Processes that leave while their refresh is in flight (exit, SIGTERM, their event
    loop ending) cause no invalid_grant, no family revocation, no fallback to the password
    grant, and every request gets a 200."""
    server = request.getfixturevalue(server_name)
    result = soak(server, plan(server, cache_for(cache_kind, tmp_path, redis_port), "mixed"))
    assert result.renewals >= 2, describe(result)
    assert sum(n for how, n in result.left.items() if how.endswith("in flight")) >= 1
    assert result.invalid_grant == 0, describe(result)
    assert result.revocations == 0, describe(result)
    assert result.fallbacks == 0, describe(result)
    assert result.errors == {}, describe(result)
    assert result.not_200 == 0, describe(result)
    assert result.requests > 0


def test_after_sigkill_mid_refresh_the_fleet_recovers_by_the_password_grant(
    dot: Any, tmp_path: Path
) -> None:
    """A process killed while its refresh is on the wire costs one family (the rotated
    token died with it); the fleet goes on by the password grant, every request 200."""
    result = soak(
        dot,
        plan(
            dot,
            f"file:{tmp_path / 'tokens.json'}",
            "sigkill",
            processes=2,
            threads=2,
            renewals=1000,
            after_kill=2.0,
            kill_marker=str(tmp_path / "killed"),
        ),
    )
    assert result.left["sigkill in flight"] == 1, describe(result)
    assert result.fallbacks >= 1, describe(result)
    assert result.errors == {}, describe(result)
    assert result.not_200 == 0, describe(result)


def test_after_sigkill_without_a_full_grant_callers_get_an_auth_error_saying_why(
    dot: Any, tmp_path: Path
) -> None:
    """With a handed-in token and a client the server refuses any full grant, a lost
    rotation leaves nothing to recover by: requests fail with an AuthError that names
    the refused refresh token and the refused grant, and never hang."""
    client = dot.client("password", "client_secret_post")
    answer = httpx.post(
        dot.token_url,
        data={
            "grant_type": "password",
            "username": USERNAME,
            "password": PASSWORD,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        },
    )
    answer.raise_for_status()
    result = soak(
        dot,
        plan(
            dot,
            f"file:{tmp_path / 'tokens.json'}",
            "sigkill",
            token=dict(answer.json()),
            processes=2,
            threads=2,
            renewals=1000,
            after_kill=2.0,
            kill_marker=str(tmp_path / "killed"),
        ),
    )
    assert result.left["sigkill in flight"] == 1, describe(result)
    assert result.errors, describe(result)
    for message in result.errors:
        name, _, text = message.partition(": ")
        assert name == "CredentialsRejectedError", message
        assert "the refresh token was refused (invalid_grant)" in text, message
        assert "unauthorized_client" in text, message
