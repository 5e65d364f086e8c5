"""``authplug demo``: the whole flow against the emulators, as a readable timeline.

No network and no credentials: each provider's emulator runs on a loopback port. For
each provider, with requests and with httpx, the timeline shows the first token fetch,
the header on the API call, a proactive renewal (the auth object's clock is moved
forward, nothing sleeps), a server-side revocation answered by a 401 that is renewed and
replayed, and a wrong password turned into a clear error. Secrets are masked.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from typing import IO, Any
from urllib.parse import parse_qsl

from ._redact import mask
from .auth import BaseAuth
from .errors import AuthError
from .providers import PROVIDERS

__all__ = ["run_demo"]

_SECRET_NAMES = frozenset(
    {"password", "client_secret", "clientSecret", "refresh_token", "refreshToken"}
)

_TITLES = {
    "semansys": "Semansys: password grant, form body, OpenID Connect server",
    "mogoplus": "Mogoplus: client credentials over mutual TLS, grant type in the query",
    "telmai": "Telmai: camelCase parameters, 'expires' instead of 'expires_in'",
    "dakota": "Dakota: JSON body, refresh token with its own lifetime",
    "loginform": "Login form: FastAPI-style /auth/login, RFC 9457 errors",
}


def _short(token: str | None) -> str:
    return mask(token).strip("'") if token else "-"


def _pairs(pairs: list[tuple[str, str]]) -> str:
    return " ".join(f"{k}={'***' if k in _SECRET_NAMES and v else v}" for k, v in pairs)


def _params(request: Any) -> str:
    """The token request's parameters as sent, where they were sent, secrets masked."""
    parts = []
    if request.query:
        parts.append("query: " + _pairs(list(request.args().items())))
    if request.body:
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                data = json.loads(request.body)
                parts.append("json: " + _pairs([(k, str(v)) for k, v in data.items()]))
            except (ValueError, AttributeError):
                parts.append("json: <not JSON>")
        else:
            form = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
            parts.append("form: " + _pairs(form))
    if request.client_cert:
        parts.append("client certificate presented")
    return " | ".join(parts)


class _Timeline:
    """Prints what the emulator saw since the last look, in the order it arrived."""

    def __init__(self, emulator: Any, out: IO[str]) -> None:
        self.emulator = emulator
        self.out = out
        self.seen = 0
        self.token_calls = 0

    def say(self, text: str) -> None:
        print(text, file=self.out)

    def flush(self) -> None:
        entries = self.emulator.journal[self.seen :]
        self.seen += len(entries)
        for entry in entries:
            request = entry.request
            if entry.kind == "token":
                self.token_calls += 1
                answer = f"→ {entry.status}"
                if entry.issued:
                    answer += f", new token {_short(entry.issued)}"
                self.say(
                    f"      token call #{self.token_calls}: {request.method} {request.path}  "
                    f"[{_params(request)}]  {answer}"
                )
            else:
                header = request.headers.get("authorization", "")
                scheme, _, value = header.partition(" ")
                shown = f"{scheme} {_short(value)}" if header else "(none)"
                self.say(
                    f"      API call: {request.method} {request.path}  "
                    f"Authorization: {shown}  → {entry.status}"
                )


def _drivers(emulator: Any) -> list[tuple[str, Callable[[BaseAuth, str], int]]]:
    import httpx
    import requests

    verify: Any = getattr(emulator, "ca_file", True)
    context: Any = ssl.create_default_context(cafile=verify) if verify is not True else True

    def with_requests(auth: BaseAuth, url: str) -> int:
        # verify= on each call: REQUESTS_CA_BUNDLE would beat a session's own setting.
        with requests.Session() as session:
            session.auth = auth
            return session.get(url, verify=verify, timeout=10).status_code

    def with_httpx(auth: BaseAuth, url: str) -> int:
        with httpx.Client(auth=auth, verify=context, timeout=10) as client:
            return client.get(url).status_code

    return [("requests", with_requests), ("httpx", with_httpx)]


def _one_client(name: str, emulator: Any, client: str, send: Any, out: IO[str]) -> None:
    from .testing import FakeClock, settle

    timeline = _Timeline(emulator, out)
    timeline.seen = len(emulator.journal)
    clock = FakeClock()
    auth = PROVIDERS[name](clock=clock, **emulator.auth_kwargs())
    url = emulator.api_url()
    say = timeline.say
    say(f"  with {client}:")
    say("    1. first request: no token yet, so one is fetched")
    send(auth, url)
    timeline.flush()
    lifetime = emulator.token_lifetime
    advance = lifetime - 45
    clock.advance(advance)
    say(
        f"    2. {advance:.0f}s later (clock moved, nothing slept): 45s left, under the 60s "
        "leeway: the request goes at once with the current token, the renewal runs behind it"
    )
    send(auth, url)
    settle(auth)
    timeline.flush()
    say("    3. the server revokes every token: the API answers 401, authplug renews and replays")
    emulator.revoke_all()
    status = send(auth, url)
    timeline.flush()
    say(f"      the caller sees only the replay's answer: {status}")
    secret = "client_secret" if name == "mogoplus" else "password"
    wrong = {**emulator.auth_kwargs(), secret: "not-the-right-one"}
    say(f"    4. a wrong {secret.replace('_', ' ')}")
    try:
        send(PROVIDERS[name](**wrong), url)
    except AuthError as exc:
        timeline.flush()
        say(f"      raises {type(exc).__name__}: {exc}")
    say(f"    token calls with {client}: {timeline.token_calls}")


def run_demo(out: IO[str], only: list[str] | None = None) -> int:
    """Run the demo for every provider (or those in ``only``); return an exit status."""
    from .testing import EMULATORS

    names = only or list(EMULATORS)
    for name in names:
        say = print
        say(f"\n== {_TITLES[name]} ==", file=out)
        try:
            emulator = EMULATORS[name]()
        except ImportError as exc:
            say(f"  skipped: {exc}", file=out)
            continue
        with emulator:
            say(f"  emulator at {emulator.base_url}, token URL {emulator.token_url}", file=out)
            for client, send in _drivers(emulator):
                _one_client(name, emulator, client, send, out)
    print(
        "\nSecrets (passwords, client secrets, refresh tokens) are shown as ***, tokens by "
        "their last characters.",
        file=out,
    )
    return 0
