"""What a revert promises, stated from outside: a backup is marked reverted only when every key
came back; a revert leaves alone the drop-in its apply did not write; a repeated
`apply --runtime-only` is idempotent and claims nothing about boot."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FakeMachine, cli_json, run_cli

from tcptune.system import SysctlWriteError, System

DROP_IN = "etc/sysctl.d/99-tcptune.conf"


@pytest.fixture
def machine(machine_with_sysctl_d: FakeMachine) -> FakeMachine:
    return machine_with_sysctl_d


def live(machine: FakeMachine, key: str) -> str:
    return " ".join((machine.root / "proc/sys" / key.replace(".", "/")).read_text().split())


def backup_files(machine: FakeMachine) -> list[Path]:
    return sorted((machine.root / "var/lib/tcptune/backups").glob("*.json"))


def reverted(machine: FakeMachine) -> dict[str, bool]:
    _, doc = cli_json(machine, "backups")
    return {row["id"]: bool(row["reverted"]) for row in doc["backups"]}


def test_a_revert_with_a_failed_key_leaves_the_backup_to_revert_again(
    machine: FakeMachine, monkeypatch
) -> None:
    before = live(machine, "net.ipv4.tcp_tw_reuse")
    code, applied = cli_json(machine, "apply", "client-profile")
    assert code == 0 and live(machine, "net.ipv4.tcp_tw_reuse") == "1" != before
    real = System.write_sysctl

    def refusing(self: System, key: str, value: str) -> None:
        if key == "net.ipv4.tcp_tw_reuse":
            raise SysctlWriteError(key, "Invalid argument (the kernel rejected the value)", 22)
        real(self, key, value)

    monkeypatch.setattr(System, "write_sysctl", refusing)
    code, doc = cli_json(machine, "revert")
    monkeypatch.undo()
    assert code == 3
    outcomes = {r["key"]: r["outcome"] for r in doc["results"]}
    assert outcomes["net.ipv4.tcp_tw_reuse"] == "failed"
    assert live(machine, "net.ipv4.tcp_tw_reuse") == "1"
    # not marked reverted: the next revert takes the same backup, and finishes it
    assert reverted(machine) == {applied["backup_id"]: False}
    code, again = cli_json(machine, "revert")
    assert code == 0 and again["backup_id"] == applied["backup_id"]
    assert {r["outcome"] for r in again["results"]} == {"restored"}
    assert live(machine, "net.ipv4.tcp_tw_reuse") == before
    assert reverted(machine) == {applied["backup_id"]: True}


def test_reverting_a_runtime_only_apply_keeps_a_drop_in_written_after_it(
    machine: FakeMachine,
) -> None:
    code, runtime_only = cli_json(machine, "apply", "client-profile", "--runtime-only")
    assert code == 0 and not (machine.root / DROP_IN).exists()
    code, _ = cli_json(machine, "apply", "server-profile", "--persist-only")
    assert code in (0, 1)
    written = (machine.root / DROP_IN).read_bytes()
    code, doc = cli_json(machine, "revert", runtime_only["backup_id"])
    assert code == 0, doc
    assert doc["drop_in"]["action"] == "keep"
    assert (machine.root / DROP_IN).read_bytes() == written  # never written by that apply
    assert live(machine, "net.ipv4.tcp_tw_reuse") == "2"


def test_reverting_a_runtime_only_apply_over_a_drop_in_leaves_its_bytes(
    machine: FakeMachine,
) -> None:
    assert cli_json(machine, "apply", "client-profile")[0] == 0
    path = machine.root / DROP_IN
    path.write_bytes(path.read_bytes() + b"# kept by hand\n")  # edited after tcptune wrote it
    edited = path.read_bytes()
    code, _ = cli_json(machine, "apply", "server-profile", "--runtime-only")
    assert code == 0 and path.read_bytes() == edited
    code, doc = cli_json(machine, "revert")
    assert code == 0 and doc["drop_in"]["action"] == "keep" and not doc["drop_in"]["changed"]
    assert path.read_bytes() == edited


def test_a_repeated_runtime_only_apply_changes_nothing_and_makes_no_backup(
    machine: FakeMachine,
) -> None:
    # the drop-in says client-profile: a runtime-only apply of another profile leaves it
    assert cli_json(machine, "apply", "client-profile")[0] == 0
    code, first = cli_json(machine, "apply", "server-profile", "--runtime-only")
    assert code == 0 and first["backup_id"]
    assert len(backup_files(machine)) == 2
    code, second = cli_json(machine, "apply", "server-profile", "--runtime-only")
    assert code == 0
    assert second["backup_id"] is None
    assert all(k["action"] != "change" for k in second["keys"])
    assert len(backup_files(machine)) == 2
    text = run_cli("--root", str(machine.root), "apply", "server-profile", "--runtime-only").out
    assert "nothing to do" in text and "No backup made" in text


def test_a_runtime_only_plan_claims_no_survival_across_a_reboot(machine: FakeMachine) -> None:
    code, doc = cli_json(machine, "apply", "server-profile", "--runtime-only", "--dry-run")
    assert code == 0
    for key in doc["keys"]:
        for loader in ("procps", "systemd"):
            assert key["boot"][loader]["survives"] is False, key
