"""Fault injection: `tcptune apply` and `tcptune revert` (the installed console script) under
strace, with one fault in each run: every call of openat (for writing), write, pwrite64,
ftruncate, fchmod, chmod, fsync, rename, unlink and mkdir the command makes (fchmodat, fdatasync,
renameat, renameat2, unlinkat and mkdirat are watched too; tcptune makes none), in turn, fails
with EIO, or gets SIGINT (Ctrl-C) delivered as it is entered. The rename, unlink or write then
still happens, and the interrupt lands just after it.

Four scenarios (tests/inside_fault_injection.py): a first apply (text output, of whose lines,
a write each, the first and the last get the fault: they all come after every change), an apply
over an earlier apply's drop-in, a revert that removes the drop-in, and `revert --force` that puts
back an earlier drop-in over one edited by hand. On this machine that makes 266 cases: 133 calls,
each failed and interrupted.

After each case: the exit code is 0 or 3 for EIO (0 when the failing call was one tcptune can
do without: the pid written into the lock, a mkdir of a directory that exists), 130 for SIGINT;
no traceback; one `tcptune: error:` line for exit 3 (or, for a live value the kernel did not
take, the failed key on stdout), exactly `tcptune: interrupted` for 130; an apply that failed
after changing the drop-in names `tcptune revert ID` (--json: the backup id). Then `tcptune revert`,
repeated while a backup is left unreverted (with --force only over the edited drop-in), brings
/etc/sysctl.d byte for byte and every live value back to the state before the first apply, leaves
no temp file, and the edited drop-in is kept (0600) next to the backups.

Each scenario and fault runs in a mount and network namespace of its own (tmpfs over the sysctl.d
directories and /var/lib/tcptune), each case in a fresh network namespace; nothing of the host is
read or written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import TCPTUNE
from inside_fault_injection import SCENARIOS

pytestmark = pytest.mark.netns

SCRIPT = Path(__file__).resolve().parent / "inside_fault_injection.py"
GROUPS = [(scenario, mode) for scenario in SCENARIOS for mode in ("eio", "sigint")]


def run_group(group: tuple[str, str]) -> dict:
    scenario, mode = group
    done = subprocess.run(
        ["unshare", "-m", "-n", sys.executable, str(SCRIPT), str(TCPTUNE), scenario, mode],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{scenario} {mode}: {done.stderr}"
    return json.loads(done.stdout)


def test_a_fault_at_every_write_step_then_revert_restores_everything(netns) -> None:
    if not shutil.which("strace"):
        pytest.fail("strace is missing: `make system-deps` installs it")
    assert TCPTUNE.is_file(), f"{TCPTUNE} is missing: install the package (make dev)"
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        groups = list(pool.map(run_group, GROUPS))
    failures = [
        f"{g['scenario']} {g['mode']} {case['syscall']}#{case['n']}: {case['problems']} "
        f"(exit {case['code']}, stderr {case['err']!r}, stdout ...{case['out']!r})"
        for g in groups
        for case in g["cases"]
        if case["problems"]
    ]
    assert not failures, "\n".join(failures)
    # Every class of call was reached, in both modes; none of the scenarios was empty.
    # (By class: the writes below --root go through directory descriptors, so renameat, mkdirat,
    # unlinkat and fchmod where a path-based tool would call rename, mkdir, unlink and chmod.)
    classes = {
        "open": {"openat"},
        "write": {"write", "pwrite64"},
        "fsync": {"fsync", "fdatasync"},
        "rename": {"rename", "renameat", "renameat2"},
        "chmod": {"chmod", "fchmod", "fchmodat"},
        "mkdir": {"mkdir", "mkdirat"},
    }
    for g in groups:
        reached = {name for name, count in g["counts"].items() if count}
        missing = [kind for kind, names in classes.items() if not names & reached]
        assert not missing, (g["scenario"], g["mode"], missing, reached)
        assert len(g["cases"]) >= 20, g["scenario"]
    unlinks = {g["scenario"] for g in groups if g["counts"]["unlink"] or g["counts"]["unlinkat"]}
    assert unlinks == {"revert-remove"}
    assert sum(len(g["cases"]) for g in groups) >= 250
    # The case this guards above all: the drop-in already replaced when the failure came (Ctrl-C
    # just after the rename, EIO syncing the directory), and its backup still there to revert.
    for mode, code in (("sigint", 130), ("eio", 3)):
        kept = [
            c
            for g in groups
            if g["scenario"] == "apply" and g["mode"] == mode
            for c in g["cases"]
            if c["code"] == code and c["drop_in_changed"] and c["backups_left"] == 1
        ]
        assert kept, mode
    # The interrupts did land: every SIGINT case ended in 130.
    assert {c["code"] for g in groups if g["mode"] == "sigint" for c in g["cases"]} == {130}
