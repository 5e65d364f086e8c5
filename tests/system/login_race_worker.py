"""One process of the login race: its threads' first requests need a person's login.

Run as ``python -m tests.system.login_race_worker CACHE ISSUER API_URL THREADS``, where
CACHE is ``file:PATH`` or ``redis:PORT``. Prints ``ready``, waits for a line on stdin (so
that every process starts together), then each thread sends one request through
requests with an OAuth2DeviceCodeAuth whose ``on_user_code`` prints ``code USER_CODE`` (the
test plays the person with it). Prints the statuses as JSON, one line.
"""

from __future__ import annotations

import sys

import requests

from authplug import DeviceCode, OAuth2DeviceCodeAuth

from .fleet_worker import make_cache, send_together


def main() -> None:
    cache_spec, issuer, api_url, threads = sys.argv[1:5]
    count = int(threads)

    def show(code: DeviceCode) -> None:
        print("code", code.user_code, flush=True)

    auth = OAuth2DeviceCodeAuth(
        issuer=issuer,
        client_id="my-cli",
        scope="openid api",
        on_user_code=show,
        cache=make_cache(cache_spec),
        login_timeout=60,
    )
    send_together(lambda _: requests.get(api_url, auth=auth, timeout=120).status_code, count)


if __name__ == "__main__":
    main()
