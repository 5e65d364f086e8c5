"""The ``authplug`` command, run as a user runs it (a subprocess), and in this process for
the plumbing of its many options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from authplug.testing import (
    LoopbackServer,
    MogoplusEmulator,
    Request,
    Response,
    SemansysEmulator,
    TelmaiEmulator,
)


def authplug(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authplug", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def test_demo_shows_the_whole_flow() -> None:
    """The demo runs offline for all five providers, with requests and httpx, secrets masked."""
    result = authplug("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for title in ("Semansys", "Mogoplus", "Telmai", "Dakota", "Login form"):
        assert f"== {title}" in out
    assert out.count("\n  with requests:\n") == 5
    assert out.count("\n  with httpx:\n") == 5
    assert out.count("raises CredentialsRejectedError") == 10
    assert out.count("the caller sees only the replay's answer: 200") == 10
    assert "Authorization: Bearer …" in out
    assert "→ 401" in out
    assert "client certificate presented" in out
    for secret in ("demo-password", "demo-secret", "mogoplus-secret", "not-the-right-one"):
        assert secret not in out
    # No full token either: every token the demo shows is shortened.
    assert "at-1-" not in out


def test_demo_of_one_provider() -> None:
    result = authplug("demo", "dakota")
    assert result.returncode == 0, result.stderr
    assert "== Dakota" in result.stdout
    assert "== Semansys" not in result.stdout


def _semansys_env(emulator: SemansysEmulator) -> dict[str, str]:
    """The environment that points ``authplug token semansys`` at ``emulator``."""
    return {
        "AUTHPLUG_SEMANSYS_CLIENT_ID": str(emulator.client_id),
        "AUTHPLUG_SEMANSYS_CLIENT_SECRET": str(emulator.client_secret),
        "AUTHPLUG_SEMANSYS_USERNAME": emulator.username,
        "AUTHPLUG_SEMANSYS_PASSWORD": emulator.password,
        "AUTHPLUG_SEMANSYS_TOKEN_URL": emulator.token_url,
    }


def _main(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    *args: str,
) -> tuple[int, str, str]:
    """``authplug ARGS`` in this process, with ``env`` set: for the plumbing of the options
    (the subprocess tests prove the command itself)."""
    from authplug.cli import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_token_from_environment() -> None:
    """``authplug token semansys`` prints the access token alone, for $(...) in a shell."""
    with SemansysEmulator() as emulator:
        env = _semansys_env(emulator)
        result = authplug("token", "semansys", env=env)
        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        assert "\n" not in token
        assert emulator.token_valid(token)
        rejected = authplug("token", "semansys", "--password", "wrong-password", env=env)
    assert rejected.returncode == 1
    assert rejected.stdout == ""
    assert "HTTP 403" in rejected.stderr
    assert "wrong-password" not in rejected.stderr


def test_token_with_resources_and_audience(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--resource`` (repeatable, or space-separated in the environment) and ``--audience``
    (in this process: the plumbing of the options)."""
    from urllib.parse import parse_qs

    with SemansysEmulator() as emulator:
        env = _semansys_env(emulator)
        flags = ("--resource", "https://a.example/", "--resource", "urn:b", "--audience", "x")
        by_flags = _main(monkeypatch, capsys, env, "token", "semansys", *flags)
        env["AUTHPLUG_SEMANSYS_RESOURCE"] = "https://a.example/ urn:b"
        env["AUTHPLUG_SEMANSYS_AUDIENCE"] = "x"
        by_env = _main(monkeypatch, capsys, env, "token", "semansys")
        bad = _main(monkeypatch, capsys, env, "token", "semansys", "--resource", "not a uri")
        # The emulator doubles as the HTTP proxy; the token URL's port has no listener.
        env["AUTHPLUG_SEMANSYS_TOKEN_URL"] = "http://localhost:9/connect/token"
        proxied = _main(
            monkeypatch, capsys, env, "token", "semansys", "--proxy", emulator.server_url
        )
        sent = [parse_qs(request.body.decode()) for request in emulator.token_requests]
    assert (by_flags[0], by_env[0]) == (0, 0), by_flags[2] + by_env[2]
    for params in sent:
        assert params["resource"] == ["https://a.example/", "urn:b"]
        assert params["audience"] == ["x"]
    assert len(sent) == 3
    assert proxied[0] == 0, proxied[2]
    assert bad[0] == 2
    assert "resource indicator is an absolute URI" in bad[2]


def test_token_json_with_options() -> None:
    """Options on the command line, the whole token as JSON; a certificate pair for mTLS."""
    with MogoplusEmulator() as emulator:
        result = authplug(
            "token",
            "mogoplus",
            "--json",
            "--token-url",
            emulator.token_url,
            "--client-id",
            str(emulator.client_id),
            "--client-secret",
            str(emulator.client_secret),
            "--cert",
            ",".join(emulator.client_cert),
            "--verify",
            emulator.ca_file,
        )
        assert result.returncode == 0, result.stderr
        token = json.loads(result.stdout)
        assert token["token_type"] == "Bearer"
        assert emulator.token_valid(token["access_token"])


def test_token_boolean_and_base_url_options() -> None:
    with TelmaiEmulator() as emulator:
        result = authplug(
            "token",
            "telmai",
            "--auth-endpoint",
            emulator.base_url,
            "--client-id",
            str(emulator.client_id),
            "--username",
            emulator.username,
            "--transaction-ids",
            "yes",
            env={"AUTHPLUG_TELMAI_PASSWORD": emulator.password},
        )
        assert result.returncode == 0, result.stderr
        assert emulator.transaction_ids[0] is not None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("token", "semansys"), "missing --client-id (or AUTHPLUG_SEMANSYS_CLIENT_ID)"),
        (
            (
                "token",
                "dakota",
                "--username",
                "u",
                "--password",
                "p",
                "--base-url",
                "http://x.example",
            ),
            "plain http",
        ),
        (("token", "nosuch"), "invalid choice"),
    ],
)
def test_token_usage_errors(args: tuple[str, ...], words: str) -> None:
    """Errors go to stderr with a non-zero status."""
    result = authplug(*args)
    assert result.returncode == 2
    assert words in result.stderr
    assert result.stdout == ""


def test_main_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    """The same entry point called in-process (so coverage sees the demo and the CLI)."""
    from authplug.cli import main

    assert main(["demo", "telmai", "loginform"]) == 0
    out = capsys.readouterr().out
    assert "== Telmai" in out
    assert "== Login form" in out
    with SemansysEmulator() as emulator:
        kwargs = emulator.auth_kwargs()
        argv = ["token", "semansys", "--json", "--timeout", "5"]
        for name in ("client_id", "client_secret", "username", "password", "token_url"):
            argv += ["--" + name.replace("_", "-"), str(kwargs[name])]
        assert main(argv) == 0
        assert emulator.token_valid(json.loads(capsys.readouterr().out)["access_token"])
        assert main([*argv[:2], "--client-id", "x"]) == 2
        assert "missing --username" in capsys.readouterr().err
        no_secret = [a for a in argv if a not in ("--client-secret", kwargs["client_secret"])]
        assert main(no_secret) == 2
        assert "client_secret= is required" in capsys.readouterr().err
        assert main([*argv, "--password", "wrong-password"]) == 1
        assert "CredentialsRejectedError" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["token", "telmai", "--transaction-ids", "maybe", "--help"])


def test_token_with_a_key_and_an_issuer(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--issuer`` in place of the token URL, ``--private-key`` (a JWK file) and
    ``--key-id``; the emulator verifies the assertion with the client's public key."""
    jwk = pytest.importorskip("joserfc.jwk")
    key = jwk.ECKey.generate_key("P-256")
    path = tmp_path / "client.jwk"
    path.write_text(json.dumps(key.as_dict(private=True)))
    with SemansysEmulator(client_secret=None) as emulator:
        emulator.client_key = key.as_dict(private=False)
        env = _semansys_env(emulator)
        del env["AUTHPLUG_SEMANSYS_CLIENT_SECRET"], env["AUTHPLUG_SEMANSYS_TOKEN_URL"]
        env["AUTHPLUG_SEMANSYS_ISSUER"] = emulator.issuer
        args = ("token", "semansys", "--private-key", str(path), "--key-id", "k1")
        code, out, err = _main(monkeypatch, capsys, env, *args)
        assert code == 0, err
        assert out.strip().startswith("at-")
        (request,) = emulator.token_requests
        assert "client_assertion" in request.form()
        assert emulator.metadata_calls == 1

        # The same key, but the server knows another one: refused, exit status 1.
        emulator.client_key = jwk.ECKey.generate_key("P-256").as_dict(private=False)
        code, _, err = _main(monkeypatch, capsys, env, *args)
        assert code == 1
        assert "CredentialsRejectedError" in err
        assert key.as_dict(private=True)["d"] not in err


def test_token_with_a_client_assertion_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    jwt = pytest.importorskip("joserfc.jwt")
    jwk = pytest.importorskip("joserfc.jwk")

    key = jwk.RSAKey.generate_key(2048)
    with SemansysEmulator(client_secret=None) as emulator:
        emulator.client_key = key.as_dict(private=False)
        now = int(time.time())
        claims = {"iss": emulator.client_id, "sub": emulator.client_id, "jti": "j1"}
        claims.update({"aud": emulator.token_url, "iat": now, "exp": now + 60})
        path = tmp_path / "assertion"
        path.write_text(jwt.encode({"alg": "RS256"}, claims, key))
        env = _semansys_env(emulator)
        del env["AUTHPLUG_SEMANSYS_CLIENT_SECRET"]
        env["AUTHPLUG_SEMANSYS_CLIENT_ASSERTION"] = str(path)
        code, _, err = _main(monkeypatch, capsys, env, "token", "semansys")
        assert code == 0, err
        code, _, err = _main(monkeypatch, capsys, env, "token", "semansys")
        assert code == 1  # the same assertion twice: its jti is refused
        bad = _main(monkeypatch, capsys, env, "token", "semansys", "--client-auth", "none")
        assert bad[0] == 2
        assert "leave client_auth= unset" in bad[2]


def test_token_with_tls_client_auth(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with MogoplusEmulator(tls_client_auth=True) as emulator:
        args = ("token", "mogoplus", "--token-url", emulator.token_url)
        args += ("--client-id", str(emulator.client_id), "--client-auth", "tls_client_auth")
        args += ("--cert", ",".join(emulator.client_cert), "--verify", emulator.ca_file)
        code, _, err = _main(monkeypatch, capsys, {}, *args)
        assert code == 0, err
        assert emulator.token_requests[0].form() == {"client_id": "mogoplus-client"}
        no_cert = [a for a in args if a not in ("--cert", ",".join(emulator.client_cert))]
        code, _, err = _main(monkeypatch, capsys, {}, *no_cert)
        assert code == 2
        assert "missing --cert" in err


DEEP = 100_000


def _authplug(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authplug", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(200, "TokenResponseError"), (400, "CredentialsRejectedError")],
)
def test_cli_reports_a_nested_answer_without_traceback(status: int, error_class: str) -> None:
    """``authplug token`` against an endpoint answering deeply nested JSON.

    Without the fix the RecursionError escaped the token call and the command died
    with a Python traceback; now it prints the package's error on one line and exits 1.
    """
    calls: list[str] = []

    def app(request: Request) -> Response:
        calls.append(request.path)
        return Response(status, b"[" * DEEP, {"Content-Type": "application/json"})

    with LoopbackServer(app) as server:
        result = _authplug(
            "token",
            "semansys",
            "--token-url",
            server.url + "/connect/token",
            "--client-id",
            "cli-client",
            "--client-secret",
            "cli-secret",
            "--username",
            "cli-user",
            "--password",
            "cli-password",
            "--timeout",
            "5",
        )
    assert calls == ["/connect/token"]
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "RecursionError" not in result.stderr
    assert result.stderr.startswith(f"authplug token semansys: {error_class}: semansys: HTTP ")
    assert result.stderr.count("\n") == 1
    for secret in ("cli-secret", "cli-password"):
        assert secret not in result.stderr
