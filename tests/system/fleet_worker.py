"""One worker process of the fleet tests: N threads, one auth object, a shared cache.

Run as ``python -m tests.system.fleet_worker CACHE TOKEN_URL API_URL THREADS``, where CACHE is
``file:PATH``, ``keyring:PATH`` (a plain-text keyring file) or ``redis:PORT``. Prints
``ready``, waits for a line on stdin (so that every process starts together), sends one
request per thread at the same moment, and prints the statuses as JSON.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import requests

from authplug import FileTokenCache, OAuth2PasswordAuth, RedisTokenCache, TokenCache


def make_cache(spec: str) -> TokenCache:
    kind, _, where = spec.partition(":")
    if kind == "file":
        return FileTokenCache(where)
    if kind == "keyring":
        from authplug.cache import KeyringTokenCache

        from .keyring_backends import plaintext_keyring

        return KeyringTokenCache(keyring=plaintext_keyring(where), lock_path=where + ".lock")
    import redis

    return RedisTokenCache(redis.Redis(host="127.0.0.1", port=int(where)))


def send_together(send: Callable[[int], int], count: int) -> None:
    """The workers' protocol: print ``ready``, wait for a line on stdin (every process
    starts together), call ``send(index)`` from ``count`` threads at the same moment, and
    print the statuses as JSON, one line."""
    barrier = threading.Barrier(count)

    def one(index: int) -> int:
        barrier.wait()
        return send(index)

    print("ready", flush=True)
    sys.stdin.readline()
    with ThreadPoolExecutor(count) as pool:
        statuses = list(pool.map(one, range(count)))
    print(json.dumps(statuses), flush=True)


def main() -> None:
    cache_spec, token_url, api_url, threads = sys.argv[1:5]
    count = int(threads)
    auth = OAuth2PasswordAuth(
        token_url=token_url,
        username="demo-user",
        password="demo-password",
        client_id="demo-client",
        client_secret="demo-secret",
        cache=make_cache(cache_spec),
    )
    client = httpx.Client(auth=auth, timeout=60)

    def one(index: int) -> int:
        if index % 2:
            return client.get(api_url).status_code
        return requests.get(api_url, auth=auth, timeout=60).status_code

    with client:
        send_together(one, count)


if __name__ == "__main__":
    main()
