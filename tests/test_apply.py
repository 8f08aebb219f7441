"""apply / revert / backups on temporary roots: plan, dry run, idempotence, backups, stacked
byte-exact reverts, refusals, lock contention, and an injected failure at each write step."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from conftest import FakeMachine, as_nobody, run_cli, run_tcptune

from tcptune import transaction
from tcptune.errors import EnvironmentProblem
from tcptune.system import SysctlWriteError, System

DROP_IN = "etc/sysctl.d/99-tcptune.conf"
STATE = "var/lib/tcptune"


def snapshot(root: Path, skip_state: bool = True) -> dict[str, tuple[bytes, int]]:
    """Every file below root with its bytes and mode (tcptune's own state left out); files
    under /etc must come back byte for byte."""
    result = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if skip_state and relative.startswith(STATE):
            continue
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if relative.startswith("proc/sys/"):
                # a kernel prints values its own way (tabs); compare them as values
                data = b" ".join(data.split())
            result[relative] = (data, stat.S_IMODE(path.stat().st_mode))
    return result


def live(machine: FakeMachine, key: str) -> str:
    return " ".join((machine.root / "proc/sys" / key.replace(".", "/")).read_text().split())


def apply_json(machine: FakeMachine, *args: str) -> tuple[int, dict]:
    result = run_cli("--root", str(machine.root), "apply", *args, "--json")
    return result.code, json.loads(result.out) if result.out else {}


def backups(machine: FakeMachine) -> list[Path]:
    directory = machine.root / STATE / "backups"
    return sorted(directory.glob("*.json")) if directory.exists() else []


@pytest.fixture
def machine(modern: FakeMachine) -> FakeMachine:
    (modern.root / "etc/sysctl.d").mkdir(parents=True)
    return modern


def test_dry_run_prints_plan_and_diff_and_writes_nothing(machine: FakeMachine) -> None:
    before = snapshot(machine.root, skip_state=False)
    result = run_cli("--root", str(machine.root), "apply", "server-profile", "--dry-run")
    assert result.code == 0
    assert "dry run: nothing is written" in result.out
    assert "--- /dev/null\n+++ /etc/sysctl.d/99-tcptune.conf\n" in result.out
    assert "+net.ipv4.tcp_keepalive_time = 600\n" in result.out
    line = next(x for x in result.out.splitlines() if x.startswith("net.ipv4.tcp_keepalive_time"))
    assert line.split()[:4] == ["net.ipv4.tcp_keepalive_time", "7200", "600", "change"]
    assert snapshot(machine.root, skip_state=False) == before


def test_dry_run_json_plan(machine: FakeMachine) -> None:
    code, doc = apply_json(machine, "server-profile", "--dry-run")
    assert code == 0 and doc["dry_run"] is True and doc["changed"] is False
    actions = {k["key"]: k["action"] for k in doc["keys"]}
    assert actions["net.core.somaxconn"] == "unchanged"
    assert actions["net.ipv4.tcp_keepalive_time"] == "change"
    assert doc["drop_in"]["changes"] is True and doc["drop_in"]["diff"].startswith("--- /dev/null")


def test_apply_writes_drop_in_live_values_and_a_backup(machine: FakeMachine) -> None:
    before = {k: live(machine, k) for k in ("net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_rfc1337")}
    code, doc = apply_json(machine, "server-profile")
    assert code == 0 and doc["changed"] is True
    drop_in = machine.root / DROP_IN
    text = drop_in.read_text()
    assert text.startswith("# Managed by tcptune: profile server-profile.")
    assert "# Written " in text.splitlines()[1]
    assert "net.ipv4.tcp_keepalive_time = 600\n" in text
    assert stat.S_IMODE(drop_in.stat().st_mode) == 0o644
    assert live(machine, "net.ipv4.tcp_keepalive_time") == "600"
    assert live(machine, "net.ipv4.tcp_slow_start_after_idle") == "0"
    (backup_file,) = backups(machine)
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup_file.parent.stat().st_mode) == 0o700
    backup = json.loads(backup_file.read_text())
    assert backup["id"] == doc["backup_id"] == backup_file.stem
    assert backup["profile"]["name"] == "server-profile"
    assert backup["kernel_release"] == "6.18.44-generic"
    assert backup["drop_in"]["existed"] is False and backup["drop_in"]["content_b64"] is None
    previous = {item["key"]: item["previous"] for item in backup["runtime"]}
    assert previous["net.ipv4.tcp_keepalive_time"] == before["net.ipv4.tcp_keepalive_time"]
    assert previous["net.ipv4.tcp_rfc1337"] == before["net.ipv4.tcp_rfc1337"]
    assert "net.core.somaxconn" not in previous  # unchanged keys are not touched


def test_drop_in_holds_only_keys_this_kernel_has(old: FakeMachine) -> None:
    (old.root / "etc/sysctl.d").mkdir(parents=True)
    code, doc = apply_json(old, "kernel-defaults")
    text = (old.root / DROP_IN).read_text()
    assert "tcp_tw_reuse_delay" not in text  # added in 6.14
    assert "net.ipv4.tcp_tw_reuse " not in text  # value 2 needs 4.18
    assert "net.ipv4.tcp_tw_recycle = 0" in text  # still present on 4.9
    skipped = {k["key"] for k in doc["keys"] if k["action"] == "skip"}
    assert skipped == {"net.ipv4.tcp_tw_reuse_delay", "net.ipv4.tcp_tw_reuse"}
    assert code == 0


def test_second_apply_does_nothing_and_makes_no_backup(machine: FakeMachine) -> None:
    assert apply_json(machine, "server-profile")[0] == 0
    after_first = snapshot(machine.root, skip_state=False)
    result = run_cli("--root", str(machine.root), "apply", "server-profile")
    assert result.code == 0
    assert "nothing to do" in result.out and "No backup made" in result.out
    assert snapshot(machine.root, skip_state=False) == after_first
    assert len(backups(machine)) == 1


def test_stacked_reverts_restore_byte_for_byte(machine: FakeMachine) -> None:
    original = snapshot(machine.root)
    assert apply_json(machine, "client-profile")[0] == 0
    after_client = snapshot(machine.root)
    assert apply_json(machine, "server-profile")[0] == 0
    assert snapshot(machine.root) != after_client
    assert len(backups(machine)) == 2

    first = run_cli("--root", str(machine.root), "revert")
    assert first.code == 0
    assert snapshot(machine.root) == after_client
    second = run_cli("--root", str(machine.root), "revert")
    assert second.code == 0
    assert snapshot(machine.root) == original
    third = run_tcptune("--root", str(machine.root), "revert")
    assert third.returncode == 2 and "nothing to revert" in third.stderr


def test_revert_by_id_and_dry_run(machine: FakeMachine) -> None:
    original = snapshot(machine.root)
    _, doc = apply_json(machine, "client-profile")
    dry = run_cli("--root", str(machine.root), "revert", doc["backup_id"], "--dry-run")
    assert dry.code == 0 and "remove it (it did not exist)" in dry.out
    assert live(machine, "net.ipv4.tcp_tw_reuse") == "1"
    assert run_cli("--root", str(machine.root), "revert", doc["backup_id"]).code == 0
    assert snapshot(machine.root) == original
    listing = json.loads(run_cli("--root", str(machine.root), "backups", "--json").out)
    (row,) = listing["backups"]
    assert row["id"] == doc["backup_id"] and row["reverted"] and row["keys"] == 2


def test_foreign_drop_in_is_refused_then_replaced_with_force_and_restored(
    machine: FakeMachine,
) -> None:
    foreign = b"# hand-written by an admin\nnet.ipv4.tcp_fin_timeout = 45\n"
    path = machine.root / DROP_IN
    path.write_bytes(foreign)
    os.chmod(path, 0o640)
    original = snapshot(machine.root)
    refused = run_tcptune("--root", str(machine.root), "apply", "client-profile")
    assert refused.returncode == 2
    assert "not written by tcptune" in refused.stderr and "--force" in refused.stderr
    assert snapshot(machine.root) == original and backups(machine) == []

    code, doc = apply_json(machine, "client-profile", "--force")
    assert code == 0 and doc["changed"] is True
    backup = json.loads(backups(machine)[0].read_text())
    assert base64.b64decode(backup["drop_in"]["content_b64"]) == foreign
    assert run_cli("--root", str(machine.root), "revert").code == 0
    assert snapshot(machine.root) == original  # bytes and mode 0640


def test_symlink_at_drop_in_path_is_refused(machine: FakeMachine, tmp_path: Path) -> None:
    elsewhere = tmp_path / "outside.conf"
    elsewhere.write_text("x\n")
    (machine.root / DROP_IN).symlink_to(elsewhere)
    done = run_tcptune("--root", str(machine.root), "apply", "client-profile")
    assert done.returncode == 2 and "symlink" in done.stderr
    assert elsewhere.read_text() == "x\n"
    assert live(machine, "net.ipv4.tcp_tw_reuse") == "2"


def test_symlink_in_backup_directory_is_refused(machine: FakeMachine, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (machine.root / STATE).mkdir(parents=True)
    (machine.root / STATE / "backups").symlink_to(target)
    done = run_tcptune("--root", str(machine.root), "apply", "client-profile")
    assert done.returncode == 2 and "symlink" in done.stderr
    assert list(target.iterdir()) == []
    assert not (machine.root / DROP_IN).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--drop-in", "../../etc/passwd"), "invalid --drop-in"),
        (("--drop-in", "x.txt"), "invalid --drop-in"),
        (("--runtime-only", "--persist-only"), "exclude each other"),
    ],
)
def test_bad_options(machine: FakeMachine, args: tuple[str, ...], message: str) -> None:
    before = snapshot(machine.root, skip_state=False)
    done = run_tcptune("--root", str(machine.root), "apply", "client-profile", *args)
    assert done.returncode == 2 and message in done.stderr
    assert snapshot(machine.root, skip_state=False) == before


def test_runtime_only_and_persist_only(machine: FakeMachine) -> None:
    assert apply_json(machine, "client-profile", "--runtime-only")[0] == 0
    assert not (machine.root / DROP_IN).exists()
    assert live(machine, "net.ipv4.tcp_tw_reuse") == "1"
    assert run_cli("--root", str(machine.root), "revert").code == 0
    assert apply_json(machine, "client-profile", "--persist-only")[0] == 0
    assert (machine.root / DROP_IN).exists()
    assert live(machine, "net.ipv4.tcp_tw_reuse") == "2"


def test_boot_override_is_reported(machine: FakeMachine) -> None:
    (machine.root / "etc/sysctl.conf").write_text("net.ipv4.tcp_tw_reuse = 0\n")
    (machine.root / "etc/sysctl.d/99-zz-local.conf").write_text(
        "net.ipv4.ip_local_port_range = 2000 3001\n"
    )
    code, doc = apply_json(machine, "client-profile", "--dry-run")
    assert code == 0
    boot = {k["key"]: k["boot"] for k in doc["keys"]}
    reuse = boot["net.ipv4.tcp_tw_reuse"]
    assert reuse["procps"] == {
        "value": "0",
        "source": "/etc/sysctl.conf:1",
        "unknown": None,
        "refused": [],
        "survives": False,
    }
    assert reuse["systemd"]["survives"] is True
    assert reuse["systemd"]["source"] == "/etc/sysctl.d/99-tcptune.conf:5"
    ports = boot["net.ipv4.ip_local_port_range"]
    assert (
        ports["procps"]["source"]
        == ports["systemd"]["source"]
        == "/etc/sysctl.d/99-zz-local.conf:1"
    )
    assert ports["procps"]["value"] == "2000 3001"
    # apply and check PROFILE agree: live values match, but boot overrides count as drift (1).
    code, doc = apply_json(machine, "client-profile")
    assert code == 1 and doc["changed"] is True
    assert {(o["key"], o["loader"]) for o in doc["overridden_at_boot"]} == {
        ("net.ipv4.tcp_tw_reuse", "procps"),
        ("net.ipv4.ip_local_port_range", "procps"),
        ("net.ipv4.ip_local_port_range", "systemd"),
    }
    result = run_cli("--root", str(machine.root), "check", "client-profile", "--json")
    settings = {s["key"]: s for s in json.loads(result.out)["settings"]}
    assert result.code == 1
    assert settings["net.ipv4.tcp_tw_reuse"]["status"] == "drift"
    assert "procps: overridden by /etc/sysctl.conf:1" in settings["net.ipv4.tcp_tw_reuse"]["reason"]
    assert settings["net.ipv4.tcp_timestamps"]["status"] == "ok"


def test_keeps_the_newest_50_backups(machine: FakeMachine) -> None:
    for i in range(53):
        assert apply_json(machine, "client-profile" if i % 2 == 0 else "kernel-defaults")[0] == 0
    files = backups(machine)
    assert len(files) == transaction.KEEP_BACKUPS
    newest = json.loads(files[-1].read_text())
    assert newest["profile"]["name"] == "client-profile"  # the 53rd apply


def test_corrupted_backup_is_refused(machine: FakeMachine) -> None:
    _, doc = apply_json(machine, "client-profile")
    path = backups(machine)[0]
    data = json.loads(path.read_text())
    data["drop_in"]["path"] = "/etc/passwd"
    path.write_text(json.dumps(data))
    before = snapshot(machine.root)
    done = run_tcptune("--root", str(machine.root), "revert", doc["backup_id"])
    assert done.returncode == 2 and "corrupted or was edited" in done.stderr
    assert snapshot(machine.root) == before
    path.write_text("{not json")
    done = run_tcptune("--root", str(machine.root), "revert")
    assert done.returncode == 2 and "corrupted" in done.stderr


def test_unknown_backup_id(machine: FakeMachine) -> None:
    done = run_tcptune("--root", str(machine.root), "revert", "20990101T000000000000Z")
    assert done.returncode == 2 and "no backup" in done.stderr
    done = run_tcptune("--root", str(machine.root), "revert", "../../etc/shadow")
    assert done.returncode == 2 and "invalid backup id" in done.stderr


# --- lock --------------------------------------------------------------------------------------


def hold_lock(root: Path) -> int:
    directory = root / STATE
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.pwrite(fd, b"424242\n", 0)
    return fd


def test_second_apply_fails_clearly_while_the_lock_is_held(machine: FakeMachine) -> None:
    fd = hold_lock(machine.root)
    try:
        before = snapshot(machine.root)
        done = run_tcptune(
            "--root", str(machine.root), "apply", "client-profile", "--lock-wait", "0.3"
        )
        assert done.returncode == 3
        assert "another tcptune apply or revert (pid 424242)" in done.stderr
        assert snapshot(machine.root) == before
    finally:
        os.close(fd)


def test_second_apply_waits_for_the_lock(machine: FakeMachine) -> None:
    fd = hold_lock(machine.root)
    threading.Timer(0.5, os.close, args=(fd,)).start()
    started = time.monotonic()
    code, _ = apply_json(machine, "client-profile", "--lock-wait", "20")
    assert code == 0
    assert time.monotonic() - started >= 0.4
    assert live(machine, "net.ipv4.tcp_tw_reuse") == "1"


# --- injected failures: every write step, then a successful revert ----------------------------


def test_failure_while_saving_the_backup_changes_nothing(machine: FakeMachine, monkeypatch) -> None:
    before = snapshot(machine.root)
    real = transaction.atomic_write

    def failing(path: Path, data: bytes, mode: int = 0o644) -> None:
        if path.parent.name == "backups":
            raise EnvironmentProblem(f"cannot write {path}: No space left on device")
        real(path, data, mode)

    monkeypatch.setattr(transaction, "atomic_write", failing)
    result = run_cli("--root", str(machine.root), "apply", "server-profile")
    assert result.code == 3
    assert snapshot(machine.root) == before


def test_failure_writing_the_drop_in_changes_nothing(machine: FakeMachine, monkeypatch) -> None:
    before = snapshot(machine.root)
    real = transaction.atomic_write

    def failing(path: Path, data: bytes, mode: int = 0o644) -> None:
        if path.name == "99-tcptune.conf":
            raise EnvironmentProblem(f"cannot write {path}: No space left on device")
        real(path, data, mode)

    monkeypatch.setattr(transaction, "atomic_write", failing)
    assert run_cli("--root", str(machine.root), "apply", "server-profile").code == 3
    monkeypatch.undo()
    assert not list((machine.root / "etc/sysctl.d").glob(".*tmp"))
    # Nothing changed, so no backup is left to confuse a later revert.
    assert backups(machine) == []
    assert snapshot(machine.root) == before
    assert run_cli("--root", str(machine.root), "apply", "server-profile").code == 0


SERVER_CHANGES = 6  # keys server-profile changes on the modern fake machine


@pytest.mark.parametrize("failing_index", range(SERVER_CHANGES))
def test_runtime_failure_at_each_key_then_revert(
    machine: FakeMachine, monkeypatch, failing_index: int
) -> None:
    before = snapshot(machine.root)
    real = System.write_sysctl
    calls: list[str] = []

    def failing(self: System, key: str, value: str) -> None:
        calls.append(key)
        if len(calls) == failing_index + 1:
            raise SysctlWriteError(key, "Invalid argument (the kernel rejected the value)", 22)
        real(self, key, value)

    monkeypatch.setattr(System, "write_sysctl", failing)
    code, doc = apply_json(machine, "server-profile")
    monkeypatch.undo()
    assert code == 3
    outcomes = [r["outcome"] for r in doc["results"]]
    assert len(outcomes) == SERVER_CHANGES
    assert outcomes[:failing_index] == ["written"] * failing_index
    assert outcomes[failing_index] == "failed"
    assert outcomes[failing_index + 1 :] == ["not reached"] * (SERVER_CHANGES - failing_index - 1)
    assert (machine.root / DROP_IN).exists()
    revert = run_cli("--root", str(machine.root), "revert")
    assert revert.code == 0
    assert snapshot(machine.root) == before


def test_read_back_mismatch_is_reported(machine: FakeMachine, monkeypatch) -> None:
    real = System.write_sysctl

    def clamping(self: System, key: str, value: str) -> None:
        real(self, key, "1" if key == "net.ipv4.tcp_keepalive_time" else value)

    monkeypatch.setattr(System, "write_sysctl", clamping)
    code, doc = apply_json(machine, "server-profile")
    result = next(r for r in doc["results"] if r["key"] == "net.ipv4.tcp_keepalive_time")
    assert result["outcome"] == "mismatch"
    assert "reads back '1'" in result["detail"]
    assert code == 3


def test_not_root_is_refused_before_anything(tmp_path: Path) -> None:
    """A real unprivileged process (forked, uid 65534) asking to apply to the real machine."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges") if not os.environ.get("CI") else pytest.fail(
            "needs root on CI"
        )
    import contextlib
    import io

    import tcptune.cli.apply  # noqa: F401  (imported before dropping privileges)
    from tcptune.cli.main import main

    def attempt() -> dict:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["--root", "/", "apply", "client-profile"], stdout=io.StringIO())
        return {"code": code, "err": err.getvalue()}

    result = as_nobody(attempt)
    assert result["code"] == 3
    assert "run it as root" in result["err"]


def test_a_drop_in_named_like_a_vendor_file_needs_force(modern) -> None:
    """--drop-in with a vendor file's name: the plan warns, apply refuses without --force and
    changes nothing; with --force it applies, and a later apply of its own file goes through."""
    vendor = modern.root / "usr/lib/sysctl.d/50-default.conf"
    vendor.parent.mkdir(parents=True)
    vendor.write_text("net.ipv4.tcp_fin_timeout = 60\n")
    (modern.root / "etc/sysctl.d").mkdir(parents=True)
    argv = ["--root", str(modern.root), "apply", "client-profile", "--drop-in", "50-default.conf"]
    dry = run_cli(*argv, "--dry-run", "--json")
    assert json.loads(dry.out)["drop_in"]["masks"] == ["/usr/lib/sysctl.d/50-default.conf"]
    assert run_cli(*argv).code == 2
    assert not (modern.root / "etc/sysctl.d/50-default.conf").exists()
    assert run_cli(*argv, "--force").code == 0
    assert (modern.root / "etc/sysctl.d/50-default.conf").read_text().startswith("# Managed by")
    modern.set("net.ipv4.tcp_tw_reuse", "2")
    assert run_cli(*argv).code == 0  # its own drop-in now: no --force needed again
    assert run_cli("--root", str(modern.root), "apply", "client-profile", "--dry-run").code == 0


def test_backups_of_the_same_microsecond_keep_their_order(modern) -> None:
    """Backup ids T...Z, T...Z-1, T...Z-2 (one microsecond, told apart by -N) come oldest first,
    and `revert` undoes the newest: by name alone, "-" sorting before "." would put Z last."""
    from tcptune.system import System
    from tcptune.transaction import list_backups, newest_unreverted

    (modern.root / "etc/sysctl.d").mkdir(parents=True)
    assert run_cli("--root", str(modern.root), "apply", "client-profile").code == 0
    backups = modern.root / "var/lib/tcptune/backups"
    (first,) = backups.glob("*.json")
    doc = json.loads(first.read_text())
    for n in (1, 2):
        twin = dict(doc, id=f"{doc['id']}-{n}")
        (backups / f"{twin['id']}.json").write_text(json.dumps(twin))
    ids = [b["id"] for b in list_backups(System(modern.root))]
    assert ids == [doc["id"], f"{doc['id']}-1", f"{doc['id']}-2"]
    assert newest_unreverted(System(modern.root))["id"] == f"{doc['id']}-2"
