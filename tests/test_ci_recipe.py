"""docs/ci.md's commands, run as an unprivileged user with a read-only /proc/sys, in a private
mount and network namespace, give the outcomes the document promises."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import run_in_namespace

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve().parent / "inside_namespace.py"


def recipe_commands() -> list[str]:
    text = (ROOT / "docs/ci.md").read_text()
    return re.findall(r"run: (tcptune .+)", text)


def test_the_recipe_names_the_two_commands() -> None:
    assert recipe_commands() == [
        "tcptune check server-profile --json > tcptune-check.json",
        "tcptune apply server-profile --dry-run",
    ]


def test_recipe_as_unprivileged_user_with_read_only_proc_sys(netns) -> None:
    commands = [c.split(" > ")[0] for c in recipe_commands()]
    result = run_in_namespace(["-n", "-m"], [str(SCRIPT), "ci-recipe", json.dumps(commands)])
    check, dry_run = result["runs"]
    assert check["uid"] == 65534 and check["proc_sys_read_only"] is True
    # A fresh namespace has kernel defaults: server-profile differs, so check reports drift.
    assert check["code"] == 1, check["err"]
    doc = json.loads(check["out"])
    assert doc["in_sync"] is False
    drifted = {s["key"] for s in doc["settings"] if s["status"] == "drift"}
    assert "net.ipv4.tcp_keepalive_time" in drifted
    assert dry_run["code"] == 0, dry_run["err"]
    assert "dry run: nothing is written" in dry_run["out"]
    assert "Traceback" not in check["err"] + dry_run["err"]
