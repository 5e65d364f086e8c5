"""The OS keyring as a token cache (authplug[keyring]), through a real keyring backend.

The backend is ``keyrings.alt.file.PlaintextKeyring`` with its file in the test's folder:
a real keyring backend that needs no desktop session. The processes of a fleet share a
login through it and renew once; a backend that fails loses no request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import stat
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import keyring
import keyring.core
import pytest
from keyring.backends.fail import Keyring as NoKeyring
from keyring.errors import InitError, KeyringLocked

from authplug import CacheError, ConfigurationError, Token
from authplug.cache import KeyringTokenCache, TokenCache
from authplug.testing import OAuth2Emulator

from ..conftest import key_for, password_auth
from ..forked import wait_for_child
from .keyring_backends import (
    WINDOWS_CAP,
    CappedKeyring,
    FailingKeyring,
    capped_keyring,
    plaintext_keyring,
)
from .test_caches import (
    BAD_ENTRIES,
    PROCESSES,
    THREADS,
    authplug_warnings,
    check_renewed_over_bad_entry,
    run_fleet,
    seed_expired,
)
from .test_file_cache_rotation import token

SERVICE = "authplug-tests"


def keyring_cache(tmp_path: Path, backend: Any = None, **options: Any) -> KeyringTokenCache:
    """A cache on a plain-text keyring in ``tmp_path`` (or ``backend``), its lock there too."""
    if backend is None:
        backend = plaintext_keyring(str(tmp_path / "keyring.cfg"))
    options.setdefault("lock_path", tmp_path / "keyring.lock")
    return KeyringTokenCache(SERVICE, keyring=backend, **options)


def test_round_trip_through_a_real_backend(tmp_path: Path) -> None:
    """set, get and delete (and their async twins) store the token's JSON as the password
    of (service, key) in the backend; a missing entry reads as None, deletes as nothing."""
    backend = plaintext_keyring(str(tmp_path / "keyring.cfg"))
    cache = keyring_cache(tmp_path, backend)
    assert isinstance(cache, TokenCache)
    stored = token("one", time.time())
    cache.set("k", stored)
    assert cache.get("k") == stored
    raw = backend.get_password(SERVICE, "k")
    assert raw is not None
    assert json.loads(raw) == stored.to_dict()
    cache.delete("k")
    assert cache.get("k") is None
    assert backend.get_password(SERVICE, "k") is None
    cache.delete("k")  # nothing to delete: no error

    async def twins() -> tuple[Token | None, Token | None]:
        await cache.aset("k", stored)
        async with cache.alock("k"):
            read = await cache.aget("k")
        await cache.adelete("k")
        return read, await cache.aget("k")

    assert asyncio.run(twins()) == (stored, None)


def test_a_late_write_never_replaces_a_token_issued_after_it(tmp_path: Path) -> None:
    """As in the token file: a token issued earlier than the stored one is not written."""
    cache = keyring_cache(tmp_path)
    now = time.time()
    cache.set("k", token("new", now))
    cache.set("k", token("old", now - 5))
    assert (stored := cache.get("k")) is not None
    assert stored.refresh_token == "refresh-new"
    cache.set("k", token("newer", now + 5))
    assert (stored := cache.get("k")) is not None
    assert stored.refresh_token == "refresh-newer"


def test_later_objects_sync_or_async_adopt_the_stored_login(
    emulator: OAuth2Emulator, tmp_path: Path
) -> None:
    """A login stored by one auth object serves new ones (the next run of a CLI, say),
    sync and async, each with a cache object of its own: one token call in all."""
    first = password_auth(emulator, cache=keyring_cache(tmp_path))
    with httpx.Client(auth=first) as client:
        assert client.get(emulator.api_url()).status_code == 200
    later = [password_auth(emulator, cache=keyring_cache(tmp_path)) for _ in range(3)]

    async def send_all() -> set[int]:
        async with httpx.AsyncClient() as client:
            sent = [client.get(emulator.api_url(), auth=later[i % 3]) for i in range(12)]
            return {response.status_code for response in await asyncio.gather(*sent)}

    assert asyncio.run(send_all()) == {200}
    assert emulator.token_calls.total() == 1


def test_the_process_wide_default_backend_serves(
    emulator: OAuth2Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without keyring=, the cache uses keyring's default (keyring.set_keyring), at each
    call: the token lands in that backend, and its repr names it."""
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)  # restored after the test
    cache = KeyringTokenCache(SERVICE, lock_path=tmp_path / "keyring.lock")
    keyring.set_keyring(plaintext_keyring(str(tmp_path / "default.cfg")))
    auth = password_auth(emulator, cache=cache)
    issued = auth.get_token()
    raw = keyring.get_password(SERVICE, key_for(emulator))
    assert raw is not None
    assert json.loads(raw)["access_token"] == issued.access_token
    assert "keyrings.alt.file.PlaintextKeyring" in repr(cache)
    assert password_auth(emulator, cache=cache).get_token() == issued
    assert emulator.token_calls.total() == 1


@pytest.mark.fleet
def test_processes_share_the_stored_login(emulator: OAuth2Emulator, tmp_path: Path) -> None:
    """Processes started after a login use the token in the keyring: no token call."""
    path = tmp_path / "keyring.cfg"
    cache = KeyringTokenCache(keyring=plaintext_keyring(str(path)), lock_path=f"{path}.lock")
    password_auth(emulator, cache=cache).get_token()
    emulator.reset_counters()
    results = run_fleet(f"keyring:{path}", emulator)
    assert results == [[200] * THREADS] * PROCESSES
    assert emulator.token_calls.total() == 0


@pytest.mark.fleet
def test_processes_renew_an_expired_login_once(tmp_path: Path) -> None:
    """Processes and their threads find the stored token expired: one refresh in all."""
    path = tmp_path / "keyring.cfg"
    cache = KeyringTokenCache(keyring=plaintext_keyring(str(path)), lock_path=f"{path}.lock")
    with OAuth2Emulator(token_delay=0.2) as slow:
        seed_expired(slow, cache)
        results = run_fleet(f"keyring:{path}", slow)
        assert results == [[200] * THREADS] * PROCESSES
        assert slow.token_calls == {"refresh_token": 1}


@pytest.mark.parametrize("entry", list(BAD_ENTRIES.values()), ids=list(BAD_ENTRIES))
def test_an_unreadable_entry_is_empty_and_overwritten(
    emulator: OAuth2Emulator, tmp_path: Path, authlog: pytest.LogCaptureFixture, entry: bytes
) -> None:
    """A keyring entry that is not a token (deep nesting, huge numbers, not JSON...) reads
    as None with one WARNING, and the renewal overwrites it."""
    backend = plaintext_keyring(str(tmp_path / "keyring.cfg"))
    key = key_for(emulator)
    backend.set_password(SERVICE, key, entry.decode("utf-8", "replace"))

    def stored() -> dict[str, Any]:
        return dict(json.loads(backend.get_password(SERVICE, key) or "null"))

    check_renewed_over_bad_entry(emulator, keyring_cache(tmp_path, backend), stored, authlog)


@pytest.mark.parametrize(
    ("backend", "says"),
    [
        (FailingKeyring(KeyringLocked("Failed to unlock")), "is locked: unlock it"),
        (
            FailingKeyring(InitError("Failed to create the collection: Prompt dismissed")),
            "failed to read the entry of service 'authplug-tests' (InitError: Failed to",
        ),
        (NoKeyring(), "no keyring backend is available"),
    ],
    ids=["locked", "prompt-dismissed", "none"],
)
def test_a_failing_backend_loses_no_request(
    emulator: OAuth2Emulator,
    tmp_path: Path,
    authlog: pytest.LogCaptureFixture,
    backend: Any,
    says: str,
) -> None:
    """A locked keyring, one that fails, or none at all, is a CacheError naming the
    backend (and what to do, or keyring's reason): logged once, and the auth object gets
    and renews its token without the cache."""
    cache = keyring_cache(tmp_path, backend)
    with pytest.raises(CacheError, match=re.escape(says)) as raised:
        cache.get("k")
    assert type(backend).__name__ in str(raised.value)
    auth = password_auth(emulator, cache=cache)
    with httpx.Client(auth=auth) as client:
        assert client.get(emulator.api_url()).status_code == 200
        emulator.revoke_all()
        assert client.get(emulator.api_url()).status_code == 200
    assert emulator.token_calls == {"password": 1, "refresh_token": 1}
    (warning,) = authplug_warnings(authlog)
    assert "token cache is unavailable" in warning.getMessage()
    assert says in warning.getMessage()


def test_a_too_large_entry_is_refused_with_a_clear_message(
    emulator: OAuth2Emulator, tmp_path: Path, authlog: pytest.LogCaptureFixture
) -> None:
    """A backend that refuses a secret past Windows Credential Manager's cap: CacheError
    saying the entry's size, the cap and what to do, without the token; smaller entries
    are stored."""
    cache = keyring_cache(tmp_path, _capped(tmp_path))
    large = Token(access_token="a" * 1500, refresh_token="r" * 10)
    with pytest.raises(CacheError) as raised:
        cache.set("k", large)
    message = str(raised.value)
    assert f"{WINDOWS_CAP} bytes" in message
    assert "FileTokenCache" in message
    assert "CappedKeyring" in message
    assert "a" * 20 not in message
    cache.set("k", token("small", None))
    assert cache.get("k") == token("small", None)
    # Through an auth object: the token is refused by the cache, the request goes on.
    auth = password_auth(emulator, cache=keyring_cache(tmp_path, _capped(tmp_path, cap=100)))
    with httpx.Client(auth=auth) as client:
        assert client.get(emulator.api_url()).status_code == 200
    (warning,) = authplug_warnings(authlog)
    assert "failed to write" in warning.getMessage()


def _capped(tmp_path: Path, cap: int = WINDOWS_CAP) -> CappedKeyring:
    return capped_keyring(str(tmp_path / "capped.cfg"), cap)


def test_no_token_in_repr_or_logs(
    emulator: OAuth2Emulator, tmp_path: Path, authlog: pytest.LogCaptureFixture
) -> None:
    """Through a login, a renewal, a late write and a revocation, no access or refresh
    token appears in the cache's repr, the log (DEBUG included) or its errors."""
    cache = keyring_cache(tmp_path)
    auth = password_auth(emulator, cache=cache, revocation_url=emulator.revocation_url)
    first = auth.get_token()
    emulator.revoke_all()
    with httpx.Client(auth=auth) as client:
        assert client.get(emulator.api_url()).status_code == 200
    second = auth.get_token()
    cache.set(key_for(emulator), dataclasses.replace(first, issued_at=0.0))  # late: kept out
    auth.revoke()
    assert cache.get(key_for(emulator)) is None  # the revoked login is gone from the keyring
    with pytest.raises(CacheError) as raised:
        keyring_cache(tmp_path, _capped(tmp_path, cap=10)).set("k", second)
    shown = "\n".join([repr(cache), str(raised.value), authlog.text])
    for secret in (first, second):
        for value in (secret.access_token, secret.refresh_token):
            assert value
            assert value not in shown


def test_the_missing_extra_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the keyring package, building the cache says how to install it."""
    monkeypatch.setitem(sys.modules, "keyring", None)  # import keyring fails
    with pytest.raises(ConfigurationError, match=r"pip install 'authplug\[keyring\]'"):
        KeyringTokenCache()


@pytest.mark.parametrize(
    "options",
    [{"service": ""}, {"keyring": "secret-service"}],
    ids=["empty-service", "not-a-backend"],
)
def test_wrong_arguments_are_configuration_errors(options: dict[str, Any]) -> None:
    """An empty service name or a keyring= that is not a backend is refused at once."""
    with pytest.raises(ConfigurationError, match=next(iter(options))):
        KeyringTokenCache(**options)


def test_the_default_lock_is_private_and_named_from_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default the lock file sits in $XDG_RUNTIME_DIR/authplug (else the user's cache
    folder), a folder created 0700, one file per service, never two services in one."""
    runtime = tmp_path / "run"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    backend = plaintext_keyring(str(tmp_path / "keyring.cfg"))
    cache = KeyringTokenCache("my/cli", keyring=backend)
    assert cache.lock_path.parent == runtime / "authplug"
    assert cache.lock_path.name.startswith("keyring-my_cli-")
    with cache.lock("k"):
        assert cache.lock_path.exists()
    assert stat.S_IMODE(cache.lock_path.parent.stat().st_mode) == 0o700
    assert KeyringTokenCache("my_cli", keyring=backend).lock_path != cache.lock_path
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if sys.platform.startswith("linux"):
        elsewhere = KeyringTokenCache("my/cli", keyring=backend).lock_path
        assert elsewhere.parent == tmp_path / "cache" / "authplug"


def test_an_uncreatable_lock_folder_is_a_cache_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runtime folder where the lock's folder cannot be made: CacheError, not a crash."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(blocker))
    cache = KeyringTokenCache(keyring=plaintext_keyring(str(tmp_path / "keyring.cfg")))
    with pytest.raises(CacheError, match="cannot create the folder"), cache.lock("k"):
        pass


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_takes_the_lock_with_locks_of_its_own(tmp_path: Path) -> None:
    """A child forked while a parent's thread holds the renewal lock does not inherit it
    held: once the parent lets go of the lock file, the child takes the lock and stores
    through the keyring, and the parent reads what it stored."""
    cache = keyring_cache(tmp_path, lock_timeout=5)
    inside, release = threading.Event(), threading.Event()

    def holder() -> None:
        with cache.lock("k"):
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    assert inside.wait(30)
    pid = _fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os._exit(_store_under_the_lock(cache))
    release.set()
    thread.join(30)
    status = wait_for_child(pid, 30, "the forked child never finished; killed it")
    assert os.waitstatus_to_exitcode(status) == 0
    assert cache.get("k") == token("child", None)


def _fork() -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        return os.fork()


def _store_under_the_lock(cache: KeyringTokenCache) -> int:  # pragma: no cover - the child's
    """The forked child's work: its exit status."""
    try:
        with cache.lock("k"):
            cache.set("k", token("child", None))
    except BaseException:
        return 2
    return 0
