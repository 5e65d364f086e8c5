"""Per-request cost of authplug against the same client with a static header.

For requests, httpx and httpx async: the same loopback API (an emulator in its own
process, so it does not share our GIL) is called N times per round with a hand-set
``Authorization`` header, N times through a minimal auth object that sets the same
header (what the client's own auth machinery costs), and N times through authplug
(token already fetched). The variants are interleaved round by round so machine noise
hits all alike. Prints median per-request times and ratios (goal: within 1.02).

    python benchmarks/overhead.py [--requests 300] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Generator

import httpx
import requests
from _common import emulator_process, median, table

from authplug import OAuth2PasswordAuth


class MinimalAuth(httpx.Auth):
    """The least an auth object can do: set a fixed header (requests and httpx)."""

    def __init__(self, header: str) -> None:
        self.header = header

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = self.header
        yield request

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self.header
        return request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per round")
    parser.add_argument("--rounds", type=int, default=15, help="rounds (median taken)")
    args = parser.parse_args()
    n = args.requests

    with emulator_process() as (base_url, token_calls):
        auth = OAuth2PasswordAuth(
            token_url=base_url + "/token",
            username="demo-user",
            password="demo-password",
            client_id="demo-client",
            client_secret="demo-secret",
        )
        header = {"Authorization": f"Bearer {auth.get_token().access_token}"}
        url = base_url + "/api/resource"

        minimal = MinimalAuth(header["Authorization"])
        static_session = requests.Session()
        static_session.headers.update(header)
        minimal_session = requests.Session()
        minimal_session.auth = minimal
        auth_session = requests.Session()
        auth_session.auth = auth
        static_client = httpx.Client(headers=header)
        minimal_client = httpx.Client(auth=minimal)
        auth_client = httpx.Client(auth=auth)
        loop = asyncio.new_event_loop()
        static_async = httpx.AsyncClient(headers=header)
        minimal_async = httpx.AsyncClient(auth=minimal)
        auth_async = httpx.AsyncClient(auth=auth)
        sessions = [static_session, minimal_session, auth_session]
        clients = [static_client, minimal_client, auth_client]
        async_clients = [static_async, minimal_async, auth_async]

        def sync_loop(get: Callable[[str], object]) -> Callable[[], float]:
            def run() -> float:
                start = time.perf_counter()
                for _ in range(n):
                    get(url)
                return (time.perf_counter() - start) / n

            return run

        def async_loop(client: httpx.AsyncClient) -> Callable[[], float]:
            async def go() -> float:
                start = time.perf_counter()
                for _ in range(n):
                    await client.get(url)
                return (time.perf_counter() - start) / n

            return lambda: loop.run_until_complete(go())

        kinds = ("static", "minimal", "authplug")
        variants: dict[tuple[str, str], Callable[[], float]] = {}
        for kind, session, client, aclient in zip(
            kinds, sessions, clients, async_clients, strict=True
        ):
            variants[("requests", kind)] = sync_loop(session.get)
            variants[("httpx", kind)] = sync_loop(client.get)
            variants[("httpx async", kind)] = async_loop(aclient)
        for run in variants.values():  # warm up connections and caches
            run()
        samples: dict[tuple[str, str], list[float]] = {key: [] for key in variants}
        order = list(variants.items())
        for round_index in range(args.rounds):
            # Rotate the order each round: whoever runs first pays for a cold cache.
            shift = round_index % len(order)
            for key, run in order[shift:] + order[:shift]:
                samples[key].append(run())

        for session in sessions:
            session.close()
        for client in clients:
            client.close()
        for aclient in async_clients:
            loop.run_until_complete(aclient.aclose())
        loop.close()

    calls = sum(token_calls.values())
    rows = []
    for name in ("requests", "httpx", "httpx async"):
        static, minimal_time, ours = (median(samples[(name, kind)]) for kind in kinds)
        rows.append(
            [
                name,
                f"{static * 1e6:.0f} µs",
                f"{minimal_time * 1e6:.0f} µs",
                f"{ours * 1e6:.0f} µs",
                f"{ours / static:.3f}",
                f"{ours / minimal_time:.3f}",
            ]
        )
    print(f"{args.rounds} rounds of {n} requests per variant, interleaved; medians.")
    print(f"Token calls during the run: {calls} (one, before it).\n")
    headers = [
        "client",
        "static header",
        "minimal auth",
        "authplug",
        "authplug / static",
        "authplug / minimal",
    ]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
