"""The built wheel: it carries the shipped profiles, installs into a fresh virtualenv, and runs."""

from __future__ import annotations

import json
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest

from tcptune import __version__

SHIPPED = ("kernel-defaults", "server-profile", "client-profile", "proxy-profile")


@pytest.fixture(scope="module")
def wheel(built_wheel: Path) -> Path:
    return built_wheel


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory) -> Path:
    """A fresh virtualenv with only the wheel and its dependencies."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    done = subprocess.run(
        [str(env_dir / "bin/python"), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return env_dir / "bin/tcptune"


def test_wheel_contains_the_profiles(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for profile in SHIPPED:
        assert f"tcptune/_profiles/{profile}.toml" in names
    assert not any(name.startswith("tests/") for name in names)


def test_installed_wheel_runs(installed: Path, tmp_path: Path) -> None:
    version = subprocess.run(
        [str(installed), "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.stdout.strip() == f"tcptune {__version__}"
    listed = subprocess.run(
        [str(installed), "--root", str(tmp_path), "profiles", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)["profiles"]}
    assert set(SHIPPED) <= set(rows)
    assert all("site-packages/tcptune/_profiles/" in rows[name]["path"] for name in SHIPPED)
    # check reads this machine (nothing is written); 0 or 1 are both a working check.
    check = subprocess.run(
        [str(installed), "check", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert check.returncode in (0, 1), check.stderr
    assert json.loads(check.stdout)["kernel"]["release"]
