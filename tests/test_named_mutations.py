"""Mutations named by the mutation review (docs/mutation.md), each applied to a copy of the
package: the tests that state the behaviour must fail on it. A mutation tool makes most of these
itself; some (a comparison swapped for another function's) it does not, so they are written out
here, with the tests expected to catch each."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

NAMED = [
    (
        "sysctld.py:138 '==' instead of the value comparison",
        "tcptune/sysctld.py",
        "survives = answer.value is not None and same_value(answer.value, target)",
        "survives = answer.value is not None and answer.value == target",
        ["tests/test_sysctld_lines.py"],
    ),
    (
        "rules.py:424 tcp_tw_recycle = 0 at boot on 4.9 an error",
        "tcptune/rules.py",
        'if answer.value == "1" and answer.source:',
        'if answer.value == "1" or answer.source:',
        ["tests/test_rules_boundaries.py"],
    ),
    (
        "rules.py:132 removal version boundary",
        "tcptune/rules.py",
        "if at_least(ctx.version, spec.removed[:2]):",
        "if at_least(ctx.version, (4, 13)):",
        ["tests/test_rules_boundaries.py"],
    ),
    (
        "rules parity from 4.2",
        "tcptune/rules.py",
        "at_least(ctx.version, (4, 2)) is not False",
        "at_least(ctx.version, (4, 3)) is not False",
        ["tests/test_rules_boundaries.py"],
    ),
    (
        "rules.py:167 tw_reuse 2 without timestamps",
        "tcptune/rules.py",
        'if value in ("1", "2") and timestamps == "0":',
        'if value in ("1",) and timestamps == "0":',
        ["tests/test_rules_boundaries.py"],
    ),
    (
        "rules.py:230 narrow range < 10000",
        "tcptune/rules.py",
        "if usable < NARROW_PORT_RANGE:",
        "if usable <= NARROW_PORT_RANGE:",
        ["tests/test_rules_boundaries.py"],
    ),
    (
        "rules.py:252 start below 1024",
        "tcptune/rules.py",
        "if low < 1024:",
        "if low <= 1024:",
        ["tests/test_rules_boundaries.py"],
    ),
    (
        "rules.py:304 warning from 80% of the cap",
        "tcptune/rules.py",
        "elif cap is not None and used >= cap * TW_BUCKETS_NEAR_CAP:",
        "elif cap is not None and used > cap * TW_BUCKETS_NEAR_CAP:",
        ["tests/test_rules_boundaries.py", "tests/test_census_oracle.py"],
    ),
    (
        "rules.py:304 error at the cap",
        "tcptune/rules.py",
        "elif cap is not None and (cap == 0 or used >= cap):",
        "elif cap is not None and (cap == 0 or used > cap):",
        ["tests/test_rules_boundaries.py", "tests/test_census_oracle.py"],
    ),
    (
        "rules.py:373 buffer order",
        "tcptune/rules.py",
        "not numbers[0] <= numbers[1] <= numbers[2]",
        "not numbers[0] < numbers[1] <= numbers[2]",
        ["tests/test_rules_boundaries.py"],
    ),
    (
        "census: a port equal to low is ephemeral (bulk)",
        "tcptune/census.py",
        "self.low_gt = [_table(lambda v, b=b: v > b) for b in low_digits]",
        "self.low_gt = [_table(lambda v, b=b: v > b) for b in low_digits[:1]] + [_table(lambda v: v > 255)] * (len(low_digits) - 1)",
        ["tests/test_census_oracle.py"],
    ),
    (
        "census: a port equal to low is ephemeral (one by one)",
        "tcptune/census.py",
        "        if self.port_low <= port <= self.port_high:\n            if family == socket.AF_INET:",
        "        if self.port_low < port <= self.port_high:\n            if family == socket.AF_INET:",
        ["tests/test_census_oracle.py"],
    ),
    (
        "census: a port equal to high is ephemeral (one by one)",
        "tcptune/census.py",
        "        if self.port_low <= port <= self.port_high:\n            if family == socket.AF_INET:",
        "        if self.port_low <= port < self.port_high:\n            if family == socket.AF_INET:",
        ["tests/test_census_oracle.py"],
    ),
    (
        "census: a port equal to low is ephemeral (/proc row)",
        "tcptune/census.py",
        "if state != LISTEN and self.port_low <= port <= self.port_high:",
        "if state != LISTEN and self.port_low < port <= self.port_high:",
        ["tests/test_census_oracle.py", "tests/test_sockets.py"],
    ),
    (
        "census: CLOSE_WAIT warning from 10",
        "tcptune/census.py",
        "elif owner.count >= CLOSE_WAIT_WARNING:",
        "elif owner.count > CLOSE_WAIT_WARNING:",
        ["tests/test_census_oracle.py"],
    ),
    (
        "census: CLOSE_WAIT error from 1000",
        "tcptune/census.py",
        "if owner.count >= CLOSE_WAIT_ERROR:",
        "if owner.count > CLOSE_WAIT_ERROR:",
        ["tests/test_census_oracle.py"],
    ),
]


def copy_package(tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(
        ROOT / "tcptune", copy / "tcptune", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "docs", copy / "docs")
    (copy / "tests").mkdir()
    for test in ROOT.glob("tests/*.py"):
        shutil.copy(test, copy / "tests" / test.name)
    return copy


def run_tests(copy: Path, tests: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            "-m",
            "not netns",
            *tests,
        ],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_copy_passes_unmutated(tmp_path) -> None:
    copy = copy_package(tmp_path)
    found = subprocess.run(
        [sys.executable, "-c", "import tcptune; print(tcptune.__file__)"],
        cwd=copy,
        capture_output=True,
        text=True,
    )
    assert found.stdout.strip() == str(copy / "tcptune" / "__init__.py")  # the copy is imported
    tests = sorted({test for *_, named in NAMED for test in named})
    done = run_tests(copy, tests)
    assert done.returncode == 0, done.stdout[-2000:]


@pytest.mark.parametrize(
    ("name", "path", "old", "new", "tests"), NAMED, ids=[f"m{i}" for i in range(len(NAMED))]
)
def test_the_named_mutation_is_caught(tmp_path, name, path, old, new, tests) -> None:
    copy = copy_package(tmp_path)
    target = copy / path
    text = target.read_text()
    assert text.count(old) == 1, name
    target.write_text(text.replace(old, new))
    done = run_tests(copy, tests)
    assert done.returncode == 1, f"{name}: not caught\n{done.stdout[-2000:]}"
