"""Secrets with characters every encoding spells differently, and all their spellings.

Shared by the tests that look for a secret in logs, errors and frames
(tests/clients/test_secrets_in_logs.py, tests/endpoint/test_secrets.py,
tests/endpoint/test_echoed_assertions.py).
"""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

# Characters that every encoding spells differently: @, space, +, /, =, %, non-ASCII.
PASSWORD = "p@ss w+rd/=%41é"
SECRET = "s3c r+t/=%42ü-client"
REFRESH = "rt-seeded/+= refresh-token"
CLIENT_ID = "demo-client"


def spellings(secret: str) -> set[str]:
    """Every way authplug may put ``secret`` on the wire: raw, form- and percent-encoded."""
    return {secret, quote_plus(secret, safe=""), quote(secret, safe="")}


def basic_b64(client_id: str, secret: str) -> str:
    """The Base64 of RFC 6749 §2.3.1 Basic credentials, as authplug sends them."""
    joined = quote(client_id, safe="") + ":" + quote(secret, safe="")
    return base64.b64encode(joined.encode()).decode()
