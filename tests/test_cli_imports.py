"""What a run of `tcptune check --json` loads: the check command and nothing heavy it does not
use (no rich, no other command's module), and no argparse anywhere in the package."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import FakeMachine

from tcptune.cli.main import COMMANDS

PACKAGE = Path(__file__).resolve().parent.parent / "tcptune"

PROBE = """
import io, json, sys
from tcptune.cli.main import main
out = io.StringIO()
code = main(sys.argv[1:], stdout=out)
json.loads(out.getvalue())
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded_by(*argv: str) -> tuple[int, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "TCPTUNE_ROOT"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    return result["code"], result["modules"]


def test_check_json_loads_only_what_it_needs(modern: FakeMachine) -> None:
    code, modules = loaded_by("--root", str(modern.root), "check", "--json")
    assert code == 0
    assert not [m for m in modules if m == "rich" or m.startswith("rich.")]
    assert "argparse" not in modules
    loaded = [name for name in COMMANDS if f"tcptune.cli.{name}" in modules]
    assert loaded == ["check"]
    # check without a profile needs neither the profile loader nor drift, nor the completion
    assert not {"tcptune.profiles", "tcptune.drift", "tcptune.cli.completion"} & set(modules)


def test_no_argparse_in_the_package() -> None:
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert "argparse" not in names, path
