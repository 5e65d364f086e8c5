"""What ``import authplug`` costs on top of ``import requests, httpx``, beside its peers.

Each measurement is a fresh interpreter that first imports requests and httpx (which any
user of these libraries has paid for already), then times one more import with
``time.perf_counter``. The table gives the median over ``--runs`` processes (15 by
default), the slowest run, and how many modules the import added to ``sys.modules``.
The peers are measured in the same run, interleaved, so that the machine's load falls on
all of them alike.

    python benchmarks/imports.py [--runs 15]

Building an auth object checks its options only: its machinery (the token manager, the
token client, the adapters' entry points) is assembled on the object's first use. A
second table shows what that first use and the first token call bring in afterwards
(Authlib, httpcore, and the rest), which is deliberately not paid at import.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from _common import median, table

PROBE = """
import json, sys, time
{prelude}
import requests, httpx
before = set(sys.modules)
start = time.perf_counter()
{statement}
elapsed = time.perf_counter() - start
added = set(sys.modules) - before
print(json.dumps({{"ms": elapsed * 1000, "modules": len(added)}}))
"""

# httpx2's clients accept only subclasses of its own Auth, so authplug imports httpx2
# when it is installed; most users do not have it (block it to measure them).
NO_HTTPX2 = 'sys.modules["httpx2"] = None'

#: row name -> (what runs before requests and httpx, the statement timed)
CASES = {
    "authplug": (NO_HTTPX2, "import authplug"),
    "authplug, httpx2 installed": ("", "import authplug"),
    "authplug + one provider class": (NO_HTTPX2, "from authplug import SemansysAuth"),
    "authplug + first auth object": (
        NO_HTTPX2,
        (
            "from authplug import SemansysAuth; "
            "SemansysAuth(username='u', password='p', client_id='c', client_secret='s')"
        ),
    ),
    "httpx-auth": ("", "import httpx_auth"),
    "httpx-auth + first auth object": (
        "",
        (
            "import httpx_auth; httpx_auth.OAuth2ClientCredentials("
            "'https://example.com/token', client_id='c', client_secret='s')"
        ),
    ),
    "requests-oauthlib": ("", "import requests_oauthlib"),
    "authlib (requests integration)": ("", "import authlib.integrations.requests_client"),
}

COMPILE = """
import compileall, importlib.util, os, sys
for name in sys.argv[1:]:
    spec = importlib.util.find_spec(name)
    where = os.path.dirname(spec.origin) if spec and spec.origin else None
    if where:
        compileall.compile_dir(where, quiet=1)
"""

PACKAGES = ("authplug", "httpx_auth", "requests_oauthlib", "authlib", "requests", "httpx")

FIRST_CALL = """
import json, sys
import requests, httpx
import authplug
from authplug.testing import OAuth2Emulator
before = set(sys.modules)
with OAuth2Emulator() as emulator:
    seen = set(sys.modules)
    auth = authplug.OAuth2ClientCredentialsAuth(
        token_url=emulator.token_url, client_id=emulator.client_id,
        client_secret=emulator.client_secret,
    )
    auth.get_token()
after = set(sys.modules) - seen
print(json.dumps({"emulator": len(seen - before), "token_call": len(after),
                  "authlib": sorted(m for m in after if m.split(".")[0] == "authlib")[:3]}))
"""


def probe(prelude: str, statement: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(prelude=prelude, statement=statement)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    # Every import reads bytecode, as after a pip install (which compiles it): an
    # editable checkout under PYTHONDONTWRITEBYTECODE=1 would otherwise compile authplug
    # from source in each process and measure the compiler.
    subprocess.run([sys.executable, "-c", COMPILE, *PACKAGES], check=True)
    for prelude, statement in CASES.values():  # warm the file system caches
        probe(prelude, statement)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name, (prelude, statement) in CASES.items():
            samples[name].append(probe(prelude, statement))

    rows = []
    peer = median([s["ms"] for s in samples["httpx-auth"]])
    for name, runs in samples.items():
        ms = median([s["ms"] for s in runs])
        rows.append(
            [
                name,
                f"{ms:.1f}",
                f"{max(s['ms'] for s in runs):.1f}",
                int(median([s["modules"] for s in runs])),
                f"{ms / peer:.2f}",
            ]
        )
    print(f"## Import on top of `import requests, httpx` (median of {args.runs} processes)\n")
    print(
        table(
            [
                "on top of `import requests, httpx`",
                "median ms",
                "max ms",
                "modules",
                "/ httpx-auth",
            ],
            rows,
        )
    )
    first = json.loads(
        subprocess.run(
            [sys.executable, "-c", FIRST_CALL], capture_output=True, text=True, check=True
        ).stdout
    )
    print("\n## Deferred to the first token call\n")
    print(
        table(
            ["modules loaded by the first object's first token call", "Authlib among them"],
            [[first["token_call"], ", ".join(first["authlib"]) + ", ..."]],
        )
    )


if __name__ == "__main__":
    main()
