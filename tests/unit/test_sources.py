"""Workload identity sources (``authplug.sources``), without a server: token files read
and read again on change (as kubelet rotates them), the environment's variables, and
the errors and reprs, which name paths and variables but never show a token."""

from __future__ import annotations

import base64
import json
import os
import traceback
from pathlib import Path

import pytest

from authplug import ConfigurationError
from authplug.sources import (
    AWSWebIdentityTokenFile,
    AzureFederatedTokenFile,
    GitHubActionsToken,
    KubernetesTokenFile,
)

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwb2QifQ.c2lnbmF0dXJlLW9uZQ"
NEXT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwb2QyIn0.c2lnbmF0dXJlLXR3bw"


class Kubelet:
    """A projected volume laid out as kubelet lays it out: ``token`` -> ``..data/token``,
    ``..data`` -> a timestamped directory, swapped atomically at each rotation."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        self.root.mkdir(exist_ok=True)

    def write(self, token: str) -> Path:
        self.generation += 1
        version = self.root / f"..2026_12_07_{self.generation:04d}"
        version.mkdir()
        (version / "token").write_text(token, encoding="utf-8")
        staged = self.root / "..data_tmp"
        staged.symlink_to(version.name)
        previous = (self.root / "..data").resolve() if (self.root / "..data").exists() else None
        os.replace(staged, self.root / "..data")
        if previous is not None:  # kubelet removes the old version after the swap
            (previous / "token").unlink()
            previous.rmdir()
        link = self.root / "token"
        if not link.is_symlink():
            link.symlink_to("..data/token")
        return link


def test_kubernetes_file_is_read_again_after_a_kubelet_rotation(tmp_path: Path) -> None:
    """A ``..data`` symlink swapped to a new directory is seen at the next call."""
    kubelet = Kubelet(tmp_path / "serviceaccount")
    source = KubernetesTokenFile(kubelet.write(TOKEN))
    assert source() == TOKEN
    assert source() == TOKEN
    kubelet.write(NEXT)
    assert source() == NEXT
    kubelet.write(TOKEN)  # same size and text as two versions ago: still a new version
    assert source() == TOKEN


def test_a_file_rewritten_in_place_is_read_again(tmp_path: Path) -> None:
    """A file replaced or rewritten in place (another inode, size or mtime) is read again."""
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    source = KubernetesTokenFile(str(path))
    assert source() == TOKEN  # the line break is not part of the token
    staged = tmp_path / "staged"
    staged.write_text(NEXT, encoding="utf-8")
    os.replace(staged, path)
    assert source() == NEXT
    path.write_text("x" + NEXT, encoding="utf-8")
    assert source() == "x" + NEXT


def test_an_unchanged_file_is_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between rotations a call costs a look at the file, not a read."""
    import authplug._inputs

    path = tmp_path / "token"
    path.write_text(TOKEN, encoding="utf-8")
    reads: list[str] = []
    real = authplug._inputs.read_small_file

    def counted(target: str | os.PathLike[str]) -> bytes | authplug._inputs.FileProblem:
        reads.append(os.fspath(target))
        return real(target)

    monkeypatch.setattr(authplug._inputs, "read_small_file", counted)
    source = KubernetesTokenFile(path)
    assert [source() for _ in range(5)] == [TOKEN] * 5
    assert len(reads) == 1


def test_the_default_path_is_the_pod_service_account_token() -> None:
    """Without ``path=``, the projected token's standard place is named."""
    if os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token"):
        pytest.skip("running in a pod")
    with pytest.raises(ConfigurationError) as caught:
        KubernetesTokenFile()
    assert "/var/run/secrets/kubernetes.io/serviceaccount/token" in str(caught.value)


def test_a_missing_file_is_named_at_construction(tmp_path: Path) -> None:
    """A path with no file behind it is a ConfigurationError naming the path."""
    with pytest.raises(ConfigurationError, match=r"path=.*nowhere.* is not a file"):
        KubernetesTokenFile(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("cls", "variable"),
    [
        (AzureFederatedTokenFile, "AZURE_FEDERATED_TOKEN_FILE"),
        (AWSWebIdentityTokenFile, "AWS_WEB_IDENTITY_TOKEN_FILE"),
    ],
)
def test_cloud_files_follow_their_variable(
    cls: type[AzureFederatedTokenFile | AWSWebIdentityTokenFile],
    variable: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each cloud's file is the one its variable names, read again on change; an unset
    variable, or one naming no file, is a ConfigurationError naming the variable."""
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ConfigurationError, match=f"{variable} is not set"):
        cls()
    monkeypatch.setenv(variable, str(tmp_path / "absent"))
    with pytest.raises(ConfigurationError, match=f"{variable}=.*absent.* is not a file"):
        cls()
    kubelet = Kubelet(tmp_path / "projected")
    monkeypatch.setenv(variable, str(kubelet.write(TOKEN)))
    source = cls()
    assert source() == TOKEN
    kubelet.write(NEXT)
    assert source() == NEXT
    assert repr(source) == f"{cls.__name__}({str(tmp_path / 'projected' / 'token')!r})"


def test_an_empty_or_vanished_file_fails_the_call_naming_the_file(tmp_path: Path) -> None:
    """An empty file, or one gone since construction, fails the call with a ValueError
    naming the path (the token call reports it), and a later good file is read."""
    path = tmp_path / "token"
    path.write_text(TOKEN, encoding="utf-8")
    source = KubernetesTokenFile(path)
    assert source() == TOKEN
    path.write_text("  \n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"token file .*token' is empty"):
        source()
    path.unlink()
    with pytest.raises(ValueError, match=r"token file .*token' cannot be read"):
        source()
    path.write_bytes(b"\xff\xfe" + TOKEN.encode())
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        source()
    path.write_text(NEXT, encoding="utf-8")
    assert source() == NEXT


def test_reprs_and_errors_never_show_the_token(tmp_path: Path) -> None:
    """The repr shows the path, the errors name it; neither they nor a traceback's
    locals show the token."""
    path = tmp_path / "token"
    path.write_text(TOKEN, encoding="utf-8")
    source = KubernetesTokenFile(path)
    source()
    assert repr(source) == f"KubernetesTokenFile({str(path)!r})"
    path.write_bytes(TOKEN.encode() + b"\xff")
    with pytest.raises(ValueError, match="not UTF-8") as caught:
        source()
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(source)
    frames = [frame for frame, _ in traceback.walk_tb(caught.value.__traceback__)]
    shown = [repr(value) for frame in frames for value in frame.f_locals.values()]
    assert not [text for text in shown if TOKEN in text]


def test_github_variables_are_named_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a job with ``id-token: write``, the missing variables are named."""
    monkeypatch.delenv("ACTIONS_ID_TOKEN_REQUEST_URL", raising=False)
    monkeypatch.delenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        GitHubActionsToken()
    message = str(caught.value)
    assert "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN" in message
    assert "id-token: write" in message
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", "https://pipelines.example/idtoken?x=1")
    with pytest.raises(ConfigurationError, match=r"^ACTIONS_ID_TOKEN_REQUEST_TOKEN not set"):
        GitHubActionsToken(audience="api://orders")


def test_github_audience_is_a_query_parameter_and_the_repr_hides_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The audience is added (encoded) to the URL's query; the repr shows the audience only."""
    request_token = "ghs_requesttoken1234567890"
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", "https://pipelines.example/idtoken?api=2")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request_token)
    source = GitHubActionsToken(audience="api://orders & more")
    assert source._request_url() == (
        "https://pipelines.example/idtoken?api=2&audience=api%3A%2F%2Forders%20%26%20more"
    )
    assert GitHubActionsToken()._request_url() == "https://pipelines.example/idtoken?api=2"
    assert repr(source) == "GitHubActionsToken(audience='api://orders & more')"
    assert request_token not in repr(source)
    with pytest.raises(ConfigurationError, match="audience="):
        GitHubActionsToken(audience="")


def _jwt(claims: object) -> str:
    def part(data: object) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


@pytest.mark.parametrize(
    ("claims", "expected"),
    [({"exp": 1800000000}, 1800000000.0), ({"exp": "soon"}, None), ({}, None), ([1], None)],
)
def test_github_token_expiry_is_read_unverified(claims: object, expected: float | None) -> None:
    """The ``exp`` of the token's payload decides when to ask again; none readable: never kept."""
    from authplug.sources import _expiry

    assert _expiry(_jwt(claims)) == expected
    assert _expiry("a.%%%.c") is None
