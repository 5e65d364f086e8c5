"""Resident memory per credential: auth objects that each hold a fetched token.

A service with one credential per tenant keeps thousands of auth objects. For 1, 1,000
and 10,000 objects, each with its own token fetched from a loopback emulator (one
password grant per object, told apart by scope), this measures the growth of the
process's resident set (RSS) and divides by the number of objects. Every library and
count runs in a fresh child process, after a warm-up object whose cost is not counted
(imports, the first SSL context), all in one run against the same emulator.

- authplug: ``OAuth2PasswordAuth(...).get_token()``.
- httpx-auth: ``OAuth2ResourceOwnerPasswordCredentials``, token fetched by one request
  through a shared ``httpx.Client`` (its tokens live in its process-wide cache).
- Authlib: one ``authlib.integrations.httpx_client.OAuth2Client`` per credential (its
  documented way: the client is the credential), ``fetch_token(...)``.

Goal: authplug under 20 KiB per object.

    pip install -r benchmarks/requirements.txt
    python benchmarks/memory.py [--counts 1 1000 10000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from _common import emulator_process, table

LIBRARIES = ("authplug", "httpx-auth", "Authlib")
# Authlib builds an SSL context per client (~0.8 MiB, ~50 ms): 10,000 of them take
# about 8 GiB and ten minutes. Run them with --all.
MOST = {"Authlib": 1000}
CREDENTIALS = {
    "username": "demo-user",
    "password": "demo-password",
    "client_id": "demo-client",
    "client_secret": "demo-secret",
}


def rss() -> int:
    """Resident set size of this process in bytes (Linux)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def maker(library: str, base_url: str) -> Callable[[int], Any]:
    """A function that builds credential number ``i`` with its token fetched."""
    token_url = base_url + "/token"
    api_url = base_url + "/api/resource"
    if library == "authplug":
        from authplug import OAuth2PasswordAuth

        def make_authplug(i: int) -> Any:
            auth = OAuth2PasswordAuth(token_url=token_url, scope=f"tenant-{i}", **CREDENTIALS)
            auth.get_token()
            return auth

        return make_authplug
    if library == "httpx-auth":
        import httpx
        import httpx_auth

        shared = httpx.Client()

        def make_httpx_auth(i: int) -> Any:
            auth = httpx_auth.OAuth2ResourceOwnerPasswordCredentials(
                token_url, scope=f"tenant-{i}", **CREDENTIALS
            )
            shared.get(api_url, auth=auth).raise_for_status()
            return auth

        return make_httpx_auth
    if library == "Authlib":
        from authlib.integrations.httpx_client import OAuth2Client

        def make_authlib(i: int) -> Any:
            client = OAuth2Client(
                CREDENTIALS["client_id"],
                CREDENTIALS["client_secret"],
                token_endpoint=token_url,
                scope=f"tenant-{i}",
            )
            client.fetch_token(username=CREDENTIALS["username"], password=CREDENTIALS["password"])
            return client

        return make_authlib
    raise ValueError(library)


def child(library: str, count: int, base_url: str) -> None:
    """Build ``count`` credentials and print the RSS growth as JSON."""
    make = maker(library, base_url)
    warm = [make(-1), make(-2)]  # imports, first contexts, first allocations
    gc.collect()
    before = rss()
    held = [make(i) for i in range(count)]
    gc.collect()
    after = rss()
    print(json.dumps({"delta": after - before, "count": len(held), "warm": len(warm)}))


def measure(library: str, count: int, base_url: str) -> str:
    done = subprocess.run(
        [sys.executable, __file__, "--child", library, str(count), base_url],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"failed ({last[:60]})"
    delta = json.loads(done.stdout.strip().splitlines()[-1])["delta"]
    return f"{delta / count / 1024:,.1f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 1000, 10000])
    parser.add_argument("--all", action="store_true", help="no per-library object cap")
    parser.add_argument("--child", nargs=3, metavar=("LIBRARY", "COUNT", "URL"))
    args = parser.parse_args()
    if args.child:
        library, count, url = args.child
        child(library, int(count), url)
        return
    # Authlib's clients each keep a connection open: allow one descriptor per object.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(args.counts) * 2 + 1024
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    rows = []
    with emulator_process() as (base_url, token_calls):
        for count in args.counts:
            cells = [f"{count:,}"]
            for library in LIBRARIES:
                if count > MOST.get(library, count) and not args.all:
                    cells.append("not run (--all)")
                else:
                    cells.append(measure(library, count, base_url))
            rows.append(cells)
    print("RSS growth per object holding a fetched token (each cell: a fresh process).")
    print(f"Token calls served: {sum(token_calls.values()):,}.\n")
    print(table(["objects", *LIBRARIES], rows))


if __name__ == "__main__":
    main()
