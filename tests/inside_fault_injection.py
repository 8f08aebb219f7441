"""Run inside `unshare -m -n` by tests/test_fault_injection.py: one scenario of apply or revert,
run again and again under strace with one fault injected each time, every write-like system call
in turn; after each, the recovery (`tcptune revert` while a backup is left unreverted) must bring
/etc/sysctl.d and the live values back to the state before the first apply. Prints one JSON
document.

The sysctl.d directories, /etc/sysctl.conf and /var/lib/tcptune are tmpfs in this mount namespace
(inside_namespace.isolate); each case gets a network namespace of its own, so it starts from the
kernel's defaults and writes nothing the host sees.

Usage: python inside_fault_injection.py TCPTUNE SCENARIO MODE
  TCPTUNE   the installed console script
  SCENARIO  a key of SCENARIOS
  MODE      eio (the call fails with EIO) or sigint (SIGINT is delivered as the call is entered)
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from inside_namespace import isolate

SYSCTL_D = Path("/etc/sysctl.d")
STATE = Path("/var/lib/tcptune")
BACKUPS = STATE / "backups"
DROP_IN = SYSCTL_D / "99-tcptune.conf"
EDIT = b"# an administrator's note, added after the apply\nnet.ipv4.tcp_fin_timeout = 33\n"
CLONE_NEWNET = 0x40000000

# The system calls by which tcptune changes a file, a directory or a live value. A fault goes into
# each call of these that the scenario's command makes (openat: only opens for writing).
SYSCALLS = [
    "openat",
    "write",
    "pwrite64",
    "ftruncate",
    "fchmod",
    "chmod",
    "fchmodat",
    "fsync",
    "fdatasync",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "mkdir",
    "mkdirat",
]
WRITE_OPEN = re.compile(r"O_WRONLY|O_RDWR|O_CREAT")

# name: (commands that build the state before the injected run, the injected command).
# `edit` appends a line to the drop-in, as an administrator would.
SCENARIOS: dict[str, tuple[list[list[str]], list[str]]] = {
    # A first apply; the command's text output is a write per line, each one a case.
    "apply": ([], ["apply", "server-profile"]),
    # An apply over the drop-in of an earlier one.
    "apply-over": ([["apply", "client-profile"]], ["apply", "server-profile", "--json"]),
    # A revert that removes the drop-in.
    "revert-remove": ([["apply", "server-profile"]], ["revert", "--json"]),
    # A forced revert that puts back an earlier drop-in over an edited one: the edit must be
    # kept, and the earlier drop-in come back.
    "revert-force": (
        [["apply", "client-profile"], ["apply", "server-profile"], ["edit"]],
        ["revert", "--force", "--json"],
    ),
}

TCPTUNE = ""
ENV = {k: v for k, v in os.environ.items() if k != "TCPTUNE_ROOT"}
ENV["PYTHONDONTWRITEBYTECODE"] = "1"  # no .pyc written: the calls counted are tcptune's own


def new_network_namespace() -> None:
    """A fresh network namespace for this process and its children: the kernel's defaults."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")


def run(argv: list[str], strace: list[str] | None = None) -> dict:
    done = subprocess.run(
        [*(strace or []), TCPTUNE, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        cwd="/",
    )
    return {"argv": argv, "code": done.returncode, "out": done.stdout, "err": done.stderr}


def step(argv: list[str]) -> dict:
    if argv == ["edit"]:
        with DROP_IN.open("ab") as handle:
            handle.write(EDIT)
        return {"argv": argv, "code": 0, "out": "", "err": ""}
    return run(argv)


# --- state: files below /etc/sysctl.d and /var/lib/tcptune, and the live values ---------------


def files(top: Path) -> dict[str, tuple[str, int] | int]:
    """Every entry below `top`: a file as (bytes as latin-1 text, mode), a directory as its
    mode (the JSON-able form, so a difference shows in the report)."""
    found: dict[str, tuple[str, int] | int] = {}
    for path in sorted(top.rglob("*")):
        info = path.lstat()
        mode = info.st_mode & 0o7777
        if path.is_dir() and not path.is_symlink():
            found[str(path)] = mode
        else:
            found[str(path)] = (path.read_bytes().decode("latin-1"), mode)
    return found


def live(keys: list[str]) -> dict[str, str | None]:
    values = {}
    for key in keys:
        try:
            text = Path("/proc/sys", *key.split(".")).read_text()
        except OSError:
            values[key] = None
            continue
        values[key] = " ".join(text.split())
    return values


def clear(top: Path) -> None:
    for entry in list(top.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def restore(saved: dict[str, tuple[str, int] | int], values: dict[str, str | None]) -> None:
    """Put back a state saved by `files` and `live` (in a fresh network namespace)."""
    clear(SYSCTL_D)
    clear(STATE)
    for name, entry in saved.items():
        path = Path(name)
        if isinstance(entry, int):
            path.mkdir()
            os.chmod(path, entry)
        else:
            data, mode = entry
            if path.parent == BACKUPS and path.suffix == ".json":
                data = rehome(data)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            os.write(fd, data.encode("latin-1"))
            os.fchmod(fd, mode)
            os.close(fd)
    for key, value in values.items():
        if value is not None:
            Path("/proc/sys", *key.split(".")).write_text(value + "\n")


def rehome(text: str) -> str:
    """A backup the setup made, as if made in the case's own network namespace: its record of
    the namespace is dropped (as in backups from before namespaces were recorded), since the
    live values it restores are put back in this one."""
    backup = json.loads(text)
    backup.pop("netns", None)
    return json.dumps(backup, indent=2) + "\n"


def unreverted() -> list[str]:
    left = []
    for path in sorted(BACKUPS.glob("*.json")) if BACKUPS.is_dir() else []:
        if not json.loads(path.read_bytes()).get("reverted"):
            left.append(path.stem)
    return left


def unreverted_before(prepared: tuple[dict, dict]) -> list[str]:
    """The unreverted backups of the state a case starts from."""
    return [
        name
        for name, entry in prepared[0].items()
        if name.endswith(".json")
        and not isinstance(entry, int)
        and not json.loads(entry[0].encode("latin-1")).get("reverted")
    ]


# --- one case ----------------------------------------------------------------------------------

EXIT_CODES = {"eio": {0, 3}, "sigint": {130}}


def check_run(result: dict, mode: str) -> list[str]:
    """The injected run ended as documented: an exit code of README's table for the fault, no
    traceback, at most one line on stderr and that line tcptune's own."""
    problems = []
    if result["code"] not in EXIT_CODES[mode]:
        problems.append(f"exit {result['code']}, expected one of {sorted(EXIT_CODES[mode])}")
    err = result["err"]
    if "Traceback" in err:
        problems.append("a traceback")
    lines = err.splitlines()
    if result["code"] == 0 and lines:
        problems.append("exit 0 with a message")
    # Exit 3 is one error line, or (a live value the kernel did not take) no line and the
    # failed key in the report on stdout.
    reported = not lines and re.search(r'^  failed |"outcome": "failed"', result["out"], re.M)
    one_line = len(lines) == 1 and lines[0].startswith("tcptune: error: ")
    if result["code"] == 3 and not (one_line or reported):
        problems.append("exit 3 without one 'tcptune: error:' line or a failed key on stdout")
    if result["code"] == 130 and lines != ["tcptune: interrupted"]:
        problems.append("exit 130 without exactly the line 'tcptune: interrupted'")
    return problems


def recover(scenario: str) -> tuple[list[dict], list[str]]:
    """`tcptune revert` while a backup is left unreverted (at most 6 times); a revert refused
    over a changed drop-in is repeated with --force only in the scenario that edited it."""
    runs, problems = [], []
    for _ in range(6):
        if not unreverted():
            return runs, problems
        done = run(["revert", "--json"])
        runs.append(done)
        if done["code"] == 2 and "changed" in done["err"] and scenario == "revert-force":
            done = run(["revert", "--force", "--json"])
            runs.append(done)
        if done["code"] != 0:
            problems.append(f"recovery {done['argv']} exit {done['code']}: {done['err'].strip()}")
            return runs, problems
    if unreverted():
        problems.append(f"backups still unreverted after 6 reverts: {unreverted()}")
    return runs, problems


def run_case(
    scenario: str,
    mode: str,
    syscall: str,
    n: int,
    prepared: tuple[dict, dict],
    initial: tuple[dict, dict],
    keys: list[str],
) -> dict:
    new_network_namespace()
    restore(*prepared)
    fault = "error=EIO" if mode == "eio" else "signal=SIGINT"
    strace = ["strace", "-f", "-qq", "-o", "/dev/null"]
    if mode == "eio":  # stops at the traced calls alone: faster (with strace 6.1 here, an
        strace.append("--seccomp-bpf")  # injected signal did not arrive with it)
    strace += ["-e", f"trace={syscall}", "-e", f"inject={syscall}:{fault}:when={n}"]
    injected = run(SCENARIOS[scenario][1], strace)
    problems = check_run(injected, mode)
    changed = files(SYSCTL_D) != {k: v for k, v in prepared[0].items() if k.startswith("/etc/")}
    left = unreverted()
    if scenario.startswith("apply") and changed and len(left) <= len(unreverted_before(prepared)):
        problems.append("the apply changed the drop-in and left no backup to revert it")
    # (--json names the backup by its id; a report that could not be written to stdout cannot
    # name it, but the apply itself is done.)
    told = re.search(
        r'tcptune revert |"backup_id": "\d|standard output', injected["out"] + injected["err"]
    )
    if scenario.startswith("apply") and mode == "eio" and injected["code"] and changed and not told:
        problems.append("a failed apply changed the drop-in and did not name `tcptune revert`")
    recovery, failed = recover(scenario)
    problems += failed
    if files(SYSCTL_D) != initial[0]:
        problems.append(f"/etc/sysctl.d is not as before the first apply: {files(SYSCTL_D)}")
    if live(keys) != initial[1]:
        changed = {k: v for k, v in live(keys).items() if v != initial[1][k]}
        problems.append(f"live values not as before the first apply: {changed}")
    leftovers = [p.name for p in STATE.rglob(".*.tmp")]
    if leftovers:
        problems.append(f"temp files left: {leftovers}")
    if scenario == "revert-force":
        kept = [p.read_bytes() for p in BACKUPS.glob("*.edited-*.conf")]
        if not any(data.endswith(EDIT) for data in kept):
            problems.append("the edited drop-in was not kept next to the backups")
        if any(p.stat().st_mode & 0o777 != 0o600 for p in BACKUPS.glob("*.edited-*.conf")):
            problems.append("a kept copy of the edited drop-in is not 0600")
    return {
        "syscall": syscall,
        "n": n,
        "code": injected["code"],
        "err": injected["err"],
        "out": injected["out"][-300:] if problems else "",
        "recovery": [r["code"] for r in recovery],
        "drop_in_changed": changed,
        "backups_left": len(left),
        "problems": problems,
    }


def count_calls(argv: list[str]) -> dict[str, list[int]]:
    """The calls of SYSCALLS the command makes, by name: the numbers (1, 2, ...) of those to
    inject a fault into, as strace counts them (per call name and per process). Every one, but
    for openat only those that open for writing, and of the writes to stdout the first and the
    last."""
    trace = Path("/run/tcptune-test/count.trace")
    strace = ["strace", "-f", "-qq", "-o", str(trace)]
    strace += ["-e", "trace=" + ",".join(SYSCALLS)]
    done = run(argv, strace)
    assert done["code"] == 0, done
    seen: dict[str, int] = {}
    output: list[int] = []
    chosen: dict[str, list[int]] = {name: [] for name in SYSCALLS}
    for line in trace.read_text().splitlines():
        match = re.match(r"\d+ +(\w+)\((.*)", line)
        if not match or match[1] not in chosen:
            continue
        name = match[1]
        seen[name] = seen.get(name, 0) + 1
        if name == "openat" and not WRITE_OPEN.search(match[2]):
            continue
        if name == "write" and match[2].startswith("1, "):
            output.append(seen[name])
            continue
        chosen[name].append(seen[name])
    # The report on stdout comes after every change, a write per line: its first and last.
    chosen["write"] += sorted({output[0], output[-1]}) if output else []
    return chosen


def main() -> None:
    global TCPTUNE
    TCPTUNE, scenario, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    started = time.monotonic()
    isolate()
    setup, command = SCENARIOS[scenario]
    shown = [
        run(["profiles", "show", f"{name}-profile", "--json"]) for name in ("server", "client")
    ]
    keys = sorted({k for s in shown for k in json.loads(s["out"])["sysctl"]})
    # The state before the first apply: kernel defaults, nothing in /etc/sysctl.d.
    new_network_namespace()
    clear(SYSCTL_D)
    clear(STATE)
    initial = (files(SYSCTL_D), live(keys))
    for argv in setup:
        done = step(argv)
        assert done["code"] == 0, done
    # The state the injected command starts from (the lock file aside: it is made on demand).
    # `files` lists a directory before what it holds, so `restore` can replay it in order.
    saved = {**files(SYSCTL_D), **files(STATE)}
    prepared = ({k: v for k, v in saved.items() if k != str(STATE / "lock")}, live(keys))
    chosen = count_calls(command)
    restore(*prepared)
    cases = []
    for syscall, numbers in chosen.items():
        for n in numbers:
            cases.append(run_case(scenario, mode, syscall, n, prepared, initial, keys))
    print(
        json.dumps(
            {
                "scenario": scenario,
                "mode": mode,
                "counts": {k: len(v) for k, v in chosen.items()},
                "cases": cases,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
