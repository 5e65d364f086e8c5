"""Refresh-token rotation across a fleet: processes that leave while a refresh is in flight.

Against django-oauth-toolkit (``ROTATE_REFRESH_TOKEN``, ``REFRESH_TOKEN_REUSE_PROTECTION``)
and node oidc-provider (``rotateRefreshToken``; a test-only password grant gives it
refresh tokens), N worker processes x T threads share a FileTokenCache, then a
RedisTokenCache (a real redis-server on a free loopback port), and send requests to a
protected API that validates each token (DOT's resource check; introspection at
oidc-provider). Access tokens live a few seconds, so renewals are refreshes. The
servers hold each refresh answer a little after they have rotated, and workers leave
while their own refresh is on the wire (normal exit, SIGTERM, or the event loop their
renewal runs on ending), and are replaced. A rotated refresh token used again makes
the server revoke the whole family: a fleet that loses a rotated token shows up as
``invalid_grant``, family revocations and password-grant fallbacks.

Then SIGKILL mid-refresh: with a password grant the fleet recovers by it; with
credentials whose full grant the server refuses (a handed-in token, a client not allowed
client_credentials) every caller gets an AuthError that says why.

    python benchmarks/rotation.py [--renewals 100] [--processes 8] [--threads 16]
                                  [--servers dot,oidc] [--caches file,redis]
                                  [--modes exit,sigterm,loop] [--no-sigkill]

Needs django-oauth-toolkit 3, node with ``npm ci --prefix tests/servers/oidc``, and
redis-server. Each cell stops by itself (renewal count or ``--time-limit``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from _common import table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' harnesses

from tests.servers import PASSWORD, USERNAME
from tests.system.redis_server import RedisServer
from tests.system.rotation_soak import LEEWAY, Plan, Result, rotating_server, soak

HEADERS = [
    "server",
    "cache",
    "leaving",
    "renewals",
    "refresh calls",
    "invalid_grant",
    "family revocations",
    "password fallbacks",
    "requests",
    "non-200",
    "left mid-refresh",
    "processes",
    "seconds",
]


def handed_in_token(srv: Any, client_id: str, client_secret: str) -> dict[str, Any]:
    """A token got elsewhere (a login the fleet cannot repeat)."""
    answer = httpx.post(
        srv.token_url,
        data={
            "grant_type": "password",
            "username": USERNAME,
            "password": PASSWORD,
            "client_id": client_id,
            "client_secret": client_secret,
        },
    )
    answer.raise_for_status()
    return dict(answer.json())


def row(name: str, cache: str, mode: str, result: Result) -> list[object]:
    return [
        name,
        cache,
        mode,
        result.renewals,
        result.refresh_calls,
        result.invalid_grant,
        result.revocations,
        result.fallbacks,
        result.requests,
        result.not_200 or 0,
        sum(n for how, n in result.left.items() if how.endswith("in flight")),
        result.started,
        f"{result.seconds:.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renewals", type=int, default=100)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--servers", default="dot,oidc")
    parser.add_argument("--caches", default="file,redis")
    parser.add_argument("--modes", default="exit,sigterm,loop", help='"" for SIGKILL runs only')
    parser.add_argument("--no-sigkill", action="store_true")
    parser.add_argument("--time-limit", type=float, default=240.0, help="seconds per cell")
    parser.add_argument("--refresh-delay", type=float, default=0.3, help="seconds")
    parser.add_argument(
        "--pause",
        default="1.5,3",
        help="seconds between two requests of a thread, 'min,max': 128 threads pausing "
        "0.2-0.6 s ask django-oauth-toolkit's test server for more than the ~90 requests a "
        "second it serves on two cores, and its queue then outlasts a token's renewal",
    )
    args = parser.parse_args()

    low, _, high = args.pause.partition(",")
    pause = (float(low), float(high or low))
    rows: list[list[object]] = []
    notes: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="authplug-rotation-"))
    redis_server = RedisServer(folder).start()
    names = {"dot": "django-oauth-toolkit", "oidc": "oidc-provider"}
    try:
        for name in args.servers.split(","):
            with rotating_server(name, args.refresh_delay) as srv:
                client = srv.client("password", "client_secret_post")
                for cache_kind in filter(None, args.caches.split(",")):
                    for mode in filter(None, args.modes.split(",")):
                        cache = cache_spec(cache_kind, folder, redis_server, f"{name}-{mode}")
                        plan = Plan(
                            cache=cache,
                            mode=mode,
                            client_id=client.client_id,
                            client_secret=client.client_secret,
                            username=USERNAME,
                            password=PASSWORD,
                            processes=args.processes,
                            threads=args.threads,
                            renewals=args.renewals,
                            time_limit=args.time_limit,
                            leeway=LEEWAY[name],
                            pause=pause,
                        )
                        result = soak(srv, plan)
                        rows.append(row(names[name], cache_kind, mode, result))
                        notes += [
                            f"{names[name]}/{cache_kind}/{mode}: {e} (x{n})"
                            for e, n in result.errors.items()
                        ]
                        notes += [
                            f"{names[name]}/{cache_kind}/{mode}: final status {status} (x{n})"
                            for status, n in result.statuses.items()
                            if status != "200"
                        ]
                        print(table(HEADERS, rows[-1:]), flush=True)
                if not args.no_sigkill:
                    rows += sigkill_rows(srv, names[name], client, folder, notes)
    finally:
        redis_server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print(table(HEADERS, rows))
    if notes:
        print("\nExceptions requests raised (distinct messages, counted):")
        for note in notes:
            print(f"- {note}")


def cache_spec(kind: str, folder: Path, redis_server: RedisServer, cell: str) -> str:
    if kind == "file":
        (folder / cell).mkdir(parents=True, exist_ok=True)
        return f"file:{folder / cell / 'tokens.json'}"
    import redis

    redis.Redis(host="127.0.0.1", port=redis_server.port).flushall()
    return f"redis:{redis_server.port}"


def sigkill_rows(
    srv: Any,
    name: str,
    client: Any,
    folder: Path,
    notes: list[str],
) -> list[list[object]]:
    """One process SIGKILLs itself while its refresh is on the wire, then the fleet goes
    on for a few seconds: with the password grant, and with a handed-in token only."""
    rows = []
    for label, token in (("password grant", None), ("token only", True)):
        cell = folder / f"{name}-sigkill-{'token' if token else 'password'}"
        cell.mkdir(parents=True, exist_ok=True)
        plan = Plan(
            cache=f"file:{cell / 'tokens.json'}",
            mode="sigkill",
            client_id=client.client_id,
            client_secret=client.client_secret,
            username=USERNAME,
            password=PASSWORD,
            token=handed_in_token(srv, client.client_id, client.client_secret) if token else None,
            processes=4,
            threads=4,
            renewals=1000,
            time_limit=60,
            leeway=LEEWAY["dot" if name == "django-oauth-toolkit" else "oidc"],
            leave_at_refresh=1.0,
            kill_marker=str(cell / "killed"),
        )
        result = soak(srv, plan)
        rows.append(row(name, "file", f"SIGKILL, {label}", result))
        notes += [f"{name}/SIGKILL, {label}: {e} (x{n})" for e, n in result.errors.items()]
    return rows


if __name__ == "__main__":
    main()
