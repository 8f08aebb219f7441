"""The generated bash completion, exercised by a real bash."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import run_tcptune


def complete(line: str) -> list[str]:
    script = run_tcptune("completion", "bash").stdout
    program = (
        f"{script}\n"
        f'read -ra COMP_WORDS <<< "{line}"\n'
        '[[ "' + line + '" == *" " ]] && COMP_WORDS+=("")\n'
        "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
        "_tcptune\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


@pytest.fixture(autouse=True)
def need_bash() -> None:
    if not shutil.which("bash"):
        pytest.fail("bash is needed to test the completion script")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "tcptune ",
            [
                "--help",
                "--root",
                "--version",
                "apply",
                "backups",
                "check",
                "completion",
                "explain",
                "export",
                "profiles",
                "revert",
                "sockets",
            ],
        ),
        ("tcptune ap", ["apply"]),
        ("tcptune apply --dr", ["--drop-in", "--dry-run"]),
        ("tcptune profiles ", ["--help", "--root", "capture", "list", "show", "validate"]),
        ("tcptune profiles capture --f", ["--force"]),
        ("tcptune export x --format ", ["sysctl", "k8s", "docker", "ansible"]),
        ("tcptune --root /srv/x ch", ["check"]),
        ("tcptune sockets --top 3 --w", ["--watch"]),
    ],
)
def test_completes_commands_and_options(line: str, expected: list[str]) -> None:
    assert complete(line) == expected


def test_completes_shipped_profile_names() -> None:
    assert complete("tcptune check serv") == ["server-profile"]
    assert set(complete("tcptune apply ")) >= {
        "client-profile",
        "kernel-defaults",
        "proxy-profile",
        "server-profile",
    }
