"""Token calls made when many callers need a token at the same moment.

64 threads, and 1,000 asyncio tasks, each send one request to a loopback API whose
token is expired (or, where the library fetches on first use, missing). Each library is
measured side by side in one run against its own emulator, whose token endpoint takes
100 ms to answer (as real ones do). Fewer token calls is better; 1 is the least.

    pip install -r benchmarks/requirements.txt
    python benchmarks/concurrency.py
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from _common import table

from authplug import OAuth2PasswordAuth
from authplug.testing import OAuth2Emulator

THREADS = 64
TASKS = 1000
USER, PASSWORD, CLIENT, SECRET = "demo-user", "demo-password", "demo-client", "demo-secret"


def expired_token(emulator: OAuth2Emulator) -> dict[str, Any]:
    """A real token from the emulator, marked as expired a minute ago."""
    token = authplug_auth(emulator, None).get_token()
    import time

    return {
        "access_token": token.access_token,
        "refresh_token": token.refresh_token,
        "token_type": "Bearer",
        "expires_in": -60,
        "expires_at": time.time() - 60,
    }


def in_threads(send: Callable[[], int]) -> str:
    barrier = threading.Barrier(THREADS)

    def one(_: int) -> int | str:
        barrier.wait()
        try:
            return send()
        except Exception as exc:
            return type(exc).__name__

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(one, range(THREADS)))
    failures = [o for o in outcomes if o != 200]
    return f"{len(failures)} failed ({failures[0]})" if failures else "all 200"


def measure(run: Callable[[OAuth2Emulator], str]) -> tuple[str, str]:
    with OAuth2Emulator(token_delay=0.1) as emulator:
        try:
            outcome = run(emulator)
        except ImportError as exc:
            return "not installed", str(exc)
        except Exception as exc:
            return "error", f"{type(exc).__name__}: {exc}"
        # The set-up call of expired_token() is not counted.
        calls = emulator.token_calls.total() - emulator.setup_calls  # type: ignore[attr-defined]
        return str(calls), outcome


def prepared(emulator: OAuth2Emulator, expired: bool) -> dict[str, Any] | None:
    token = expired_token(emulator) if expired else None
    emulator.setup_calls = emulator.token_calls.total()  # type: ignore[attr-defined]
    return token


def authplug_auth(emulator: OAuth2Emulator, token: dict[str, Any] | None) -> OAuth2PasswordAuth:
    return OAuth2PasswordAuth(
        token_url=emulator.token_url,
        username=USER,
        password=PASSWORD,
        client_id=CLIENT,
        client_secret=SECRET,
        token=token,
    )


# -- threads ------------------------------------------------------------------------


def authplug_threads(emulator: OAuth2Emulator) -> str:
    token = prepared(emulator, expired=True)
    auth = authplug_auth(emulator, token)
    with httpx.Client(auth=auth) as client:
        return in_threads(lambda: client.get(emulator.api_url()).status_code)


def authlib_threads(emulator: OAuth2Emulator) -> str:
    from authlib.integrations.requests_client import OAuth2Session

    token = prepared(emulator, expired=True)
    session = OAuth2Session(
        client_id=CLIENT,
        client_secret=SECRET,
        token_endpoint=emulator.token_url,
        token_endpoint_auth_method="client_secret_post",
        token=token,
    )
    return in_threads(lambda: session.get(emulator.api_url()).status_code)


def requests_oauthlib_threads(emulator: OAuth2Emulator) -> str:
    from oauthlib.oauth2 import LegacyApplicationClient
    from requests_oauthlib import OAuth2Session

    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # the emulator is plain http
    token = prepared(emulator, expired=True)
    session = OAuth2Session(
        client=LegacyApplicationClient(client_id=CLIENT),
        token=token,
        auto_refresh_url=emulator.token_url,
        auto_refresh_kwargs={"client_id": CLIENT, "client_secret": SECRET},
        token_updater=lambda new: None,
    )
    return in_threads(lambda: session.get(emulator.api_url()).status_code)


def httpx_auth_threads(emulator: OAuth2Emulator) -> str:
    import httpx_auth

    prepared(emulator, expired=False)  # httpx-auth fetches on first use
    httpx_auth.OAuth2.token_cache.clear()
    auth = httpx_auth.OAuth2ResourceOwnerPasswordCredentials(
        emulator.token_url, USER, PASSWORD, client_id=CLIENT, client_secret=SECRET
    )
    with httpx.Client(auth=auth) as client:
        return in_threads(lambda: client.get(emulator.api_url()).status_code)


def authplug_threads_missing(emulator: OAuth2Emulator) -> str:
    prepared(emulator, expired=False)
    auth = authplug_auth(emulator, None)
    with httpx.Client(auth=auth) as client:
        return in_threads(lambda: client.get(emulator.api_url()).status_code)


# -- tasks --------------------------------------------------------------------------


async def gather(send: Callable[[], Any]) -> str:
    outcomes = await asyncio.gather(*(send() for _ in range(TASKS)), return_exceptions=True)
    failures = [o for o in outcomes if o != 200]
    return f"{len(failures)} failed ({failures[0]!r})" if failures else "all 200"


def authplug_tasks(emulator: OAuth2Emulator, expired: bool = True) -> str:
    token = prepared(emulator, expired=expired)
    auth = authplug_auth(emulator, token)

    async def main() -> str:
        clients = [httpx.AsyncClient(auth=auth, timeout=60) for _ in range(20)]
        counter = iter(range(TASKS))

        async def send() -> int:
            client = clients[next(counter) % len(clients)]
            return (await client.get(emulator.api_url())).status_code

        try:
            return await gather(send)
        finally:
            for client in clients:
                await client.aclose()

    return asyncio.run(main())


def authlib_tasks(emulator: OAuth2Emulator) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from authlib.integrations.httpx_client import AsyncOAuth2Client

    token = prepared(emulator, expired=True)

    async def main() -> str:
        async with AsyncOAuth2Client(
            client_id=CLIENT,
            client_secret=SECRET,
            token_endpoint=emulator.token_url,
            token_endpoint_auth_method="client_secret_post",
            token=token,
            timeout=60,
        ) as client:
            return await gather(lambda: _status(client.get(emulator.api_url())))

    return asyncio.run(main())


def httpx_auth_tasks(emulator: OAuth2Emulator) -> str:
    import httpx_auth

    prepared(emulator, expired=False)
    httpx_auth.OAuth2.token_cache.clear()
    auth = httpx_auth.OAuth2ResourceOwnerPasswordCredentials(
        emulator.token_url, USER, PASSWORD, client_id=CLIENT, client_secret=SECRET
    )

    async def main() -> str:
        async with httpx.AsyncClient(auth=auth, timeout=60) as client:
            return await gather(lambda: _status(client.get(emulator.api_url())))

    return asyncio.run(main())


async def _status(pending: Any) -> int:
    return int((await pending).status_code)


def main() -> None:
    rows = []
    cases = [
        (f"{THREADS} threads, expired token", "authplug", authplug_threads),
        (f"{THREADS} threads, expired token", "Authlib OAuth2Session", authlib_threads),
        (
            f"{THREADS} threads, expired token",
            "requests-oauthlib OAuth2Session",
            requests_oauthlib_threads,
        ),
        (f"{THREADS} threads, no token yet", "authplug", authplug_threads_missing),
        (f"{THREADS} threads, no token yet", "httpx-auth", httpx_auth_threads),
        (f"{TASKS} tasks, expired token", "authplug", authplug_tasks),
        (f"{TASKS} tasks, expired token", "Authlib AsyncOAuth2Client (httpx2)", authlib_tasks),
        (
            f"{TASKS} tasks, no token yet",
            "authplug",
            functools.partial(authplug_tasks, expired=False),
        ),
        (f"{TASKS} tasks, no token yet", "httpx-auth", httpx_auth_tasks),
    ]
    for scenario, library, run in cases:
        calls, outcome = measure(run)
        rows.append([scenario, library, calls, outcome])
    print(table(["scenario", "library", "token calls", "requests"], rows))


if __name__ == "__main__":
    main()
