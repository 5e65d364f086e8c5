"""The test command never tests nothing: tox's inline plugin for this project.

tox 4 loads this module from the project root, so ``python3 -m tox`` (README.rst's test
command, and CI's) runs with it and no wrapper. It does three things.

1. **Find every supported Python.** For each of 3.10-3.13 it takes, in order, the Python
   tox runs on, a working ``python3.X`` on PATH, then the newest ``3.X.*`` under pyenv
   (``$PYENV_ROOT`` or ``~/.pyenv``). pyenv's shims answer only for the selected
   version, so a shim that fails is passed over, not taken. Each one found is linked as
   ``python3.X`` into ``.tox/.pythons``, put first on PATH: virtualenv (plain tox) and uv
   (tox-uv) both search PATH, so both then find the same interpreters, and nobody has to
   link anything by hand.
2. **Make "first found wins" true under tox-uv too.** tox reads
   ``base_python = python3.13, python3`` as "3.13, else the Python tox runs on"; tox-uv
   takes the first value whether it exists or not. Where ``base_python`` lists several
   values, this plugin picks the first one found and gives tox that one alone.
3. **Skip a missing Python only when tests run elsewhere.** ``skip_missing_interpreters``
   is decided here, when tox first reads it during the run (tox.ini does not set it): a
   missing Python is skipped when at least one selected test environment (``runs_tests``,
   true for ``py3X`` by default) has its Python; when none has, nothing is skipped, so
   the environments fail ("no interpreter found") and the run fails instead of
   testing nothing. uv is told not to download a Python (``UV_PYTHON_DOWNLOADS=never``
   unless set): the Pythons tested are the machine's. After the run, a line says where
   the tests ran and which supported Pythons were not found, and where they were looked
   for.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tox.config.loader.memory import MemoryLoader
from tox.plugin import impl

if TYPE_CHECKING:
    from tox.config.sets import ConfigSet, EnvConfigSet
    from tox.session.state import State
    from tox.tox_env.api import ToxEnv

SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"
_VERSION = re.compile(r"^(?:python|py|cpython)?(3)\.?(\d+)$")
_ENV_VERSION = re.compile(r"^py3(\d+)$")
_RELEASE = re.compile(r"^3\.(\d+)\.(\d+)$")  # pyenv folders such as 3.13.0; no rc, no -dev


class _Run:
    """What this run found and did: filled at configuration, read at the end."""

    def __init__(self) -> None:
        self.found: dict[str, Path] = {}  # "3.11" -> interpreter
        self.where = ""  # where the missing ones were looked for, for the messages
        self.runnable: dict[str, tuple[bool, str | None]] = {}  # env -> (runs tests, version)
        self.tested: dict[str, str] = {}  # test env that ran its commands -> version
        self.skipped: list[str] = []  # test envs skipped: Python missing, tests ran elsewhere
        self.refused: list[str] = []  # test envs failed: Python missing, no tests elsewhere


RUN = _Run()


def _version_of(python: Path) -> str | None:
    """The ``3.X`` of an interpreter that starts and answers; None for a failing shim."""
    try:
        answer = subprocess.run(  # noqa: S603  (an interpreter we found, no shell)
            [str(python), "-c", "import sys; print(*sys.version_info[:2], sep='.')"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return answer.stdout.strip() if answer.returncode == 0 else None


def _pyenv_versions() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def _candidates(version: str) -> list[Path]:
    """Where Python ``version`` may be, most wanted first."""
    found: list[Path] = []
    if version == RUNNING:
        # the base interpreter, not a virtual environment's: a link to it must still work
        found.append(Path(getattr(sys, "_base_executable", "") or sys.executable))
    on_path = shutil.which(f"python{version}")
    if on_path:
        found.append(Path(on_path))
    minor = int(version.split(".")[1])
    releases = []
    versions = _pyenv_versions()
    if versions.is_dir():
        for folder in versions.iterdir():
            match = _RELEASE.match(folder.name)
            if match and int(match[1]) == minor:
                releases.append((int(match[2]), folder / "bin" / f"python{version}"))
    found.extend(path for _, path in sorted(releases, reverse=True))
    return found


def find_pythons() -> dict[str, Path]:
    """The first working interpreter of each supported version."""
    found: dict[str, Path] = {}
    for version in SUPPORTED:
        for candidate in _candidates(version):
            if candidate.exists() and _version_of(candidate) == version:
                found[version] = candidate
                break
    return found


def _link(pythons: dict[str, Path], folder: Path) -> None:
    """``folder/python3.X`` -> each interpreter found, and no other ``python3.X`` there.

    Each link is replaced in one step (a new link renamed over the old one), so that
    another tox run of this project reading the folder meanwhile never finds it empty.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for version, python in pythons.items():
        fresh = folder / f".python{version}.{os.getpid()}"
        fresh.unlink(missing_ok=True)
        fresh.symlink_to(python)
        fresh.replace(folder / f"python{version}")
    for old in folder.glob("python3.*"):
        if old.name.removeprefix("python") not in pythons:
            old.unlink(missing_ok=True)


@impl
def tox_add_core_config(core_conf: ConfigSet, state: State) -> None:
    """Find the supported Pythons and put them first on PATH, for tox and for uv."""
    if not RUN.where:  # once per process
        RUN.found = find_pythons()
        RUN.where = f"python3.X on PATH and under {_pyenv_versions()}"
        links = Path(core_conf["work_dir"]) / ".pythons"
        _link(RUN.found, links)
        # The process's own PATH: virtualenv's discovery and every `uv venv` read it.
        os.environ["PATH"] = f"{links}{os.pathsep}{os.environ.get('PATH', '')}"
        # uv would otherwise download a Python it does not find (slowly, or not at all
        # offline): the Pythons tested are the machine's, as the summary says. The
        # user's own setting wins.
        os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
    core_conf.loaders.insert(
        0, MemoryLoader(skip_missing_interpreters=_SkipOnlyIfTestedElsewhere(state))
    )


def _listed_base_pythons(env_conf: EnvConfigSet) -> list[str]:
    """``base_python`` as tox.ini writes it, read without settling tox's own value."""
    for loader in env_conf.loaders:
        for key in ("base_python", "basepython"):
            if key in loader.found_keys():
                raw = loader.load_raw(key, None, env_conf.env_name)
                if isinstance(raw, list):  # tox.toml gives a list, tox.ini a string
                    return [str(value) for value in raw]
                return [value.strip() for value in re.split(r"[,\n]", str(raw)) if value.strip()]
    return []


def _resolve(spec: str) -> str | None:
    """The supported version ``spec`` names, if that Python was found."""
    if spec in {"python", "python3"}:
        version = RUNNING
    else:
        match = _VERSION.match(spec)
        version = f"{match[1]}.{match[2]}" if match else ""
    return version if version in RUN.found else None


class _SkipOnlyIfTestedElsewhere:
    """``skip_missing_interpreters``, decided when tox first reads it.

    tox (and tox-uv, which reads the core setting) reads it while setting an environment
    up, once every selected environment is known: the right moment to ask whether any
    selected test environment has its Python. If one has, the others may be skipped; if
    none has, skipping would run no test at all, so nothing is skipped and the run fails.
    """

    def __init__(self, state: State) -> None:
        self._state = state

    def __bool__(self) -> bool:
        tests = [name for name in self._state.envs.iter() if RUN.runnable.get(name, (0, 0))[0]]
        missing = [name for name in tests if RUN.runnable[name][1] is None]
        if len(missing) < len(tests):
            RUN.skipped = missing
            return True
        RUN.refused = missing
        return False


@impl
def tox_add_env_config(env_conf: EnvConfigSet) -> None:
    """Note whether the environment runs tests and whether its Python was found; where
    ``base_python`` lists several values, keep the first one found."""
    env_conf.add_config(
        keys=["runs_tests"],
        of_type=bool,
        default=lambda _conf, name: bool(_ENV_VERSION.match(name or "")),
        desc="this environment runs the test suite: a run where none of these ran fails",
    )
    name = env_conf.env_name or ""
    listed = _listed_base_pythons(env_conf)
    chosen = next((spec for spec in listed if _resolve(spec)), None)
    if len(listed) > 1 and chosen is not None:
        env_conf.loaders.insert(0, MemoryLoader(base_python=[chosen]))
    if listed:
        version = _resolve(chosen) if chosen else None
    else:
        match = _ENV_VERSION.match(name)
        version = _resolve(f"3.{match[1]}") if match else RUNNING
    RUN.runnable[name] = (bool(env_conf["runs_tests"]), version)


@impl
def tox_after_run_commands(tox_env: ToxEnv) -> None:
    """Note which test environments ran their commands, and on which Python."""
    if tox_env.conf["runs_tests"]:
        RUN.tested[tox_env.name] = RUN.runnable.get(tox_env.name, (True, None))[1] or "?"


def _summary() -> None:
    """The last lines of a run: where the tests ran, what was skipped for a missing Python."""
    if not (RUN.tested or RUN.skipped or RUN.refused):
        return  # not a run (tox list, tox config), or no test environment selected
    missing = ", ".join(version for version in SUPPORTED if version not in RUN.found)
    not_found = f"Python {missing} not found (looked for {RUN.where})"
    if RUN.tested:
        tested = ", ".join(f"{name} on {version}" for name, version in sorted(RUN.tested.items()))
        print(f"authplug: the tests ran in {tested}", flush=True)
    if RUN.skipped:
        print(f"authplug: skipped {', '.join(sorted(RUN.skipped))}: {not_found}", flush=True)
    if RUN.refused:
        print(
            f"authplug: FAILED: no test environment could run ({', '.join(sorted(RUN.refused))}):"
            f" {not_found}. Install a missing one (pyenv install 3.13) or select an"
            " environment whose Python is here.",
            flush=True,
        )


atexit.register(_summary)
