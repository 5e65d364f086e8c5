"""Token calls for credentials made from other credentials: a 3-hop exchange chain and one
credential for 100 resources, next to what a one-off exchange call gives.

authplug renews a chain hop by hop with single flight; Authlib (and requests-oauth2client,
whose ``token_exchange()`` is the same one-off call) exchanges when asked and keeps
nothing, so a program that exchanges per request makes one call per hop per request.
Each is measured side by side in one run against the emulator (its token endpoint takes
``--delay`` seconds to answer, as real ones do), through ``--expiries`` token lifetimes
driven by a shared FakeClock. Fewer token calls is better.

    python benchmarks/exchange.py [--threads 64] [--tasks 200] [--expiries 3]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from _common import table
from authlib.integrations.httpx_client import OAuth2Client

from authplug import OAuth2PasswordAuth, OAuth2TokenExchangeAuth
from authplug.testing import FakeClock, OAuth2Emulator

HOPS = ("https://hop1.test", "https://hop2.test", "https://hop3.test")
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"


def _chain(idp: OAuth2Emulator, clock: FakeClock) -> list[OAuth2TokenExchangeAuth]:
    subject: object = OAuth2PasswordAuth(
        token_url=idp.token_url,
        username=idp.username,
        password=idp.password,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        clock=clock,
    )
    hops = []
    for hop in HOPS:
        subject = OAuth2TokenExchangeAuth(
            token_url=idp.token_url,
            client_id=idp.client_id,
            client_secret=idp.client_secret,
            subject_token=subject,
            audience=hop,
            clock=clock,
        )
        hops.append(subject)
    return hops  # type: ignore[return-value]


def _through_expiries(
    clock: FakeClock, expiries: int, lifetime: float, run: Callable[[], None]
) -> None:
    for _ in range(expiries):
        run()
        clock.advance(lifetime + 1)


def authplug_chain_threads(idp: OAuth2Emulator, clock: FakeClock, args: argparse.Namespace) -> None:
    last = _chain(idp, clock)[-1]

    def burst() -> None:
        barrier = threading.Barrier(args.threads)

        def one(_: int) -> None:
            barrier.wait()
            last.get_token()

        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(one, range(args.threads)))

    _through_expiries(clock, args.expiries, args.lifetime, burst)


def authplug_chain_tasks(idp: OAuth2Emulator, clock: FakeClock, args: argparse.Namespace) -> None:
    last = _chain(idp, clock)[-1]

    async def main() -> None:
        for _ in range(args.expiries):
            await asyncio.gather(*(last.aget_token() for _ in range(args.tasks)))
            clock.advance(args.lifetime + 1)

    asyncio.run(main())


def authplug_fan_out(idp: OAuth2Emulator, clock: FakeClock, args: argparse.Namespace) -> None:
    root = _chain(idp, clock)[0]
    resources = [f"https://api{i}.test" for i in range(100)]

    def burst() -> None:
        barrier = threading.Barrier(args.threads)

        def sweep(index: int) -> None:
            barrier.wait()
            for offset in range(len(resources)):
                root.for_audience(resources[(index + offset) % len(resources)]).get_token()

        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(sweep, range(args.threads)))

    _through_expiries(clock, args.expiries, args.lifetime, burst)


def one_off_chain_threads(idp: OAuth2Emulator, clock: FakeClock, args: argparse.Namespace) -> None:
    """Authlib's client, exchanging each hop for each request (nothing is kept)."""

    def once() -> None:
        with OAuth2Client(idp.client_id, idp.client_secret, trust_env=False) as client:
            token = client.fetch_token(idp.token_url, username=idp.username, password=idp.password)[
                "access_token"
            ]
            for hop in HOPS:
                token = client.fetch_token(
                    idp.token_url,
                    grant_type=EXCHANGE,
                    subject_token=token,
                    subject_token_type=ACCESS,
                    audience=hop,
                )["access_token"]

    def burst() -> None:
        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(lambda _: once(), range(args.threads)))

    _through_expiries(clock, args.expiries, args.lifetime, burst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--expiries", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--lifetime", type=float, default=600)
    args = parser.parse_args()
    cases = [
        ("3-hop chain, threads", "authplug", authplug_chain_threads, 4),
        ("3-hop chain, threads", "one-off exchange (Authlib)", one_off_chain_threads, 4),
        ("3-hop chain, asyncio tasks", "authplug", authplug_chain_tasks, 4),
        ("100 audiences, threads", "authplug (for_audience)", authplug_fan_out, 101),
    ]
    rows = []
    for scenario, who, run, least in cases:
        clock = FakeClock()
        with OAuth2Emulator(
            token_lifetime=args.lifetime, token_delay=args.delay, clock=clock
        ) as idp:
            started = time.perf_counter()
            run(idp, clock, args)
            took = time.perf_counter() - started
            calls = sum(idp.token_calls.values())
        per_expiry = calls / args.expiries
        rows.append(
            [
                scenario,
                who,
                calls,
                f"{per_expiry:g}",
                least,
                f"{per_expiry / least:.1f}",
                f"{took:.2f}",
            ]
        )
    print(
        f"{args.threads} threads, {args.tasks} tasks, {args.expiries} expiries, token "
        f"endpoint delay {args.delay * 1000:.0f} ms\n"
    )
    print(
        table(
            [
                "scenario",
                "library",
                "token calls",
                "per expiry",
                "least possible",
                "ratio",
                "seconds",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
