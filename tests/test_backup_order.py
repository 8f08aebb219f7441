"""Backups are ordered by the sequence number each records, never by the clock: applies made while
the clock goes backwards are reverted newest first, and pruning keeps the newest 50. Backups made
before the number existed keep working, ordered before the numbered ones."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from conftest import FakeMachine, run_cli
from test_apply import DROP_IN, snapshot

from tcptune import transaction
from tcptune.cli.apply import build_plan
from tcptune.system import System
from tcptune.transaction import execute, list_backups, locked, newest_unreverted

BACKUPS = "var/lib/tcptune/backups"
START = datetime(2031, 6, 1, 12, 0, 0, tzinfo=timezone.utc)  # noqa: UP017


def apply_at(root: Path, profile: str, at: datetime) -> str:
    """`tcptune apply PROFILE` with the clock reading `at` (the backup's time and id)."""
    system = System(root)
    with locked(system):
        plan = build_plan(system, profile, drop_in="99-tcptune.conf", runtime=True, persist=True)
        assert not plan.nothing_to_do
        outcome = execute(system, plan, system.kernel_release(), clock=lambda: at)
    assert outcome.ok and outcome.backup_id is not None
    return outcome.backup_id


def stored(root: Path, backup_id: str) -> dict:
    return json.loads((root / BACKUPS / f"{backup_id}.json").read_text())


def test_a_clock_stepped_back_does_not_change_which_backup_revert_picks(
    modern: FakeMachine,
) -> None:
    root = modern.root
    (root / "etc/sysctl.d").mkdir(parents=True)
    original = snapshot(root)
    first = apply_at(root, "client-profile", START)
    after_first = snapshot(root)
    # The clock is stepped back a day: the second backup's time and id sort before the first's.
    second = apply_at(root, "server-profile", START - timedelta(days=1))
    assert second < first
    assert [stored(root, i)["sequence"] for i in (first, second)] == [1, 2]
    assert [b["id"] for b in list_backups(System(root))] == [first, second]
    assert newest_unreverted(System(root))["id"] == second
    # revert undoes the second apply, then the first.
    done = run_cli("--root", str(root), "revert", "--json")
    assert done.code == 0 and json.loads(done.out)["backup_id"] == second
    assert snapshot(root) == after_first
    done = run_cli("--root", str(root), "revert", "--json")
    assert done.code == 0 and json.loads(done.out)["backup_id"] == first
    assert snapshot(root) == original
    listing = json.loads(run_cli("--root", str(root), "backups", "--json").out)["backups"]
    assert [(row["id"], row["sequence"]) for row in listing] == [(first, 1), (second, 2)]


def test_pruning_keeps_the_newest_50_by_sequence_while_the_clock_goes_backwards(
    modern: FakeMachine,
) -> None:
    root = modern.root
    (root / "etc/sysctl.d").mkdir(parents=True)
    made = []
    for i in range(transaction.KEEP_BACKUPS + 3):
        profile = "client-profile" if i % 2 == 0 else "kernel-defaults"
        made.append(apply_at(root, profile, START - timedelta(hours=i)))
    kept = sorted(p.stem for p in (root / BACKUPS).glob("*.json"))
    # The three oldest applies (the newest times) went; the last one (the oldest time) stayed.
    assert set(kept) == set(made[3:])
    assert [b["id"] for b in list_backups(System(root))] == made[3:]
    assert [b["sequence"] for b in list_backups(System(root))] == list(range(4, 54))
    assert newest_unreverted(System(root))["id"] == made[-1]


def test_backups_without_a_sequence_come_first_and_numbering_continues(
    modern: FakeMachine,
) -> None:
    """Backups made before the sequence number existed (no `sequence`, no `written_sha256`)
    still list, revert and prune; they count as older than every numbered one, whatever their
    time, and among themselves keep the old order (by id)."""
    root = modern.root
    (root / "etc/sysctl.d").mkdir(parents=True)
    original = snapshot(root)
    legacy = apply_at(root, "client-profile", START + timedelta(days=30))
    data = stored(root, legacy)
    del data["sequence"], data["drop_in"]["written_sha256"]
    (root / BACKUPS / f"{legacy}.json").write_text(json.dumps(data))
    newer = apply_at(root, "server-profile", START)  # an earlier time, but made later
    assert stored(root, newer)["sequence"] == 1  # no numbered backup before it
    assert [b["id"] for b in list_backups(System(root))] == [legacy, newer]
    assert run_cli("--root", str(root), "revert").code == 0  # the numbered one first
    # The legacy backup records nothing of what it wrote: its drop-in is as that apply left it,
    # but that cannot be told from an edit, so --force is needed (and keeps a copy).
    refused = run_cli("--root", str(root), "revert")
    assert refused.code == 2 and "did not record what it wrote" in refused.err
    forced = run_cli("--root", str(root), "revert", "--force")
    assert forced.code == 0, forced.err
    saved = root / BACKUPS / f"{legacy}.edited-1.conf"
    assert f"saved the changed /{DROP_IN} as {saved}" in forced.out
    assert saved.read_text().startswith("# Managed by tcptune: profile client-profile")
    assert snapshot(root) == original


def test_the_next_number_is_one_more_than_the_highest_even_past_gaps_and_damage(
    modern: FakeMachine,
) -> None:
    root = modern.root
    (root / "etc/sysctl.d").mkdir(parents=True)
    first = apply_at(root, "client-profile", START)
    data = stored(root, first)
    data["sequence"] = 41  # as if backups 1 to 40 had been pruned
    (root / BACKUPS / f"{first}.json").write_text(json.dumps(data))
    (root / BACKUPS / "20310101T000000000000Z.json").write_text("{not json")  # damaged
    second = apply_at(root, "server-profile", START - timedelta(days=400))
    assert stored(root, second)["sequence"] == 42
    ids = [b["id"] for b in list_backups(System(root))]
    assert ids == ["20310101T000000000000Z", first, second]
