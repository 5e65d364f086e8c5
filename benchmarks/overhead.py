"""Per-request cost of authplug against the same client with a static header.

For requests, httpx, httpx async, aiohttp, niquests and niquests async: the same
loopback API (an emulator in its own process, so it does not share our GIL) is called N
times per round with a hand-set ``Authorization`` header, N times through a minimal auth
object that sets the same header (what the client's own auth machinery costs), and N
times through authplug (token already fetched). The variants are interleaved round by
round so machine noise hits all alike. Prints median per-request wall times and ratios
(goal: within 1.02), and the client process's CPU time per request (the emulator runs in
another process), which other load on the machine disturbs less than the wall clock.

- requests, niquests (``Session``) and niquests async (``AsyncSession``): the header in
  ``session.headers``; a minimal ``session.auth`` callable; ``session.auth = auth``.
- httpx and httpx async: ``headers=``; a minimal ``httpx.Auth``; ``auth=auth``.
- aiohttp: ``ClientSession(headers=...)``; a minimal client middleware that sets the
  header (what aiohttp's middleware machinery costs); ``middlewares=(auth,)``.

aiohttp (3.12+) and niquests are optional: the rows of one that is not importable are
skipped with a note. niquests depends on urllib3-future, which installs itself as
``urllib3`` (requests then runs on it too), so give niquests a virtualenv of its own
and run the script from there for its rows::

    python benchmarks/overhead.py [--requests 300] [--rounds 15]

    python -m venv nq-venv && nq-venv/bin/pip install -e . "aiohttp>=3.12"
    nq-venv/bin/pip install niquests
    nq-venv/bin/python benchmarks/overhead.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Generator, MutableMapping, Sequence
from typing import Any, Protocol, TypeVar, Union

import httpx
import requests
from _common import emulator_process, median, table

from authplug import OAuth2PasswordAuth

try:
    import aiohttp
except ImportError:  # optional: its row is skipped
    aiohttp = None  # type: ignore[assignment]
try:
    import niquests
except ImportError:  # optional (and best in a virtualenv of its own): its rows are skipped
    niquests = None  # type: ignore[assignment]


class HasHeaders(Protocol):
    """A prepared request of requests or niquests."""

    @property
    def headers(self) -> MutableMapping[str, str]: ...


R = TypeVar("R", bound=HasHeaders)
S = TypeVar("S", requests.Session, "niquests.Session", "niquests.AsyncSession")
T = TypeVar("T")
SyncClient = Union[requests.Session, httpx.Client, "niquests.Session"]
AsyncClient = Union[httpx.AsyncClient, "niquests.AsyncSession"]


class MinimalAuth(httpx.Auth):
    """The least an auth object can do: set a fixed header (requests, niquests, httpx).

    :meth:`middleware` is the same for aiohttp, as a client middleware.
    """

    def __init__(self, header: str) -> None:
        self.header = header

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = self.header
        yield request

    def __call__(self, request: R) -> R:
        request.headers["Authorization"] = self.header
        return request

    async def middleware(
        self,
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        request.headers["Authorization"] = self.header
        return await handler(request)


# -- the auth step alone, without the network -------------------------------------------

STEP_CALLS = 20_000


def _best(run: Callable[[], float], repeat: int = 7) -> float:
    return min(run() for _ in range(repeat))


def _timed(call: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        for _ in range(STEP_CALLS):
            call()
        return (time.perf_counter() - start) / STEP_CALLS

    return run


def step_costs(
    auth: OAuth2PasswordAuth, minimal: MinimalAuth, url: str, loop: asyncio.AbstractEventLoop
) -> dict[str, tuple[float, float]]:
    """Seconds per request of what each auth object does for one request and its 200
    answer (set the header; look at the answer), for the minimal auth and for authplug.

    No I/O: a canned answer stands for the server's. The end-to-end rows cannot resolve
    a few microseconds on a request of hundreds; this can. The same set-up work (a fresh
    prepared request each time, for the hooks requests registers) is paid by both.
    """
    costs: dict[str, tuple[float, float]] = {}

    def requests_like(module: Any) -> tuple[float, float]:
        prepared = module.Request("GET", url).prepare()
        answer = module.Response()
        answer.status_code = 200

        def once(a: Callable[[Any], Any]) -> None:
            request = prepared.copy()
            request.hooks = {"response": []}  # copy() shares the hooks' lists
            request = a(request)
            answer.request = request
            for hook in request.hooks["response"]:
                hook(answer)

        return tuple(_best(_timed(functools.partial(once, a))) for a in (minimal, auth))  # type: ignore[return-value]

    costs["requests"] = requests_like(requests)
    if niquests is not None:
        costs["niquests"] = requests_like(niquests)

    request = httpx.Request("GET", url)
    response = httpx.Response(200, request=request)

    def httpx_once(a: httpx.Auth) -> None:
        flow = a.sync_auth_flow(request)
        next(flow)
        with contextlib.suppress(StopIteration):
            flow.send(response)

    costs["httpx"] = (
        _best(_timed(functools.partial(httpx_once, minimal))),
        _best(_timed(functools.partial(httpx_once, auth))),
    )

    async def httpx_async_run(a: httpx.Auth) -> float:
        start = time.perf_counter()
        for _ in range(STEP_CALLS):
            flow = a.async_auth_flow(request)
            await flow.__anext__()
            with contextlib.suppress(StopAsyncIteration):
                await flow.asend(response)
        return (time.perf_counter() - start) / STEP_CALLS

    costs["httpx async"] = tuple(  # type: ignore[assignment]
        _best(lambda a=a: loop.run_until_complete(httpx_async_run(a))) for a in (minimal, auth)
    )

    if aiohttp is not None and hasattr(aiohttp, "ClientMiddlewareType"):
        from types import SimpleNamespace

        from multidict import CIMultiDict, CIMultiDictProxy
        from yarl import URL

        answer = SimpleNamespace(status=200, headers=CIMultiDictProxy(CIMultiDict()))

        async def handler(request: Any) -> Any:
            return answer

        async def aiohttp_run(middleware: Any) -> float:
            client_request = aiohttp.ClientRequest("GET", URL(url), loop=loop)
            start = time.perf_counter()
            for _ in range(STEP_CALLS):
                client_request._traces = []  # a new request, not a redirect hop of the last
                await middleware(client_request, handler)
            return (time.perf_counter() - start) / STEP_CALLS

        costs["aiohttp"] = tuple(  # type: ignore[assignment]
            _best(lambda m=m: loop.run_until_complete(aiohttp_run(m)))
            for m in (minimal.middleware, auth)
        )
    return costs


def _dpop_auth(base_url: str, auth: OAuth2PasswordAuth) -> OAuth2PasswordAuth:
    """An auth object holding a DPoP-bound token (ES256): each request gets a new proof."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from authplug._dpop import DPoP

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    token = auth.get_token()
    bound = {
        "access_token": token.access_token,
        "token_type": "DPoP",
        "expires_in": 3600,
        "dpop_jkt": DPoP(key, "ES256").jkt,
    }
    return OAuth2PasswordAuth(
        token_url=base_url + "/token",
        username="demo-user",
        password="demo-password",
        client_id="demo-client",
        client_secret="demo-secret",
        dpop_key=pem,
        token=bound,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per round")
    parser.add_argument("--rounds", type=int, default=15, help="rounds (median taken)")
    args = parser.parse_args()
    n = args.requests
    kinds = ("static", "minimal", "authplug")
    notes = []
    use_aiohttp = aiohttp is not None and hasattr(aiohttp, "ClientMiddlewareType")
    if not use_aiohttp:
        notes.append("aiohttp 3.12+ (client middlewares) is not installed: its row is skipped.")
    if niquests is None:
        notes.append(
            "niquests is not installed: its rows are skipped (run the script from a "
            "virtualenv of its own that has it; see the docstring)."
        )

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
        loop = asyncio.new_event_loop()

        # Per variant: the timed loop, a probe that answers the status of one request
        # (to check the set-up), and what closes the client.
        variants: dict[tuple[str, str], Callable[[], tuple[float, float]]] = {}
        probes: dict[tuple[str, str], Callable[[], int]] = {}
        closers: list[Callable[[], object]] = []

        def sync_loop(get: Callable[[str], object]) -> Callable[[], tuple[float, float]]:
            def run() -> tuple[float, float]:
                start, cpu = time.perf_counter(), time.process_time()
                for _ in range(n):
                    get(url)
                return (time.perf_counter() - start) / n, (time.process_time() - cpu) / n

            return run

        def blocking(function: Callable[..., Awaitable[T]], *args: object) -> Callable[[], T]:
            """A plain call that runs ``function(*args)`` on the loop to its end."""
            return lambda: loop.run_until_complete(function(*args))

        def async_loop(
            get: Callable[[str], Awaitable[object]],
        ) -> Callable[[], tuple[float, float]]:
            async def go() -> tuple[float, float]:
                start, cpu = time.perf_counter(), time.process_time()
                for _ in range(n):
                    await get(url)
                return (time.perf_counter() - start) / n, (time.process_time() - cpu) / n

            return blocking(go)

        def on_loop(make: Callable[[], T]) -> T:
            """Build a client inside the running loop (aiohttp asks for one)."""

            async def build() -> T:
                return make()

            return blocking(build)()

        def authorized(make: Callable[[], S], auth: MinimalAuth | OAuth2PasswordAuth | None) -> S:
            """A requests-style session: the static header, or ``session.auth``."""
            session = make()
            if auth is None:
                session.headers.update(header)
            else:
                session.auth = auth
            return session

        def sync_status(client: SyncClient) -> int:
            return client.get(url).status_code or 0

        async def async_status(client: AsyncClient) -> int:
            return (await client.get(url)).status_code or 0

        async def async_close(client: AsyncClient) -> None:
            if isinstance(client, httpx.AsyncClient):
                await client.aclose()
            else:
                await client.close()

        async def aiohttp_get(session: aiohttp.ClientSession, target: str) -> int:
            async with session.get(target) as response:  # read the body, as the others do
                await response.read()
                return response.status

        def add_sync(name: str, clients: Sequence[SyncClient]) -> None:
            for kind, client in zip(kinds, clients, strict=True):
                variants[(name, kind)] = sync_loop(client.get)
                probes[(name, kind)] = functools.partial(sync_status, client)
                closers.append(client.close)

        def add_async(name: str, clients: Sequence[AsyncClient]) -> None:
            for kind, client in zip(kinds, clients, strict=True):
                variants[(name, kind)] = async_loop(client.get)
                probes[(name, kind)] = blocking(async_status, client)
                closers.append(blocking(async_close, client))

        auths = (None, minimal, auth)
        add_sync("requests", [authorized(requests.Session, a) for a in auths])
        add_sync(
            "httpx",
            [httpx.Client(headers=header), httpx.Client(auth=minimal), httpx.Client(auth=auth)],
        )
        add_async(
            "httpx async",
            [
                httpx.AsyncClient(headers=header),
                httpx.AsyncClient(auth=minimal),
                httpx.AsyncClient(auth=auth),
            ],
        )
        if use_aiohttp:
            aiohttp_sessions = [
                on_loop(lambda: aiohttp.ClientSession(headers=header)),
                on_loop(lambda: aiohttp.ClientSession(middlewares=(minimal.middleware,))),
                on_loop(lambda: aiohttp.ClientSession(middlewares=(auth,))),
            ]
            for kind, session in zip(kinds, aiohttp_sessions, strict=True):
                variants[("aiohttp", kind)] = async_loop(functools.partial(aiohttp_get, session))
                probes[("aiohttp", kind)] = blocking(aiohttp_get, session, url)
                closers.append(blocking(session.close))
        if niquests is not None:
            add_sync("niquests", [authorized(niquests.Session, a) for a in auths])
            add_async(
                "niquests async",
                [on_loop(functools.partial(authorized, niquests.AsyncSession, a)) for a in auths],
            )

        for key, probe in probes.items():  # check the set-up: every variant is let in
            assert probe() == 200, key
        for run in variants.values():  # warm up connections and caches
            run()
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {key: [] for key in variants}
        order = list(variants.items())
        for round_index in range(args.rounds):
            # Rotate the order each round: whoever runs first pays for a cold cache.
            shift = round_index % len(order)
            for key, run in order[shift:] + order[:shift]:
                samples[key].append(run())

        steps = step_costs(auth, minimal, url, loop)
        dpop_steps = step_costs(_dpop_auth(base_url, auth), minimal, url, loop)
        for close in closers:
            close()
        loop.close()

    calls = sum(token_calls.values())
    rows = []
    names = dict.fromkeys(name for name, _ in variants)
    for name in names:
        static, minimal_time, ours = (
            median([wall for wall, _ in samples[(name, kind)]]) for kind in kinds
        )
        cpu_static, _, cpu_ours = (
            median([cpu for _, cpu in samples[(name, kind)]]) for kind in kinds
        )
        rows.append(
            [
                name,
                f"{static * 1e6:.0f} µs",
                f"{minimal_time * 1e6:.0f} µs",
                f"{ours * 1e6:.0f} µs",
                f"{ours / static:.3f}",
                f"{ours / minimal_time:.3f}",
                f"{cpu_static * 1e6:.0f} / {cpu_ours * 1e6:.0f} µs",
                f"{cpu_ours / cpu_static:.3f}",
            ]
        )
    print(f"{args.rounds} rounds of {n} requests per variant, interleaved; medians.")
    print(f"Token calls during the run: {calls} (one, before it).")
    for note in notes:
        print(note)
    print()
    headers = [
        "client",
        "static header",
        "minimal auth",
        "authplug",
        "authplug / static",
        "authplug / minimal",
        "CPU static / authplug",
        "CPU ratio",
    ]
    print(table(headers, rows))

    step_rows = []
    for name, (minimal_step, our_step) in steps.items():
        static = median([wall for wall, _ in samples[(name, "static")]])
        added = our_step - minimal_step
        step_rows.append(
            [
                name,
                f"{minimal_step * 1e6:.2f} µs",
                f"{our_step * 1e6:.2f} µs",
                f"{added * 1e6:+.2f} µs",
                f"{static * 1e6:.0f} µs",
                f"{(static + added) / static:.4f}",
                f"{(dpop_steps[name][1] - minimal_step) * 1e6:+.1f} µs",
            ]
        )
    print()
    print(
        f"The auth step alone (no network, best of 7 x {STEP_CALLS:,} calls): what authplug "
        "adds to a request, against the end-to-end static request above."
    )
    print()
    step_headers = [
        "client",
        "minimal auth step",
        "authplug step",
        "added per request",
        "static request",
        "implied ratio",
        "added with DPoP (ES256 proof)",
    ]
    print(table(step_headers, step_rows))


if __name__ == "__main__":
    main()
