"""``authplug login``, ``authplug token`` and ``authplug logout``, run as a person runs them
(subprocesses), against the emulator with a headless person reading what they print."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from authplug.testing import HeadlessPerson, OAuth2Emulator

CLIENT = "my-cli"


@pytest.fixture
def emulator() -> Iterator[OAuth2Emulator]:
    with OAuth2Emulator(client_id=CLIENT, client_secret=None, device_interval=0.2) as running:
        yield running


def _env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    }
    env["XDG_CACHE_HOME"] = str(home)  # the command's default cache, kept in the test's folder
    return env


def authplug(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authplug", *args],
        capture_output=True,
        text=True,
        env=_env(home),
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _login(args: list[str], home: Path, act: object) -> tuple[int, str]:
    """Run ``authplug login`` and play the person with what it prints on stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "authplug", "login", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(home),
    )
    assert process.stderr is not None
    said = []
    try:
        for line in process.stderr:
            said.append(line)
            if act(line):  # type: ignore[operator]
                break
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, "".join(said) + rest


def test_device_login_then_token_then_logout(emulator: OAuth2Emulator, tmp_path: Path) -> None:
    """login --device shows the code on stderr and waits for the person; token prints the
    access token of the kept login without asking; logout revokes and forgets it."""
    person = HeadlessPerson(emulator)
    common = ["--issuer", emulator.issuer, "--client-id", CLIENT, "--scope", "openid api"]

    def enter(line: str) -> bool:
        found = re.search(r"enter the code (\S+)", line)
        if found:
            person.enter_user_code(found.group(1))
        return found is not None

    status, said = _login([*common, "--device"], tmp_path, enter)
    assert status == 0, said
    assert "logged in" in said
    assert person.prompts == 1
    printed = authplug("token", *common, home=tmp_path)
    assert printed.returncode == 0, printed.stderr
    access = printed.stdout.strip()
    assert emulator.token_valid(access)
    assert access not in said  # login itself never prints a token
    assert emulator.token_calls == {"urn:ietf:params:oauth:grant-type:device_code": 1}
    out = authplug("logout", *common, home=tmp_path)
    assert (out.returncode, out.stderr.strip()) == (0, "authplug logout: logged out")
    assert emulator.revocations == [("refresh_token", True)]
    after = authplug("token", *common, home=tmp_path)
    assert after.returncode == 1
    assert "LoginRequiredError" in after.stderr
    assert "authplug login --issuer" in after.stderr


def test_code_login_prints_the_address_where_no_browser_opens(
    emulator: OAuth2Emulator, tmp_path: Path
) -> None:
    """Without a display (SSH, CI), the authorization URL goes to stderr; the person opens
    it; the loopback page answers; the login is kept in the --cache file."""
    person = HeadlessPerson(emulator)
    cache = tmp_path / "tokens"
    common = ["--issuer", emulator.issuer, "--client-id", CLIENT, "--cache", str(cache)]

    def approve(line: str) -> bool:
        if line.startswith("  http://"):
            person.approve(line.strip())
            return True
        return False

    status, said = _login(common, tmp_path, approve)
    assert status == 0, said
    assert "To log in, open this address in a browser" in said
    assert person.last_status == 200  # authplug's landing page
    assert cache.exists()
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    printed = authplug("token", *common, "--json", home=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert '"refresh_token"' in printed.stdout


def test_token_without_a_login_says_how_to_log_in(tmp_path: Path, emulator: OAuth2Emulator) -> None:
    out = authplug("token", "--issuer", emulator.issuer, "--client-id", CLIENT, home=tmp_path)
    assert out.returncode == 1
    assert "run: authplug login --issuer" in out.stderr
    assert emulator.token_calls.total() == 0


def test_the_login_commands_explain_themselves(tmp_path: Path) -> None:
    for command in ("login", "logout", "token"):
        out = authplug(command, "--help", home=tmp_path)
        assert out.returncode == 0
        assert "--client-id" in out.stdout
    assert "--device" in authplug("login", "--help", home=tmp_path).stdout
    wrong = authplug("login", "--client-id", "x", "--issuer", "ftp://x", home=tmp_path)
    assert wrong.returncode == 2
    assert "issuer=" in wrong.stderr
