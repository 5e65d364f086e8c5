"""One process of the exchange fleet: its threads send requests with a token exchange
whose subject is another auth object, both keeping their tokens in one shared file.

Run as ``python -m tests.system.exchange_worker CACHE TOKEN_URL API_URL THREADS``. Prints
``ready``, waits for a line on stdin (so that every process starts together), sends one
request per thread through requests, and prints the statuses as JSON, one line.
"""

from __future__ import annotations

import sys

import requests

from authplug import FileTokenCache, OAuth2PasswordAuth, OAuth2TokenExchangeAuth

from .fleet_worker import send_together


def main() -> None:
    cache_path, token_url, api_url, threads = sys.argv[1:5]
    count = int(threads)
    cache = FileTokenCache(cache_path)
    subject = OAuth2PasswordAuth(
        token_url=token_url,
        username="demo-user",
        password="demo-password",
        client_id="demo-client",
        client_secret="demo-secret",
        cache=cache,
    )
    auth = OAuth2TokenExchangeAuth(
        token_url=token_url,
        client_id="demo-client",
        client_secret="demo-secret",
        subject_token=subject,
        audience="https://orders.internal",
        cache=cache,
    )
    send_together(lambda _: requests.get(api_url, auth=auth, timeout=120).status_code, count)


if __name__ == "__main__":
    main()
