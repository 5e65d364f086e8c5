"""What authplug reads for client authentication is bounded: key and assertion files are
regular files of at most 64 KiB (a FIFO would block, ``/dev/zero`` never end), and a sync
``client_assertion=`` callable that hangs holds no event loop past the token call's
timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from authplug import ConfigurationError, OAuth2ClientCredentialsAuth, TokenEndpointError
from authplug.testing import OAuth2Emulator

jwk = pytest.importorskip("joserfc.jwk")
jwt = pytest.importorskip("joserfc.jwt")

TOKEN_URL = "https://login.example.com/oauth2/token"
SECRET = "client-secret-" * 3
# How long a guard waits before it unblocks what the code under test should never
# have blocked on (so that a regression fails instead of hanging the suite).
GUARD = 10.0

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO nobody writes to; a guard opens it for writing after GUARD seconds, so
    that a reader that blocked on it gets an end of file instead of waiting forever."""
    path = tmp_path / "key.pipe"
    os.mkfifo(path)
    done = threading.Event()

    def guard() -> None:
        if done.wait(GUARD):
            return
        with contextlib.suppress(OSError):  # nobody is reading: nothing to unblock
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    thread = threading.Thread(target=guard, daemon=True)
    thread.start()
    yield path
    done.set()
    thread.join()


def _key_option(option: str, value: object) -> None:
    secret = SECRET if option == "dpop_key" else None
    OAuth2ClientCredentialsAuth(
        token_url=TOKEN_URL, client_id="c", client_secret=secret, **{option: value}
    )


@needs_fifo
@pytest.mark.parametrize("option", ["private_key", "dpop_key"])
def test_a_fifo_is_not_a_key_file(option: str, fifo: Path) -> None:
    """A FIFO given as a key file is refused at once, not waited on."""
    with pytest.raises(ConfigurationError) as caught:
        _key_option(option, fifo)
    assert str(caught.value).startswith(f"{option}={str(fifo)!r} cannot be read (not a regular")


@pytest.mark.parametrize("option", ["private_key", "dpop_key"])
def test_a_key_file_over_64_kib_is_refused(option: str, tmp_path: Path) -> None:
    """A key is a few kB: a file of more than 64 KiB is not read."""
    path = tmp_path / "big.pem"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\n" + b"A" * (64 << 10))
    with pytest.raises(ConfigurationError, match=r"cannot be read \(larger than 64 KiB\)"):
        _key_option(option, path)
    path.write_bytes(b"{" + b" " * ((64 << 10) - 2) + b"x")  # exactly 64 KiB: read
    with pytest.raises(ConfigurationError, match="is not a JWK"):
        _key_option(option, path)


def _rsa_emulator() -> tuple[OAuth2Emulator, Any]:
    key = jwk.RSAKey.generate_key(2048)
    emulator = OAuth2Emulator(client_secret=None)
    emulator.client_key = key.as_dict(private=False)
    return emulator, key


def _assertion(emulator: OAuth2Emulator, key: Any) -> str:
    now = int(time.time())
    claims = {"iss": emulator.client_id, "sub": emulator.client_id, "aud": emulator.token_url}
    claims.update({"jti": uuid.uuid4().hex, "iat": now, "exp": now + 60})
    return str(jwt.encode({"alg": "RS256"}, claims, key))


@needs_fifo
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_assertion_file_must_stay_a_small_regular_file(tmp_path: Path, mode: str) -> None:
    """The assertion file is read at each token call: replaced by a FIFO or grown past
    64 KiB, it fails that call (nothing is sent) instead of blocking or filling memory."""
    emulator, key = _rsa_emulator()
    with emulator:
        path = tmp_path / "assertion"
        path.write_text(_assertion(emulator, key))
        first, second, third = (
            OAuth2ClientCredentialsAuth(
                token_url=emulator.token_url, client_id=emulator.client_id, client_assertion=path
            )
            for _ in range(3)
        )

        def fetch(auth: OAuth2ClientCredentialsAuth) -> object:
            return auth.get_token() if mode == "sync" else asyncio.run(auth.aget_token())

        assert fetch(first)
        path.write_bytes(b"x" * ((64 << 10) + 1))
        with pytest.raises(TokenEndpointError, match=r"cannot be read \(larger than 64 KiB\)"):
            fetch(second)
        path.unlink()
        os.mkfifo(path)
        writer = threading.Timer(GUARD, lambda: _unblock(path))
        writer.start()
        try:
            with pytest.raises(TokenEndpointError, match=r"cannot be read \(not a regular file\)"):
                fetch(third)
        finally:
            writer.cancel()
        assert emulator.token_calls.total() == 1


def _unblock(path: Path) -> None:
    with contextlib.suppress(OSError):  # nobody is reading: nothing to unblock
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


# The command, in a child whose address space is capped: /dev/zero read whole would take
# all the machine's memory before failing.
_CAPPED = (
    "import resource, runpy, sys; "
    "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
    "sys.argv = ['authplug', *sys.argv[1:]]; "
    "runpy.run_module('authplug', run_name='__main__')"
)


@pytest.mark.skipif(sys.platform != "linux", reason="/dev/zero and FIFOs as on Linux")
def test_the_command_refuses_a_fifo_and_a_device_as_a_key_file(tmp_path: Path) -> None:
    """``authplug token --private-key`` with a FIFO or ``/dev/zero``: exit status 2 and
    the reason, at once (it hung on the FIFO and ran out of memory on the device)."""
    fifo = tmp_path / "key.pipe"
    os.mkfifo(fifo)
    env = {
        **os.environ,
        "AUTHPLUG_SEMANSYS_CLIENT_ID": "semansys-client",
        "AUTHPLUG_SEMANSYS_USERNAME": "u",
        "AUTHPLUG_SEMANSYS_PASSWORD": "p",
        "AUTHPLUG_SEMANSYS_TOKEN_URL": TOKEN_URL,
    }
    for path in (str(fifo), "/dev/zero"):
        try:
            result = subprocess.run(
                [sys.executable, "-c", _CAPPED, "token", "semansys", "--private-key", path],
                capture_output=True,
                text=True,
                env=env,
                timeout=GUARD * 3,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"authplug token hung on --private-key {path}")
        assert result.returncode == 2, result.stderr
        assert f"private_key={path!r} cannot be read (not a regular file)" in result.stderr


# -- a sync client_assertion= callable under an event loop --------------------------------


def _hanging(release: threading.Event, calls: list[str]) -> Callable[[], str]:
    def hang() -> str:
        calls.append("called")
        release.wait(GUARD)  # the guard: a bounded token call never waits for this
        calls.append("returned")
        return "a.b.c"

    return hang


def _on(loop: str, make: Callable[[], Any]) -> Any:
    """``make()`` awaited by ``asyncio.run()`` or ``trio.run()``."""
    if loop == "asyncio":
        return asyncio.run(make())
    trio = pytest.importorskip("trio")
    return trio.run(make)


@pytest.mark.parametrize("loop", ["asyncio", "trio", "sync"])
def test_a_hanging_assertion_callable_holds_no_event_loop(loop: str) -> None:
    """The call fails with the package's error after ``timeout`` while the callable still
    blocks, and ``asyncio.run()``/``trio.run()`` returns: the callable's thread is not one
    the loop waits for. A sync caller is bounded the same way."""
    release = threading.Event()
    calls: list[str] = []
    with OAuth2Emulator(client_secret=None) as emulator:
        auth = OAuth2ClientCredentialsAuth(
            token_url=emulator.token_url,
            client_id="c",
            client_assertion=_hanging(release, calls),
            timeout=0.2,
            retries=0,
        )
        try:
            with pytest.raises(TokenEndpointError) as caught:
                auth.get_token() if loop == "sync" else _on(loop, auth.aget_token)
            assert calls == ["called"]  # the run ended; the callable still blocks
        finally:
            release.set()
        assert "the client_assertion callable did not return within 0.2s" in str(caught.value)
        assert emulator.token_calls.total() == 0


@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_a_sync_assertion_callable_serves_async_calls(loop: str) -> None:
    """Under an event loop the callable's value is sent, and what it raises is reported
    with the callable's exception as the cause."""
    emulator, key = _rsa_emulator()
    with emulator:
        seen: list[str] = []

        def assertion() -> str:
            seen.append(threading.current_thread().name)
            return _assertion(emulator, key)

        auth = OAuth2ClientCredentialsAuth(
            token_url=emulator.token_url, client_id=emulator.client_id, client_assertion=assertion
        )
        assert _on(loop, auth.aget_token).access_token
        assert seen == ["authplug-assertion"]

        def broken() -> str:
            raise RuntimeError("metadata server down")

        failing = OAuth2ClientCredentialsAuth(
            token_url=emulator.token_url, client_id=emulator.client_id, client_assertion=broken
        )
        with pytest.raises(TokenEndpointError, match="metadata server down") as caught:
            _on(loop, failing.aget_token)
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert emulator.token_calls.total() == 1


def test_the_wait_limit_counts_the_assertion() -> None:
    """Waiters give the whole call time: the assertion's ``timeout`` comes on top."""
    plain = OAuth2ClientCredentialsAuth(
        token_url=TOKEN_URL, client_id="c", client_secret=SECRET, timeout=2, retries=0
    )
    federated = OAuth2ClientCredentialsAuth(
        token_url=TOKEN_URL, client_id="c", client_assertion=lambda: "a.b.c", timeout=2, retries=0
    )
    assert federated._client.wait_limit == plain._client.wait_limit + 2
