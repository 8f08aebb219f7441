"""revert over a drop-in that is no longer what the apply wrote: refused without --force (the
files stay byte-identical), shown by --dry-run, and with --force saved (0600) before it is
replaced; a drop-in as the apply left it, or as it was before, needs nothing."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from conftest import FakeMachine, run_cli, run_tcptune
from test_apply import DROP_IN, snapshot

BACKUPS = "var/lib/tcptune/backups"
EDIT = b"net.ipv4.tcp_fin_timeout = 33\n"


@pytest.fixture
def machine(modern: FakeMachine) -> FakeMachine:
    (modern.root / "etc/sysctl.d").mkdir(parents=True)
    return modern


def apply(machine: FakeMachine, profile: str) -> str:
    done = run_cli("--root", str(machine.root), "apply", profile, "--json")
    assert done.code == 0, done.err
    return json.loads(done.out)["backup_id"]


def revert(machine: FakeMachine, *args: str):
    return run_tcptune("--root", str(machine.root), "revert", *args)


def everything(root: Path) -> dict:
    return snapshot(root, skip_state=False)


def test_an_edited_drop_in_is_refused_then_saved_and_reverted_with_force(
    machine: FakeMachine,
) -> None:
    original = snapshot(machine.root)
    backup_id = apply(machine, "client-profile")
    drop_in = machine.root / DROP_IN
    with drop_in.open("ab") as handle:
        handle.write(EDIT)
    edited = drop_in.read_bytes()
    before = everything(machine.root)

    refused = revert(machine)
    assert refused.returncode == 2
    assert refused.stderr == (
        f"tcptune: error: /{DROP_IN} was changed after backup {backup_id} wrote it (edited, or "
        "written by a later apply) (revert the newer backups first, or --force, which saves the "
        "file as it is now next to the backups and reverts)\n"
    )
    assert everything(machine.root) == before

    dry = revert(machine, "--dry-run")
    assert dry.returncode == 0 and "revert refuses that without --force" in dry.stdout
    doc = json.loads(revert(machine, "--dry-run", "--json").stdout)
    assert (
        doc["drop_in"]["changed"] is True and "was changed after" in doc["drop_in"]["why_changed"]
    )
    assert everything(machine.root) == before

    forced = revert(machine, "--force")
    assert forced.returncode == 0, forced.stderr
    saved = machine.root / BACKUPS / f"{backup_id}.edited-1.conf"
    assert f"saved the changed /{DROP_IN} as {saved}" in forced.stdout
    assert saved.read_bytes() == edited
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert snapshot(machine.root) == original  # the drop-in gone, the live values back


def test_a_later_apply_s_drop_in_needs_the_newer_backup_reverted_first(
    machine: FakeMachine,
) -> None:
    original = snapshot(machine.root)
    first = apply(machine, "client-profile")
    apply(machine, "server-profile")
    before = everything(machine.root)
    refused = revert(machine, first)
    assert refused.returncode == 2 and "written by a later apply" in refused.stderr
    assert everything(machine.root) == before
    # In order, nothing is refused.
    assert revert(machine).returncode == 0
    assert revert(machine).returncode == 0
    assert snapshot(machine.root) == original


def test_a_removed_drop_in_is_refused_and_force_has_nothing_to_save(
    machine: FakeMachine,
) -> None:
    drop_in = machine.root / DROP_IN
    apply(machine, "client-profile")
    after_client = snapshot(machine.root)
    second = apply(machine, "server-profile")
    drop_in.unlink()
    refused = revert(machine)
    assert refused.returncode == 2 and f"was removed after backup {second}" in refused.stderr
    forced = revert(machine, "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["saved"] is None
    assert not list((machine.root / BACKUPS).glob("*.conf"))
    assert snapshot(machine.root) == after_client


def test_a_drop_in_already_as_before_or_as_written_needs_no_force(machine: FakeMachine) -> None:
    """What an apply that stopped half-way, or an interrupted revert, leaves: the drop-in as the
    backup recorded it before, or as the apply wrote it."""
    original = snapshot(machine.root)
    first = apply(machine, "client-profile")
    (machine.root / DROP_IN).unlink()  # as before the apply: there was none
    assert revert(machine).returncode == 0
    assert snapshot(machine.root) == original
    # Reverting it again (by id) finds the drop-in as before: nothing refused, nothing saved.
    again = revert(machine, first)
    assert again.returncode == 0 and "saved" not in again.stdout
    assert not list((machine.root / BACKUPS).glob("*.conf"))


def test_each_forced_revert_keeps_its_own_copy(machine: FakeMachine) -> None:
    backup_id = apply(machine, "client-profile")
    drop_in = machine.root / DROP_IN
    copies = []
    for n in (1, 2):
        text = drop_in.read_bytes() if drop_in.exists() else b""
        drop_in.write_bytes(text + f"# edit {n}\n".encode())
        copies.append(drop_in.read_bytes())
        assert revert(machine, backup_id, "--force").returncode == 0
    saved = [(machine.root / BACKUPS / f"{backup_id}.edited-{n}.conf").read_bytes() for n in (1, 2)]
    assert saved == copies
