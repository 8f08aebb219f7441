"""Crash safety (SIGKILL at each step of an apply, then revert) and races (two applies at once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import FakeMachine, modern_machine, run_cli
from test_apply import DROP_IN, snapshot

from tcptune import profiles
from tcptune.system import System
from tcptune.transaction import list_backups, load_backup

# Runs tcptune apply in a child process that SIGKILLs itself at a chosen point: the same as an
# operator's kill -9 (or a power cut for everything but the page cache) at that instant.
KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from tcptune import transaction
    point, root = sys.argv[1], sys.argv[2]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "after-backup":
        real_save = transaction.save_backup
        def save_backup(*args, **kwargs):
            backup_id = real_save(*args, **kwargs)
            die()
        transaction.save_backup = save_backup
    elif point == "during-drop-in-write":
        real_replace = os.replace
        def replace(src, dst, *args, **kwargs):
            if str(dst).endswith("99-tcptune.conf"):
                die()  # the new content is in the temp file, not yet renamed over the drop-in
            return real_replace(src, dst, *args, **kwargs)
        os.replace = replace
    elif point == "after-drop-in":
        real_write = transaction.atomic_write
        def atomic_write(path, *args, **kwargs):
            real_write(path, *args, **kwargs)
            if path.name == "99-tcptune.conf":
                die()
        transaction.atomic_write = atomic_write
    elif point.startswith("after-key-"):
        wanted, seen = int(point.rsplit("-", 1)[1]), []
        real_runtime = transaction.write_runtime
        def write_runtime(*args, **kwargs):
            result = real_runtime(*args, **kwargs)
            seen.append(result)
            if len(seen) == wanted:
                die()
            return result
        transaction.write_runtime = write_runtime
    from tcptune.cli.main import main
    sys.exit(main(["--root", root, "apply", "server-profile"]))
    """
)

SERVER_CHANGES = 6  # keys server-profile changes on the modern fake machine
POINTS = ["after-backup", "during-drop-in-write", "after-drop-in"] + [
    f"after-key-{n}" for n in range(1, SERVER_CHANGES)
]


def kill_apply_at(root: Path, point: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", KILLER, point, str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


@pytest.fixture
def machine(modern: FakeMachine) -> FakeMachine:
    (modern.root / "etc/sysctl.d").mkdir(parents=True)
    return modern


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_each_step_then_revert_restores_everything(
    machine: FakeMachine, point: str
) -> None:
    before = snapshot(machine.root)
    done = kill_apply_at(machine.root, point)
    assert done.returncode == -signal.SIGKILL, done.stderr
    drop_in = machine.root / DROP_IN
    # Never a partial drop-in: either absent (as before) or complete.
    if drop_in.exists():
        text = drop_in.read_text()
        assert text.startswith("# Managed by tcptune") and text.endswith(
            "net.ipv4.tcp_slow_start_after_idle = 0\n"
        )
    if point == "during-drop-in-write":
        assert not drop_in.exists()
        (leftover,) = drop_in.parent.glob(".99-tcptune.conf.tcptune-*.tmp")
        assert not leftover.name.endswith(".conf")  # no loader reads it
    reverted = run_cli("--root", str(machine.root), "revert")
    assert reverted.code == 0
    after = {k: v for k, v in snapshot(machine.root).items() if ".tcptune-" not in k}
    assert after == before
    # A later apply cleans up what the killed one left, and works.
    assert run_cli("--root", str(machine.root), "apply", "server-profile").code == 0
    assert not list(drop_in.parent.glob(".*.tmp"))


def test_two_applies_at_once_serialize(tmp_path: Path) -> None:
    for round_number in range(3):
        root = tmp_path / f"round-{round_number}"
        modern_machine(root)
        (root / "etc/sysctl.d").mkdir(parents=True)
        original = snapshot(root)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "tcptune", "--root", str(root), "apply", name, "--json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for name in ("client-profile", "proxy-profile")
        ]
        outputs = [run.communicate(timeout=120) for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        backups = list_backups(System(root))
        assert len(backups) == 2
        first, second = (load_backup(System(root), b["id"]) for b in backups)  # oldest first
        targets = {
            name: profiles.load(name, root).sysctl for name in ("client-profile", "proxy-profile")
        }
        # The drop-in is exactly the later apply's, complete; never a mix.
        last = targets[second["profile"]["name"]]
        body = [
            line for line in (root / DROP_IN).read_text().splitlines() if not line.startswith("#")
        ]
        assert body == [f"{k} = {v}" for k, v in last.items()]
        # Live values: the later profile's wherever it has the key, the earlier one's elsewhere.
        earlier = targets[first["profile"]["name"]]
        for key, value in {**earlier, **last}.items():
            live = " ".join((root / "proc/sys" / key.replace(".", "/")).read_text().split())
            assert live == value, key
        # The later backup saw the earlier apply's result: they ran one after the other.
        previous = {item["key"]: item["previous"] for item in second["runtime"]}
        for key, value in previous.items():
            if key in earlier:
                assert value == earlier[key], key
        assert json.loads(outputs[0][0])["changed"] and json.loads(outputs[1][0])["changed"]
        # Both backups are valid: reverting them in turn restores the original tree.
        assert run_cli("--root", str(root), "revert").code == 0
        assert run_cli("--root", str(root), "revert").code == 0
        assert snapshot(root) == original


HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from tcptune.system import System
    from tcptune.transaction import locked
    with locked(System(sys.argv[1]), 5):
        print("held", flush=True)
        sys.stdin.readline()
    """
)


def test_revert_chooses_its_backup_under_the_lock(tmp_path: Path) -> None:
    """A revert that waits for the lock while an apply finishes undoes that newest apply, not
    the one that was newest when it started waiting."""
    import time

    machine = modern_machine(tmp_path / "root")
    (machine.root / "etc/sysctl.d").mkdir(parents=True)
    assert run_cli("--root", str(machine.root), "apply", "client-profile").code == 0
    (first,) = list_backups(System(machine.root))
    lock = machine.root / "var/lib/tcptune/lock"
    env = {k: v for k, v in os.environ.items() if k != "TCPTUNE_ROOT"}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(machine.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        reverting = subprocess.Popen(
            [sys.executable, "-m", "tcptune", "--root", str(machine.root), "revert", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 30  # until the revert has the lock file open: it waits
        while not any(
            os.path.realpath(fd) == str(lock)
            for fd in Path(f"/proc/{reverting.pid}/fd").glob("*")
            if fd.is_symlink()
        ):
            assert time.monotonic() < deadline and reverting.poll() is None
            time.sleep(0.02)
        # Meanwhile an apply (holding the lock) finishes: a newer backup appears.
        newer = dict(first, id=first["id"].replace("Z", "Z-7"))
        (machine.root / f"var/lib/tcptune/backups/{newer['id']}.json").write_text(json.dumps(newer))
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    out, err = reverting.communicate(timeout=60)
    assert reverting.returncode == 0, err
    assert json.loads(out)["backup_id"] == newer["id"]
