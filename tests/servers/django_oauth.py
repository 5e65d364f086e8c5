"""Harness for a real django-oauth-toolkit 3.x server in a child process.

The server itself is :mod:`tests.servers.dot_server`; this module starts it with the
running interpreter on a free loopback port, waits for its ready line, and talks to it
over HTTP only (Django is never imported in the test process)::

    with DjangoOAuthServer() as server:
        client = server.client("password", "client_secret_basic", tricky=True)
        httpx.post(server.token_url, ...)

Without django-oauth-toolkit installed, entering the context manager skips the test.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.metadata
import importlib.util
import json
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

import httpx
import pytest

from tests.servers import AUTH_METHODS, PLAIN_SECRET, TRICKY_SECRET, Client
from tests.servers.dot_server import client_id_for

REPO_ROOT = Path(__file__).resolve().parents[2]
DOT_REQUIREMENT = "django-oauth-toolkit>=3,<4"


def basic_credentials(client_id: str, client_secret: str) -> str:
    """An ``Authorization: Basic`` value as RFC 6749 §2.3.1 builds it.

    The id and the secret are each form-encoded (here: every byte outside
    ``A-Za-z0-9-._~`` percent-escaped, UTF-8, space as ``%20``) before they are joined
    with a colon and base64-encoded.
    """
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")


def _require_dot() -> None:
    """Skip the calling test unless django-oauth-toolkit 3.x can be imported."""
    if importlib.util.find_spec("oauth2_provider") is None:
        pytest.skip(f"django-oauth-toolkit is not installed (pip install '{DOT_REQUIREMENT}')")
    try:
        version = importlib.metadata.version("django-oauth-toolkit")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("oauth2_provider is importable but django-oauth-toolkit's metadata is missing")
    if version.split(".", 1)[0] != "3":
        pytest.skip(f"django-oauth-toolkit {version} found; this harness needs {DOT_REQUIREMENT}")


class DjangoOAuthServer:
    """A running django-oauth-toolkit server (see :class:`tests.servers.RealServer`).

    Every grant x client authentication method x secret has its own confidential
    Application (:meth:`client`). DOT has no per-Application restriction of the client
    authentication method, so each of them accepts both ``client_secret_basic`` and
    ``client_secret_post``; ``auth_method`` only says how the tests mean to use it.

    People log in too: :data:`~tests.servers.dot_server.LOGIN_CLIENT_ID`, a public
    Application (authorization code, PKCE S256 required) whose redirect URI
    :data:`~tests.servers.dot_server.LOGIN_REDIRECT_URI` matches on any port, at
    ``authorization_url``; :class:`tests.servers.people.DotPerson` answers Django's login
    form (``login_url``) and DOT's authorize form as :data:`~tests.servers.USERNAME`.
    """

    name = "django-oauth-toolkit"
    grants = frozenset({"client_credentials", "password"})
    rotates_refresh_tokens = True

    def __init__(
        self,
        *,
        access_token_lifetime: float = 120,
        run_migrations: bool = True,
        start_timeout: float = 60.0,
        rotate: bool = True,
        reuse_protection: bool = False,
        refresh_delay: float = 0.0,
    ) -> None:
        """``run_migrations=False`` makes the tables from the models: ~2 s faster.

        ``rotate`` is DOT's ``ROTATE_REFRESH_TOKEN``; ``reuse_protection`` its
        ``REFRESH_TOKEN_REUSE_PROTECTION`` (a rotated refresh token used again revokes
        its family); ``refresh_delay`` holds each refresh answer that many seconds after
        the rotation is committed (a client can then leave while its refresh is in flight).
        """
        self.access_token_lifetime = access_token_lifetime
        self.rotates_refresh_tokens = rotate
        self.reuse_protection = reuse_protection
        self.refresh_delay = refresh_delay
        self.run_migrations = run_migrations
        self.start_timeout = start_timeout
        # Plain attributes, as RealServer declares them; set once the server is up.
        self.base_url = ""
        self.token_url = ""
        self.revoke_url = ""
        self.api_url = ""  # 200 for a valid token, an RFC 6750 401 otherwise
        self.holding_url = ""  # {"holding": N}: refresh answers held back right now
        self.default_view_url = ""  # DOT's stock ProtectedResourceView: a bare 403 on refusal
        self.authorization_url = ""  # DOT's AuthorizationView (people log in: LOGIN_CLIENT_ID)
        self.login_url = ""  # Django's LoginView
        self.startup_seconds = 0.0
        self._process: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._http: httpx.Client | None = None
        self._stderr_path: Path | None = None

    # -- RealServer ----------------------------------------------------------------

    def client(self, grant: str, auth_method: str, *, tricky: bool = False) -> Client:
        if grant not in self.grants:
            raise ValueError(f"{self.name} serves no {grant!r} grant here")
        if auth_method not in AUTH_METHODS:
            raise ValueError(f"unknown client authentication method {auth_method!r}")
        return Client(
            client_id=client_id_for(grant, auth_method, tricky=tricky),
            client_secret=TRICKY_SECRET if tricky else PLAIN_SECRET,
            auth_method=auth_method,
            grant=grant,
        )

    def token_calls(self) -> Counter[str]:
        response = self._client().get(f"{self.base_url}/test/calls")
        response.raise_for_status()
        return Counter({key: int(value) for key, value in response.json().items()})

    def reset_counts(self) -> None:
        self._client().post(f"{self.base_url}/test/reset").raise_for_status()

    def stats(self) -> Counter[str]:
        """Since the last reset: token answers as ``"grant_type:outcome"`` (``ok`` or the
        error code), ``family_revocations`` (reuse protection revoking a token family),
        and the API's answers as ``"api:STATUS"``."""
        response = self._client().get(f"{self.base_url}/test/stats")
        response.raise_for_status()
        return Counter({key: int(value) for key, value in response.json().items()})

    def revoke(self, token: str, client: Client) -> None:
        """RFC 7009 revocation at DOT's ``/o/revoke_token/``, authenticated as ``client``."""
        data = {"token": token}
        headers = {}
        if client.auth_method == "client_secret_basic":
            headers["Authorization"] = basic_credentials(client.client_id, client.client_secret)
        else:
            data |= {"client_id": client.client_id, "client_secret": client.client_secret}
        response = self._client().post(self.revoke_url, data=data, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(
                f"revocation refused: {response.status_code} {response.text[:500]!r}"
            )

    # -- life cycle ----------------------------------------------------------------

    def __enter__(self) -> DjangoOAuthServer:
        _require_dot()
        self._tmp = tempfile.TemporaryDirectory(prefix="authplug-dot-")
        data_dir = Path(self._tmp.name)
        self._stderr_path = data_dir / "server.log"
        started = time.monotonic()
        try:
            with self._stderr_path.open("wb") as stderr:
                # stderr goes to a file: a pipe nobody drains could fill and block it.
                self._process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.servers.dot_server",
                        str(data_dir),
                        "--access-token-lifetime",
                        str(self.access_token_lifetime),
                        *([] if self.run_migrations else ["--no-migrations"]),
                        *([] if self.rotates_refresh_tokens else ["--no-rotation"]),
                        *(["--reuse-protection"] if self.reuse_protection else []),
                        "--refresh-delay",
                        str(self.refresh_delay),
                    ],
                    cwd=REPO_ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                )
            assert self._process.stdout is not None
            ready = self._wait_ready(self._process.stdout)
        except BaseException:
            self._stop()
            raise
        self.startup_seconds = time.monotonic() - started
        self.base_url = f"http://127.0.0.1:{ready['port']}"
        self.token_url = f"{self.base_url}/o/token/"
        self.revoke_url = f"{self.base_url}/o/revoke_token/"
        self.api_url = f"{self.base_url}/api/me"
        self.holding_url = f"{self.base_url}/test/holding"
        self.default_view_url = f"{self.base_url}/api/default"
        self.authorization_url = f"{self.base_url}/o/authorize/"
        self.login_url = f"{self.base_url}/accounts/login/"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _wait_ready(self, stdout: IO[bytes]) -> dict[str, Any]:
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=self.start_timeout)
        except queue.Empty:
            raise RuntimeError(
                f"{self.name} did not start within {self.start_timeout:g} s:\n{self._log()}"
            ) from None
        if not line:
            assert self._process is not None
            code = self._process.wait(timeout=10)
            raise RuntimeError(f"{self.name} exited with status {code}:\n{self._log()}")
        return dict(json.loads(line))

    def _log(self) -> str:
        if self._stderr_path is None:
            return "(no log)"
        with contextlib.suppress(OSError):
            return self._stderr_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        return "(no log)"

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=10)
        return self._http

    def _stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()  # the server exits when its stdin closes
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
