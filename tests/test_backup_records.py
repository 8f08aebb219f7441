"""What tcptune accepts in a backup file, and what it says about one it refuses: a table of
backups written by a real `apply` and then damaged one field at a time (as a disk error or a hand
edit would), each with the exact line a user reads. Also the order `backups` lists them in when
old, numbered and damaged backups are mixed, and the file a revert leaves behind."""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeMachine, run_cli

from tcptune import transaction
from tcptune.cli.apply import build_plan
from tcptune.errors import BadInput, EnvironmentProblem
from tcptune.system import SysctlWriteError, System
from tcptune.transaction import same_netns

BACKUPS = "var/lib/tcptune/backups"
DROP_IN = "etc/sysctl.d/99-tcptune.conf"
HINT = "restore it from another copy, or remove it; tcptune will not guess"
HEX64 = "0123456789abcdef" * 4


@pytest.fixture
def machine(modern: FakeMachine) -> FakeMachine:
    (modern.root / "etc/sysctl.d").mkdir(parents=True)
    return modern


def cli(machine: FakeMachine, *argv: str):
    return run_cli("--root", str(machine.root), *argv)


def apply(machine: FakeMachine, profile: str = "client-profile") -> str:
    result = cli(machine, "apply", profile, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)["backup_id"]


def path_of(machine: FakeMachine, backup_id: str) -> Path:
    return machine.root / BACKUPS / f"{backup_id}.json"


def load(machine: FakeMachine, backup_id: str) -> dict[str, Any]:
    return json.loads(path_of(machine, backup_id).read_text())


def store(machine: FakeMachine, backup_id: str, data: dict[str, Any]) -> None:
    path_of(machine, backup_id).write_text(json.dumps(data, indent=2) + "\n")


def with_previous_drop_in(machine: FakeMachine, text: bytes = b"net.ipv4.tcp_fin_timeout = 30\n"):
    """A drop-in there before the apply, so the backup records its bytes."""
    (machine.root / DROP_IN).write_bytes(b"# Managed by tcptune: by hand\n" + text)


def netns(**fields: Any) -> dict[str, Any]:
    return {"inode": "4026531840", "cookie": 1, "entered": None, **fields}


def set_in(data: dict[str, Any], where: str, value: Any) -> None:
    """data[a][b]... = value for where = "a.b"; "runtime.0.key" indexes the list."""
    *parents, last = where.split(".")
    for part in parents:
        data = data[int(part)] if part.isdigit() else data[part]
    if last.isdigit():
        data[int(last)] = value
    else:
        data[last] = value


# (field, value) -> why the backup is refused (the text after "corrupted or was edited: ")
REFUSED = [
    ("", [], "it holds an array, not a JSON object"),
    ("", None, "it holds null, not a JSON object"),
    ("", "backup", "it holds a string, not a JSON object"),
    ("", 7, "it holds a number, not a JSON object"),
    ("", 7.5, "it holds a number, not a JSON object"),
    ("", True, "it holds true or false, not a JSON object"),
    ("format", 2, "unknown format 2"),
    ("format", None, "unknown format None"),
    ("format", "1", "unknown format '1'"),
    ("id", "20200101T000000000000Z", "its id does not match its file name"),
    ("sequence", 0, "sequence 0 is not a positive whole number"),
    ("sequence", -3, "sequence -3 is not a positive whole number"),
    ("sequence", True, "sequence True is not a positive whole number"),
    ("sequence", "2", "sequence '2' is not a positive whole number"),
    ("sequence", 1.0, "sequence 1.0 is not a positive whole number"),
    ("drop_in.path", "/etc/sysctl.conf", "drop-in path outside /etc/sysctl.d"),
    ("drop_in.path", "/run/sysctl.d/99-tcptune.conf", "drop-in path outside /etc/sysctl.d"),
    ("drop_in.path", 7, "drop-in path outside /etc/sysctl.d"),
    ("drop_in.path", "/etc/sysctl.d/x/99.conf", "drop-in path is not a plain file name"),
    ("drop_in.path", "/etc/sysctl.d/../shadow", "drop-in path is not a plain file name"),
    ("drop_in.path", "/etc/sysctl.d/..", "drop-in path is not a plain file name"),
    ("drop_in.sha256", "0" * 64, "drop-in content does not match its checksum"),
    ("drop_in.written_sha256", "abc", "written_sha256 is not a SHA-256 in hex"),
    ("drop_in.written_sha256", HEX64[:63], "written_sha256 is not a SHA-256 in hex"),
    ("drop_in.written_sha256", HEX64 + "0", "written_sha256 is not a SHA-256 in hex"),
    ("drop_in.written_sha256", HEX64.upper(), "written_sha256 is not a SHA-256 in hex"),
    ("drop_in.written_sha256", "g" * 64, "written_sha256 is not a SHA-256 in hex"),
    ("drop_in.written_sha256", 12, "written_sha256 is not a SHA-256 in hex"),
    ("netns", "4026531840", "netns is not {inode, cookie, entered}"),
    ("netns", {"inode": "1", "cookie": 1}, "netns is not {inode, cookie, entered}"),
    ("netns", {**netns(), "pid": 1}, "netns is not {inode, cookie, entered}"),
    ("netns", netns(inode=4026531840), "netns inode is not a number"),
    ("netns", netns(inode="4026531840x"), "netns inode is not a number"),
    ("netns", netns(inode="٤٠٢٦"), "netns inode is not a number"),  # Arabic-Indic digits
    ("netns", netns(inode="1" * 21), "netns inode is not a number"),
    ("netns", netns(inode=""), "netns inode is not a number"),
    ("netns", netns(cookie=-1), "netns cookie is not a 64-bit number"),
    ("netns", netns(cookie=2**64), "netns cookie is not a 64-bit number"),
    ("netns", netns(cookie=True), "netns cookie is not a 64-bit number"),
    ("netns", netns(cookie="1"), "netns cookie is not a 64-bit number"),
    ("netns", netns(entered=3), "netns entered is not a short string"),
    ("netns", netns(entered="x" * 4201), "netns entered is not a short string"),
    (
        "runtime.0.key",
        "kernel.core_pattern",
        "runtime key 'kernel.core_pattern' is not a network key",
    ),
    ("runtime.0.key", "net.ipv4", "runtime key 'net.ipv4' is not a network key"),
    ("runtime.0.key", 5, "runtime key 5 is not a network key"),
    ("runtime.0.key", "net.ipv4.a..b", "runtime key 'net.ipv4.a..b' is not a sysctl name"),
    ("runtime.0.key", "net.core.a/b", "runtime key 'net.core.a/b' is not a sysctl name"),
    ("runtime.0.previous", 30, "previous value of net.ipv4.ip_local_port_range is not a string"),
]

# (field, value): still a backup tcptune can revert
ACCEPTED = [
    ("sequence", 1),
    ("sequence", 10**6),
    ("drop_in.written_sha256", HEX64),
    ("drop_in.written_sha256", None),
    ("netns", None),
    ("netns", netns()),
    ("netns", netns(inode="1" * 20, cookie=0, entered="x" * 4200)),
    ("netns", netns(cookie=2**64 - 1, entered="/run/netns/blue")),
    ("netns", netns(cookie=None)),
    ("runtime.0.key", "net.ipv6.conf.all.forwarding"),
    ("runtime.0.key", "net.core.somaxconn"),
    ("runtime.0.previous", None),
]


def line(machine: FakeMachine, backup_id: str, why: str) -> str:
    path = path_of(machine, backup_id)
    return f"tcptune: error: backup {path} is corrupted or was edited: {why} ({HINT})\n"


@pytest.mark.parametrize(("where", "value", "why"), REFUSED)
def test_a_damaged_backup_is_refused_saying_what_is_wrong(
    machine: FakeMachine, where: str, value: Any, why: str
) -> None:
    with_previous_drop_in(machine)
    backup_id = apply(machine)
    data = load(machine, backup_id)
    if where:
        set_in(data, where, value)
    else:  # the whole document
        data = value
    store(machine, backup_id, data)
    before = path_of(machine, backup_id).read_bytes()
    drop_in = (machine.root / DROP_IN).read_bytes()
    result = cli(machine, "revert", backup_id)
    assert (result.code, result.err, result.out) == (2, line(machine, backup_id, why), "")
    assert path_of(machine, backup_id).read_bytes() == before
    assert (machine.root / DROP_IN).read_bytes() == drop_in
    # `backups` lists it as corrupt, with the same reason, and goes on
    listed = json.loads(cli(machine, "backups", "--json").out)["backups"]
    corrupt = f"backup {path_of(machine, backup_id)} is corrupted or was edited: {why}"
    assert listed == [{"id": backup_id, "corrupt": corrupt}]


@pytest.mark.parametrize(("where", "value"), ACCEPTED)
def test_a_backup_within_the_limits_is_reverted(machine: FakeMachine, where: str, value) -> None:
    with_previous_drop_in(machine)
    before = (machine.root / DROP_IN).read_bytes()
    backup_id = apply(machine)
    data = load(machine, backup_id)
    set_in(data, where, value)
    store(machine, backup_id, data)
    result = cli(machine, "revert", backup_id, "--dry-run", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["backup_id"] == backup_id
    assert listed(machine) == [(backup_id, False)]
    if where in ("sequence", "netns", "runtime.0.previous"):  # the rest changes what is put back
        assert cli(machine, "revert", backup_id).code == 0
        assert (machine.root / DROP_IN).read_bytes() == before


def test_content_that_is_not_base64_is_refused_even_with_a_matching_checksum(
    machine: FakeMachine,
) -> None:
    """Lenient base64 would read "@@@@" as no bytes at all, whose checksum is the one stored:
    the backup still holds no drop-in tcptune wrote, so it is refused."""
    with_previous_drop_in(machine)
    backup_id = apply(machine)
    data = load(machine, backup_id)
    data["drop_in"]["content_b64"] = "@@@@"
    data["drop_in"]["sha256"] = hashlib.sha256(b"").hexdigest()
    assert base64.b64decode("@@@@") == b""
    store(machine, backup_id, data)
    result = cli(machine, "revert", backup_id)
    assert result.code == 2
    assert f"backup {path_of(machine, backup_id)} is corrupted or was edited: " in result.err
    assert result.err.endswith(f"({HINT})\n")


def test_content_whose_checksum_matches_another_text_is_refused(machine: FakeMachine) -> None:
    with_previous_drop_in(machine)
    backup_id = apply(machine)
    data = load(machine, backup_id)
    data["drop_in"]["content_b64"] = base64.b64encode(b"net.core.somaxconn = 1\n").decode()
    store(machine, backup_id, data)
    result = cli(machine, "revert", backup_id)
    assert result.err == line(machine, backup_id, "drop-in content does not match its checksum")


@pytest.mark.parametrize(
    ("backup_id", "message"),
    [
        ("xyz", "invalid backup id 'xyz'"),
        ("20261125T223708598116Z.json", "invalid backup id '20261125T223708598116Z.json'"),
        ("../20261125T223708598116Z", "invalid backup id '../20261125T223708598116Z'"),
        ("20261125T223708598116Z", "no backup '20261125T223708598116Z'"),
        ("20261125T223708598116Z-3", "no backup '20261125T223708598116Z-3'"),
    ],
)
def test_an_unknown_backup_id_says_where_to_find_the_real_ones(
    machine: FakeMachine, backup_id: str, message: str
) -> None:
    apply(machine)
    result = cli(machine, "revert", backup_id)
    assert (result.code, result.err) == (
        2,
        f"tcptune: error: {message} (list them with: tcptune backups)\n",
    )


def test_a_damaged_newest_backup_stops_revert_naming_the_file_to_remove(
    machine: FakeMachine,
) -> None:
    apply(machine, "client-profile")
    newest = apply(machine, "server-profile")
    data = load(machine, newest)
    data["format"] = 9
    store(machine, newest, data)
    result = cli(machine, "revert")
    why = f"backup {path_of(machine, newest)} is corrupted or was edited: unknown format 9"
    assert (result.code, result.err) == (
        2,
        f"tcptune: error: backup {newest} is corrupted: {why} (revert an older one by id, or "
        f"remove {BACKUPS}/{newest}.json)\n",
    )


def test_nothing_left_to_revert_says_so(machine: FakeMachine) -> None:
    apply(machine)
    assert cli(machine, "revert").code == 0
    result = cli(machine, "revert")
    assert (result.code, result.err) == (
        2,
        "tcptune: error: nothing to revert: every backup is already reverted (tcptune backups)\n",
    )


# --- order ----------------------------------------------------------------------------------


def listed(machine: FakeMachine) -> list[tuple[str, bool]]:
    doc = json.loads(cli(machine, "backups", "--json").out)
    return [(row["id"], "corrupt" in row) for row in doc["backups"]]


def rename(machine: FakeMachine, backup_id: str, new_id: str, **fields: Any) -> None:
    """Move a backup to another id (as if made at another time), changing `fields`; a field
    given as None is removed (a backup of a tcptune that did not write it)."""
    data = load(machine, backup_id)
    data["id"] = new_id
    for name, value in fields.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    path_of(machine, backup_id).unlink()
    store(machine, new_id, data)


def test_damaged_and_old_backups_sort_by_name_before_the_numbered_ones(
    machine: FakeMachine,
) -> None:
    """Without a (valid) sequence number a backup sorts by its id among the others without one,
    whether it is readable or not; every numbered one comes after them, by number."""
    ids = [apply(machine, p) for p in ("client-profile", "server-profile", "client-profile")]
    rename(machine, ids[0], "20150101T000000000000Z", sequence=None)  # old, early name
    rename(machine, ids[1], "20200101T000000000000Z", sequence=0)  # damaged, later name
    rename(machine, ids[2], "20100101T000000000000Z", sequence=5)  # numbered, earliest name
    (machine.root / BACKUPS / "20250101T000000000000Z.json").write_text("{not json")
    (machine.root / BACKUPS / "20120101T000000000000Z.json").write_text("[]")
    assert listed(machine) == [
        ("20120101T000000000000Z", True),
        ("20150101T000000000000Z", False),
        ("20200101T000000000000Z", True),
        ("20250101T000000000000Z", True),
        ("20100101T000000000000Z", False),
    ]


def test_a_damaged_numbered_backup_keeps_its_place_among_the_numbered(
    machine: FakeMachine,
) -> None:
    ids = [apply(machine, p) for p in ("client-profile", "server-profile", "client-profile")]
    data = load(machine, ids[1])
    data["format"] = 7  # damaged, its sequence (2) still readable
    store(machine, ids[1], data)
    assert listed(machine) == [(ids[0], False), (ids[1], True), (ids[2], False)]


@pytest.mark.parametrize("damaged", ["7", 2.5, True, -5, 0, None, [3]])
def test_a_damaged_sequence_number_is_not_counted_for_the_next_one(
    machine: FakeMachine, damaged: Any
) -> None:
    first = apply(machine, "client-profile")
    data = load(machine, first)
    data["sequence"] = damaged
    store(machine, first, data)
    second = apply(machine, "server-profile")
    assert load(machine, second)["sequence"] == 1
    assert [row[0] for row in listed(machine)] == [first, second]


# --- what a revert leaves -------------------------------------------------------------------


def test_a_revert_changes_only_the_reverted_line_of_its_backup(machine: FakeMachine) -> None:
    backup_id = apply(machine)
    before = path_of(machine, backup_id).read_text().splitlines()
    assert cli(machine, "revert").code == 0
    after = path_of(machine, backup_id).read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert len(changed) == 1 and changed[0][0] == '  "reverted": null,'
    assert changed[0][1].startswith('  "reverted": "20')
    assert stat.S_IMODE(path_of(machine, backup_id).stat().st_mode) == 0o600


def test_revert_dry_run_shows_each_key_now_and_what_it_restores(machine: FakeMachine) -> None:
    backup_id = apply(machine)
    (machine.root / "proc/sys/net/ipv4/tcp_tw_reuse").write_text("0\n")  # changed since
    (machine.root / "proc/sys/net/ipv4/ip_local_port_range").unlink()  # gone since
    result = cli(machine, "revert", "--dry-run", "--json")
    doc = json.loads(result.out)
    assert doc["backup_id"] == backup_id
    assert doc["runtime"] == [
        {"key": "net.ipv4.ip_local_port_range", "now": None, "restore": "32768 60999"},
        {"key": "net.ipv4.tcp_tw_reuse", "now": "0", "restore": "2"},
    ]


# --- which namespace ------------------------------------------------------------------------

A = {"inode": "4026531840", "cookie": 1, "entered": None}


@pytest.mark.parametrize(
    ("recorded", "current", "same"),
    [
        (None, None, True),  # neither known
        (None, A, True),  # an older backup
        (A, None, True),  # a tree below --root
        (A, dict(A), True),
        (A, {**A, "entered": "/run/netns/x"}, True),  # entered differently, same namespace
        (A, {**A, "cookie": 2}, False),  # the inode was used again by a later namespace
        (A, {**A, "inode": "4026532000"}, True),  # the cookie decides when both have one
        ({**A, "cookie": None}, {**A, "cookie": 7}, True),  # else the inode
        ({**A, "cookie": 7}, {**A, "cookie": None}, True),
        ({**A, "cookie": None}, {**A, "cookie": None, "inode": "4026532000"}, False),
        ({**A, "cookie": 7}, {**A, "cookie": None, "inode": "4026532000"}, False),
        ({**A, "cookie": None}, {**A, "cookie": 7, "inode": "4026532000"}, False),
    ],
)
def test_same_namespace_by_cookie_else_by_inode(recorded, current, same: bool) -> None:
    assert same_netns(recorded, current) is same


# --- a drop-in write that fails -------------------------------------------------------------


def drop_in_state(machine: FakeMachine) -> tuple[bytes, int] | None:
    path = machine.root / DROP_IN
    if not path.exists():
        return None
    return path.read_bytes(), stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mode", [0o640, 0o644])
def test_a_drop_in_write_failing_before_the_rename_leaves_no_backup(
    machine: FakeMachine, monkeypatch, mode: int
) -> None:
    with_previous_drop_in(machine)
    (machine.root / DROP_IN).chmod(mode)
    before = drop_in_state(machine)

    def failing(path: Path, data: bytes, mode: int = 0o644) -> None:
        if path.name == "99-tcptune.conf":
            raise EnvironmentProblem(f"cannot write {path}: No space left on device")
        real(path, data, mode)

    real = transaction.atomic_write
    monkeypatch.setattr(transaction, "atomic_write", failing)
    result = cli(machine, "apply", "client-profile", "--force")
    monkeypatch.undo()
    path = machine.root / DROP_IN
    assert (result.code, result.err) == (
        3,
        f"tcptune: error: cannot write {path}: No space left on device\n",
    )
    assert drop_in_state(machine) == before
    assert list((machine.root / BACKUPS).glob("*.json")) == []


@pytest.mark.parametrize(
    ("existed", "mode", "hint"),
    [
        (True, 0o644, None),
        (True, 0o600, None),
        (False, None, None),
        (True, 0o644, "check the disk"),
    ],
)
def test_a_drop_in_write_failing_after_the_rename_keeps_the_backup_to_revert(
    machine: FakeMachine, monkeypatch, existed: bool, mode: int | None, hint: str | None
) -> None:
    """The new drop-in is in place when the failure comes (a failed directory sync): the backup
    stays, and the error names the revert that puts the old one back."""
    if existed:
        with_previous_drop_in(machine)
        (machine.root / DROP_IN).chmod(mode)
    before = drop_in_state(machine)

    def failing_late(path: Path, data: bytes, mode: int = 0o644) -> None:
        real(path, data, mode)
        if path.name == "99-tcptune.conf":
            raise EnvironmentProblem(f"cannot sync {path.parent}: Input/output error", hint=hint)

    real = transaction.atomic_write
    monkeypatch.setattr(transaction, "atomic_write", failing_late)
    result = cli(machine, "apply", "client-profile", "--force")
    monkeypatch.undo()
    (backup,) = (machine.root / BACKUPS).glob("*.json")
    assert (result.code, result.err) == (
        3,
        f"tcptune: error: cannot sync {machine.root / 'etc/sysctl.d'}: Input/output error "
        f"({hint + '; ' if hint else ''}/{DROP_IN} may have changed: tcptune revert "
        f"{backup.stem} puts back the previous state)\n",
    )
    assert drop_in_state(machine) != before
    assert cli(machine, "revert").code == 0
    assert drop_in_state(machine) == before


def test_a_backup_recording_no_mode_restores_the_drop_in_0644(machine: FakeMachine) -> None:
    with_previous_drop_in(machine)
    (machine.root / DROP_IN).chmod(0o600)
    backup_id = apply(machine)
    data = load(machine, backup_id)
    data["drop_in"]["mode"] = None  # as a backup made before modes were recorded
    store(machine, backup_id, data)
    assert cli(machine, "revert").code == 0
    assert stat.S_IMODE((machine.root / DROP_IN).stat().st_mode) == 0o644


# --- revert over a changed drop-in, in this process -----------------------------------------

REFUSAL_HINT = (
    "revert the newer backups first, or --force, which saves the file as it is now next to the "
    "backups and reverts"
)


def refusal(machine: FakeMachine, why: str) -> str:
    return f"tcptune: error: {why} ({REFUSAL_HINT})\n"


def test_an_edited_drop_in_is_refused_with_why_then_saved_0600_by_force(
    machine: FakeMachine,
) -> None:
    backup_id = apply(machine)
    path = machine.root / DROP_IN
    path.write_bytes(path.read_bytes() + b"net.ipv4.tcp_fin_timeout = 33\n")
    edited = path.read_bytes()
    result = cli(machine, "revert")
    why = (
        f"/{DROP_IN} was changed after backup {backup_id} wrote it (edited, or written by a "
        "later apply)"
    )
    assert (result.code, result.err) == (2, refusal(machine, why))
    assert path.read_bytes() == edited
    forced = cli(machine, "revert", "--force", "--json")
    doc = json.loads(forced.out)
    saved = machine.root / BACKUPS / f"{backup_id}.edited-1.conf"
    assert forced.code == 0 and doc["saved"] == str(saved)
    assert saved.read_bytes() == edited
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert doc["drop_in_written"] is True and doc["drop_in"]["action"] == "remove"
    assert not path.exists()


def test_a_removed_drop_in_is_refused_with_why_and_force_saves_nothing(
    machine: FakeMachine,
) -> None:
    with_previous_drop_in(machine)
    before = drop_in_state(machine)
    backup_id = apply(machine)
    (machine.root / DROP_IN).unlink()
    result = cli(machine, "revert")
    why = f"/{DROP_IN} was removed after backup {backup_id} was made"
    assert (result.code, result.err) == (2, refusal(machine, why))
    forced = cli(machine, "revert", "--force", "--json")
    doc = json.loads(forced.out)
    assert forced.code == 0 and doc["saved"] is None and doc["drop_in_written"] is True
    assert drop_in_state(machine) == before
    assert sorted(p.name for p in (machine.root / BACKUPS).iterdir()) == [f"{backup_id}.json"]


def test_a_backup_that_did_not_record_what_it_wrote_cannot_rule_out_an_edit(
    machine: FakeMachine,
) -> None:
    backup_id = apply(machine)
    data = load(machine, backup_id)
    del data["drop_in"]["written_sha256"]  # a backup of an older tcptune
    store(machine, backup_id, data)
    result = cli(machine, "revert")
    why = (
        f"backup {backup_id} was made by a tcptune that did not record what it wrote, and "
        f"/{DROP_IN} is not what it was before that apply, so an edit cannot be ruled out"
    )
    assert (result.code, result.err) == (2, refusal(machine, why))


def test_a_backup_that_did_not_record_touched_restores_the_drop_in(machine: FakeMachine) -> None:
    """Before `touched` was recorded every apply wrote the drop-in: such a backup puts it back."""
    with_previous_drop_in(machine)
    before = drop_in_state(machine)
    backup_id = apply(machine)
    data = load(machine, backup_id)
    del data["drop_in"]["touched"]
    store(machine, backup_id, data)
    result = cli(machine, "revert", "--json")
    doc = json.loads(result.out)
    assert result.code == 0 and doc["drop_in"]["action"] == "restore"
    assert doc["drop_in_written"] is True
    assert drop_in_state(machine) == before


def test_a_runtime_only_revert_writes_no_drop_in(machine: FakeMachine) -> None:
    apply(machine)
    runtime_only = json.loads(
        cli(machine, "apply", "server-profile", "--runtime-only", "--json").out
    )["backup_id"]
    result = cli(machine, "revert", runtime_only, "--json")
    doc = json.loads(result.out)
    assert result.code == 0 and doc["drop_in"]["action"] == "keep"
    assert doc["drop_in_written"] is False


def test_a_key_with_no_readable_value_before_is_left_as_is(machine: FakeMachine) -> None:
    backup_id = apply(machine)
    data = load(machine, backup_id)
    data["runtime"][0]["previous"] = None  # unreadable when the apply ran
    store(machine, backup_id, data)
    now = (machine.root / "proc/sys/net/ipv4/ip_local_port_range").read_text()
    result = cli(machine, "revert", "--json")
    doc = json.loads(result.out)
    assert result.code == 0
    assert doc["results"] == [
        {
            "key": "net.ipv4.ip_local_port_range",
            "outcome": "restored",
            "detail": "had no readable value before; left as is",
        },
        {"key": "net.ipv4.tcp_tw_reuse", "outcome": "restored", "detail": None},
    ]
    assert (machine.root / "proc/sys/net/ipv4/ip_local_port_range").read_text() == now
    assert (machine.root / "proc/sys/net/ipv4/tcp_tw_reuse").read_text().strip() == "2"
    assert listed(machine) == [(backup_id, False)]
    assert load(machine, backup_id)["reverted"] is not None


def test_a_revert_with_nothing_changed_saves_nothing(machine: FakeMachine) -> None:
    apply(machine)
    doc = json.loads(cli(machine, "revert", "--json").out)
    assert doc["saved"] is None and doc["drop_in_written"] is True


def test_a_drop_in_put_back_as_it_was_before_needs_no_force(machine: FakeMachine) -> None:
    """What an apply that stopped half-way leaves: the drop-in as it was before that apply."""
    with_previous_drop_in(machine)
    before = drop_in_state(machine)
    assert before is not None
    apply(machine)
    (machine.root / DROP_IN).write_bytes(before[0])
    result = cli(machine, "revert", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["drop_in"]["changed"] is False
    assert drop_in_state(machine) == before


def test_the_revert_function_refuses_a_changed_drop_in_without_force(
    machine: FakeMachine,
) -> None:
    apply(machine)
    (machine.root / DROP_IN).write_text("# edited\n")
    system = System(machine.root)
    plan = transaction.plan_revert(system, transaction.newest_unreverted(system))
    with pytest.raises(BadInput) as refused:
        transaction.revert(system, plan)
    assert refused.value.message.startswith(f"/{DROP_IN} was changed after backup")
    assert (machine.root / DROP_IN).read_text() == "# edited\n"


@pytest.mark.parametrize("kept", [998, 999])
def test_at_most_999_saved_copies_of_a_changed_drop_in(machine: FakeMachine, kept: int) -> None:
    backup_id = apply(machine)
    directory = machine.root / BACKUPS
    for n in range(1, kept + 1):
        (directory / f"{backup_id}.edited-{n}.conf").write_text("")
    (machine.root / DROP_IN).write_text("# edited\n")
    result = cli(machine, "revert", "--force")
    if kept == 998:
        assert result.code == 0, result.err
        assert (directory / f"{backup_id}.edited-999.conf").read_text() == "# edited\n"
        return
    assert (result.code, result.err) == (
        3,
        f"tcptune: error: {directory} already holds 999 saved copies of /{DROP_IN} (move the "
        f"{backup_id}.edited-*.conf files away)\n",
    )
    assert not (directory / f"{backup_id}.edited-1000.conf").exists()
    assert (machine.root / DROP_IN).read_text() == "# edited\n"


# --- what a backup records ------------------------------------------------------------------


def test_a_backup_records_what_it_was_made_from(machine: FakeMachine) -> None:
    """The fields docs/commands.md lists, from outside: the version `tcptune --version` prints,
    the kernel release of the machine, the profile file, and each key's state before."""
    machine.remove("net.ipv4.tcp_tw_reuse")
    backup_id = apply(machine)
    data = load(machine, backup_id)
    version = run_cli("--version").out.split()[-1]
    assert data["tool_version"] == version
    assert data["kernel_release"] == "6.18.44-generic"
    profile = Path(data["profile"]["path"])
    assert data["profile"]["name"] == "client-profile" and profile.name == "client-profile.toml"
    assert profile.is_file()
    assert data["runtime"] == [
        {"key": "net.ipv4.ip_local_port_range", "state": "present", "previous": "32768 60999"},
    ]
    assert data["netns"] is None  # below --root there is no namespace


def test_applies_in_one_microsecond_get_ids_told_apart_by_a_counter(machine: FakeMachine) -> None:
    at = datetime(2031, 6, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)  # noqa: UP017
    system = System(machine.root)
    made = []
    for profile in ("client-profile", "server-profile", "client-profile"):
        with transaction.locked(system):
            plan = build_plan(
                system, profile, drop_in="99-tcptune.conf", runtime=True, persist=True
            )
            made.append(transaction.execute(system, plan, None, clock=lambda: at).backup_id)
    base = "20310601T120000123456Z"
    assert made == [base, f"{base}-1", f"{base}-2"]
    assert [b["id"] for b in transaction.list_backups(system)] == made


def test_old_backups_of_one_microsecond_sort_by_their_counter_as_a_number(
    machine: FakeMachine,
) -> None:
    """Made by a tcptune that numbered nothing: T...Z, T...Z-1, ..., T...Z-11 in that order (by
    text, -10 would come before -2), also when pruning keeps the newest 50."""
    backup_id = apply(machine)
    data = load(machine, backup_id)
    del data["sequence"]
    path_of(machine, backup_id).unlink()
    base = "20200101T000000000000Z"
    ids = [base] + [f"{base}-{n}" for n in range(1, 12)]
    for old in ids:
        store(machine, old, {**data, "id": old})
    assert [row[0] for row in listed(machine)] == ids
    for n in range(12, 52):  # 52 old ones in all
        store(machine, f"{base}-{n}", {**data, "id": f"{base}-{n}"})
    newest = apply(machine, "server-profile")
    left = [row[0] for row in listed(machine)]
    assert len(left) == 50 and left[-1] == newest
    assert left[:3] == [f"{base}-3", f"{base}-4", f"{base}-5"]  # base, -1 and -2 pruned


# --- what apply reports per key ---------------------------------------------------------------


def test_apply_json_says_whether_it_wrote_the_drop_in(machine: FakeMachine) -> None:
    result = cli(machine, "apply", "client-profile", "--json")
    assert json.loads(result.out)["drop_in_written"] is True
    result = cli(machine, "apply", "server-profile", "--runtime-only", "--json")
    assert json.loads(result.out)["drop_in_written"] is False


def test_a_refused_write_names_the_kernel_s_reason_and_the_keys_not_reached(
    machine: FakeMachine, monkeypatch
) -> None:
    real = System.write_sysctl

    def refusing(self: System, key: str, value: str) -> None:
        if key == "net.ipv4.ip_local_port_range":
            raise SysctlWriteError(key, "Invalid argument (the kernel rejected the value)", 22)
        real(self, key, value)

    monkeypatch.setattr(System, "write_sysctl", refusing)
    result = cli(machine, "apply", "client-profile", "--json")
    monkeypatch.undo()
    assert result.code == 3
    assert json.loads(result.out)["results"] == [
        {
            "key": "net.ipv4.ip_local_port_range",
            "outcome": "failed",
            "detail": "Invalid argument (the kernel rejected the value)",
        },
        {"key": "net.ipv4.tcp_tw_reuse", "outcome": "not reached", "detail": None},
    ]


def test_a_key_gone_after_its_write_is_a_mismatch_naming_why(
    machine: FakeMachine, monkeypatch
) -> None:
    real = System.write_sysctl

    def vanishing(self: System, key: str, value: str) -> None:
        real(self, key, value)
        if key == "net.ipv4.tcp_tw_reuse":
            machine.remove(key)  # as a namespace torn down between write and read-back

    monkeypatch.setattr(System, "write_sysctl", vanishing)
    result = cli(machine, "apply", "client-profile", "--json")
    monkeypatch.undo()
    assert result.code == 3
    assert json.loads(result.out)["results"][1] == {
        "key": "net.ipv4.tcp_tw_reuse",
        "outcome": "mismatch",
        "detail": "wrote '1', the kernel reads back 'no such key on this kernel'",
    }


@pytest.mark.parametrize("command", ["apply", "revert"])
def test_a_missing_sysctl_d_that_cannot_be_made_is_one_line(
    machine: FakeMachine, monkeypatch, command: str
) -> None:
    """/etc/sysctl.d missing on a read-only /etc: making it fails with EROFS."""
    if command == "revert":
        with_previous_drop_in(machine)
        apply(machine)
    (machine.root / DROP_IN).unlink(missing_ok=True)
    (machine.root / "etc/sysctl.d").rmdir()

    def read_only(directory: Path, mode: int = 0o755) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(directory))

    monkeypatch.setattr(transaction, "make_dirs", read_only)
    result = cli(machine, command, *(["client-profile"] if command == "apply" else ["--force"]))
    monkeypatch.undo()
    assert (result.code, result.err) == (
        3,
        f"tcptune: error: cannot write {machine.root / DROP_IN}: Read-only file system (the file "
        "system is read-only)\n",
    )


def test_a_failed_write_removes_its_temp_file_even_if_the_next_cleanup_fails(
    machine: FakeMachine, monkeypatch
) -> None:
    """A write interrupted after its temp file was made: the temp file goes; and when removing
    it fails too, the first error is the one reported."""
    temp = machine.root / "etc/sysctl.d" / ".99-tcptune.conf.tcptune-1.tmp"

    def interrupted(path: Path, data: bytes, mode: int = 0o644) -> None:
        if path.name == "99-tcptune.conf":
            temp.write_bytes(data[:10])
            raise EnvironmentProblem(f"cannot write {path}: No space left on device")
        real(path, data, mode)

    real = transaction.atomic_write
    monkeypatch.setattr(transaction, "atomic_write", interrupted)
    assert cli(machine, "apply", "client-profile").code == 3
    assert not temp.exists()
    real_cleanup = transaction.remove_stale_temp_files
    calls = []

    def cleanup_failing_after_the_first(target: Path) -> None:
        calls.append(target)
        if len(calls) > 1:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_cleanup(target)

    monkeypatch.setattr(transaction, "remove_stale_temp_files", cleanup_failing_after_the_first)
    result = cli(machine, "apply", "client-profile")
    assert (result.code, result.err) == (
        3,
        f"tcptune: error: cannot write {machine.root / DROP_IN}: No space left on device\n",
    )


def test_a_link_planted_at_the_drop_in_during_a_failed_write_keeps_the_backup(
    machine: FakeMachine, monkeypatch, tmp_path: Path
) -> None:
    """What is at the drop-in path cannot be read as the file it was (a link planted meanwhile):
    it may have changed, so the backup stays and the error names the revert."""
    with_previous_drop_in(machine)
    elsewhere = tmp_path / "elsewhere.conf"
    elsewhere.write_text("net.core.somaxconn = 1\n")

    def planted(path: Path, data: bytes, mode: int = 0o644) -> None:
        if path.name == "99-tcptune.conf":
            path.unlink()
            path.symlink_to(elsewhere)
            raise EnvironmentProblem(f"cannot write {path}: No space left on device")
        real(path, data, mode)

    real = transaction.atomic_write
    monkeypatch.setattr(transaction, "atomic_write", planted)
    result = cli(machine, "apply", "client-profile", "--force")
    monkeypatch.undo()
    (backup,) = (machine.root / BACKUPS).glob("*.json")
    assert result.code == 3
    assert result.err.endswith(f"tcptune revert {backup.stem} puts back the previous state)\n")


def test_a_revert_failing_to_clear_old_temp_files_is_one_line(
    machine: FakeMachine, monkeypatch
) -> None:
    apply(machine)  # no drop-in before: the revert removes it

    def failing(target: Path) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(transaction, "remove_stale_temp_files", failing)
    result = cli(machine, "revert")
    monkeypatch.undo()
    assert (result.code, result.err) == (
        3,
        f"tcptune: error: cannot write {machine.root / DROP_IN}: Input/output error (check the "
        "path and the disk)\n",
    )
    assert (machine.root / DROP_IN).exists()
