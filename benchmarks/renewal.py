"""Request latency while tokens are renewed: does renewal sit on the request path?

Callers keep calling a loopback API for a few seconds while short-lived tokens (5 s,
renewed 2 s before they expire) come due again and again; the token endpoint answers
after 0.1 s, then after 1 s. Measured side by side in one run, each against its own
emulator process (which notes when each token call started and ended):

- static header: a token fetched once, set by hand (no renewal at all: the floor);
- authplug: one ``OAuth2PasswordAuth`` shared by every caller, ``leeway=2``;
- Authlib: one ``OAuth2Session`` (requests), ``OAuth2Client`` (httpx) or
  ``AsyncOAuth2Client`` shared by every caller, ``leeway=2``;
- httpx-auth: one ``OAuth2ResourceOwnerPasswordCredentials``, ``early_expiry=2`` (httpx
  only).

Workloads: 64 threads (32 with a requests.Session each, 32 with an httpx.Client each),
each pausing 0.1 s between requests, and 1,000 asyncio tasks over 20 httpx.AsyncClients
(Authlib: one AsyncOAuth2Client), each pausing 5 s. Prints p50, p99 and max request
latency over the whole run and over the requests that overlapped a token call, the
token calls, and how many requests failed.

    pip install -r benchmarks/requirements.txt
    python benchmarks/renewal.py [--seconds 12]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import httpx
import requests
from _common import table

LIFETIME = 5.0
LEEWAY = 2.0
USER, PASSWORD, CLIENT, SECRET = "demo-user", "demo-password", "demo-client", "demo-secret"
THREADS = 64
TASKS = 1000
# Callers pause between requests, as services do, so that latency measures waiting
# for tokens rather than a saturated machine: about 640 requests/s from the threads
# and 200 from the tasks.
THREAD_PAUSE = 0.1
TASK_PAUSE = 5.0

Sample = tuple[float, float, bool]  # start, end (time.time()), succeeded


def _serve(options: dict[str, Any], out: Any, stop: Any) -> None:
    from authplug.testing import OAuth2Emulator

    class Timed(OAuth2Emulator):
        """Notes when each token call started and ended (wall clock: other processes)."""

        calls: ClassVar[list[tuple[float, float]]] = []

        def _token_endpoint(self, request: Any) -> Any:
            start = time.time()
            try:
                return super()._token_endpoint(request)
            finally:
                self.calls.append((start, time.time()))

    with Timed(**options) as emulator:
        out.put(emulator.base_url)
        stop.wait()
        out.put(list(Timed.calls))


@contextmanager
def emulator(delay: float, lifetime: float = LIFETIME) -> Iterator[tuple[str, list[Any]]]:
    """An emulator in its own process; yields its URL and, at the end, its token calls."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    stop = context.Event()
    options = {"token_lifetime": lifetime, "token_delay": delay}
    process = context.Process(target=_serve, args=(options, out, stop), daemon=True)
    process.start()
    calls: list[Any] = []
    try:
        yield out.get(timeout=30), calls
    finally:
        stop.set()
        calls.extend(out.get(timeout=30))
        process.join(timeout=30)


# -- what each library gives a caller -------------------------------------------------


def authplug_auth(base: str) -> Any:
    from authplug import OAuth2PasswordAuth

    auth = OAuth2PasswordAuth(
        token_url=base + "/token",
        username=USER,
        password=PASSWORD,
        client_id=CLIENT,
        client_secret=SECRET,
        leeway=LEEWAY,
    )
    auth.get_token()
    return auth


def first_token(base: str) -> dict[str, Any]:
    answer = httpx.post(
        base + "/token",
        data={
            "grant_type": "password",
            "username": USER,
            "password": PASSWORD,
            "client_id": CLIENT,
            "client_secret": SECRET,
        },
    )
    token: dict[str, Any] = answer.json()
    token["expires_at"] = time.time() + float(token["expires_in"])
    return token


def authlib_kwargs(base: str) -> dict[str, Any]:
    return {
        "client_id": CLIENT,
        "client_secret": SECRET,
        "token_endpoint": base + "/token",
        "token_endpoint_auth_method": "client_secret_post",
        "token": first_token(base),
        "leeway": LEEWAY,
    }


def httpx_auth_auth(base: str) -> Any:
    import httpx_auth

    httpx_auth.OAuth2.token_cache.clear()
    return httpx_auth.OAuth2ResourceOwnerPasswordCredentials(
        base + "/token",
        USER,
        PASSWORD,
        client_id=CLIENT,
        client_secret=SECRET,
        early_expiry=LEEWAY,
    )


def static_header(base: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {first_token(base)['access_token']}"}


# -- workloads ------------------------------------------------------------------------


def in_threads(senders: list[Callable[[], int]], seconds: float) -> list[Sample]:
    """Each sender in its own thread, calling in a loop until time is up."""
    samples: list[Sample] = []
    lock = threading.Lock()
    end = time.time() + seconds

    def loop(send: Callable[[], int]) -> None:
        mine: list[Sample] = []
        while time.time() < end:
            start = time.time()
            try:
                ok = send() == 200
            except Exception:
                ok = False
            mine.append((start, time.time(), ok))
            time.sleep(THREAD_PAUSE)
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=loop, args=(send,)) for send in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def thread_senders(
    url: str, make_session: Callable[[], Any], make_client: Callable[[], Any]
) -> list[Callable[[], int]]:
    """Half the threads on requests, half on httpx."""
    senders: list[Callable[[], int]] = []
    for index in range(THREADS):
        if index % 2 == 0:
            session = make_session()
            senders.append(lambda s=session: s.get(url, timeout=30).status_code)
        else:
            client = make_client()
            senders.append(lambda c=client: c.get(url, timeout=30).status_code)
    return senders


def in_tasks(make_clients: Callable[[], list[Any]], url: str, seconds: float) -> list[Sample]:
    async def main() -> list[Sample]:
        clients = make_clients()
        samples: list[Sample] = []
        end = time.time() + seconds

        async def loop(client: Any, offset: float) -> None:
            await asyncio.sleep(offset)  # spread the tasks over one pause
            while time.time() < end:
                start = time.time()
                try:
                    ok = (await client.get(url, timeout=60)).status_code == 200
                except Exception:
                    ok = False
                samples.append((start, time.time(), ok))
                await asyncio.sleep(TASK_PAUSE)

        try:
            await asyncio.gather(
                *(loop(clients[i % len(clients)], i * TASK_PAUSE / TASKS) for i in range(TASKS))
            )
        finally:
            for client in {id(c): c for c in clients}.values():
                await client.aclose()
        return samples

    return asyncio.run(main())


# -- the variants ---------------------------------------------------------------------


def run_threads(variant: str, base: str, seconds: float) -> list[Sample] | None:
    url = base + "/api/resource"
    if variant == "static header":
        header = static_header(base)

        def session() -> Any:
            made = requests.Session()
            made.headers.update(header)
            return made

        senders = thread_senders(url, session, lambda: httpx.Client(headers=header))
    elif variant == "authplug":
        auth = authplug_auth(base)

        def session() -> Any:
            made = requests.Session()
            made.auth = auth
            return made

        senders = thread_senders(url, session, lambda: httpx.Client(auth=auth))
    elif variant == "Authlib":
        from authlib.integrations.httpx_client import OAuth2Client
        from authlib.integrations.requests_client import OAuth2Session

        shared_session = OAuth2Session(**authlib_kwargs(base))
        shared_client = OAuth2Client(**authlib_kwargs(base))
        senders = thread_senders(url, lambda: shared_session, lambda: shared_client)
    elif variant == "httpx-auth":
        auth = httpx_auth_auth(base)
        shared = httpx.Client(auth=auth)
        senders = [lambda: shared.get(url, timeout=30).status_code] * THREADS
    else:
        raise ValueError(variant)
    return in_threads(senders, seconds)


def run_tasks(variant: str, base: str, seconds: float) -> list[Sample] | None:
    url = base + "/api/resource"
    if variant == "static header":
        header = static_header(base)
        return in_tasks(
            lambda: [httpx.AsyncClient(headers=header) for _ in range(20)], url, seconds
        )
    if variant == "authplug":
        auth = authplug_auth(base)
        return in_tasks(lambda: [httpx.AsyncClient(auth=auth) for _ in range(20)], url, seconds)
    if variant == "Authlib":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from authlib.integrations.httpx_client import AsyncOAuth2Client

        kwargs = authlib_kwargs(base)
        return in_tasks(lambda: [AsyncOAuth2Client(**kwargs)], url, seconds)
    if variant == "httpx-auth":
        auth = httpx_auth_auth(base)
        return in_tasks(lambda: [httpx.AsyncClient(auth=auth) for _ in range(20)], url, seconds)
    raise ValueError(variant)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(samples: list[Sample], calls: list[tuple[float, float]]) -> list[str]:
    every = [(end - start) * 1000 for start, end, _ in samples]
    during = [
        (end - start) * 1000
        for start, end, _ in samples
        if any(start < call_end and end > call_start for call_start, call_end in calls)
    ]
    failed = sum(1 for *_, ok in samples if not ok)

    def three(values: list[float]) -> str:
        if not values:
            return "-"
        return f"{percentile(values, 0.5):.1f} / {percentile(values, 0.99):.1f} / {max(values):.0f}"

    return [three(every), three(during), str(len(calls)), f"{len(samples):,}", str(failed)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each run")
    parser.add_argument("--delays", type=float, nargs="+", default=[0.1, 1.0])
    args = parser.parse_args()
    variants = ("static header", "authplug", "Authlib", "httpx-auth")
    rows = []
    for delay in args.delays:
        for workload, run in (("64 threads", run_threads), ("1,000 tasks", run_tasks)):
            for variant in variants:
                lifetime = 3600.0 if variant == "static header" else LIFETIME
                with emulator(delay, lifetime) as (base, calls):
                    samples = run(variant, base, args.seconds)
                if samples is None:
                    continue
                # The first token call (before the run) is not a renewal.
                started = min(start for start, *_ in samples)
                renewals = [call for call in calls if call[1] > started]
                rows.append([f"{delay:g} s", workload, variant, *summary(samples, renewals)])
                print(" | ".join(rows[-1]), flush=True)
    print(
        f"\n{args.seconds:g} s per run; tokens live {LIFETIME:g} s, renewed {LEEWAY:g} s "
        "before expiry. Latency in ms: p50 / p99 / max.\n"
    )
    headers = [
        "token endpoint",
        "callers",
        "library",
        "all requests",
        "during token calls",
        "token calls",
        "requests",
        "failed",
    ]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
