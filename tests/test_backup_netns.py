"""Backups and network namespaces, in-process: which backup `revert` picks and what it says when
the live values of a backup belong to another network namespace. Each case runs in a forked child
inside its own network and mount namespaces (tmpfs over /var/lib/tcptune), against the real
namespace identity the kernel reports there; nothing of the host is read or written."""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeMachine, in_child, run_cli
from inside_namespace import isolate

from tcptune import transaction
from tcptune.system import System, netns_record

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
STATE = "/var/lib/tcptune"


def _isolate() -> None:
    """New network and mount namespaces; then tests/inside_namespace.py's isolation: tmpfs over
    every sysctl.d directory, /run and /var/lib/tcptune, an empty /etc/sysctl.conf."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS | CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    isolate()
    assert not os.path.exists(f"{STATE}/backups")


def in_private_namespaces(func: Callable[[], Any]) -> Any:
    """func() in a forked child in new network and mount namespaces; its JSON-able result."""
    return in_child(func, _isolate)


def make_backups(machine: FakeMachine, count: int) -> list[dict[str, Any]]:
    """`count` backups made by real applies (below --root), oldest first."""
    (machine.root / "etc/sysctl.d").mkdir(parents=True, exist_ok=True)
    made = []
    for n in range(count):
        profile = ("client-profile", "server-profile")[n % 2]
        result = run_cli("--root", str(machine.root), "apply", profile, "--json")
        assert result.code == 0, result.err
        backup_id = json.loads(result.out)["backup_id"]
        path = machine.root / "var/lib/tcptune/backups" / f"{backup_id}.json"
        made.append(json.loads(path.read_text()))
    return made


def install(backups: list[dict[str, Any]], netns: list[dict | None]) -> None:
    """The backups, each with its namespace record, into this (private) /var/lib/tcptune."""
    directory = Path(STATE) / "backups"
    directory.mkdir(parents=True, mode=0o700, exist_ok=True)
    for backup, record in zip(backups, netns, strict=True):
        (directory / f"{backup['id']}.json").write_text(json.dumps({**backup, "netns": record}))


def other(here: dict[str, Any], entered: str | None = "--pid 4242") -> dict[str, Any]:
    """A namespace that is not `here`: another inode and another cookie."""
    cookie = here["cookie"] + 1 if here["cookie"] is not None else None
    return {"inode": str(int(here["inode"]) + 1), "cookie": cookie, "entered": entered}


def revert_line(*argv: str) -> tuple[int, str, str]:
    result = run_cli("revert", "--dry-run", *argv)
    return result.code, result.out, result.err


needs_namespaces = pytest.mark.usefixtures("netns")


def below_root_picks_the_newest(machine: FakeMachine, backups: list[dict[str, Any]]) -> None:
    """The same backups below --root, whatever namespace each names: there is no namespace to
    tell, so revert picks the newest. (Run in this process too, so what the children run is
    also run here.)"""
    directory = machine.root / "var/lib/tcptune/backups"
    for n, backup in enumerate(backups):
        record = {"inode": str(n + 1), "cookie": n + 1, "entered": "--pid 1"}
        (directory / f"{backup['id']}.json").write_text(json.dumps({**backup, "netns": record}))
    result = run_cli("--root", str(machine.root), "revert", "--dry-run", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["backup_id"] == backups[-1]["id"]
    assert transaction.other_netns(backups[-1], System(machine.root)) is None


def test_below_a_root_every_backup_counts_as_this_namespace_s(modern: FakeMachine) -> None:
    """--root has no namespace: a backup recorded in any namespace is reverted there (and the
    parent process calls what the children below call)."""
    older, newer = make_backups(modern, 2)
    system = System(modern.root)
    for backup in (older, newer):
        path = modern.root / "var/lib/tcptune/backups" / f"{backup['id']}.json"
        record = {"inode": "7", "cookie": 7, "entered": "--pid 7"}
        path.write_text(json.dumps({**backup, "netns": record}))
    assert netns_record(system) is None
    assert transaction.newest_unreverted(system)["id"] == newer["id"]
    assert transaction.other_netns(newer, system) is None


@needs_namespaces
def test_revert_picks_the_newest_backup_of_this_namespace(modern: FakeMachine) -> None:
    backups = make_backups(modern, 3)

    def scenario() -> dict[str, Any]:
        here = netns_record(System("/"))
        install(backups, [here, other(here), other(here, None)])
        code, out, err = revert_line("--json")
        picked = json.loads(out)["backup_id"] if code == 0 else err
        return {"picked": picked, "newest": transaction.newest_unreverted(System("/"))["id"]}

    found = in_private_namespaces(scenario)
    assert found == {"picked": backups[0]["id"], "newest": backups[0]["id"]}
    below_root_picks_the_newest(modern, backups)


@needs_namespaces
def test_a_backup_with_no_namespace_record_is_this_namespace_s(modern: FakeMachine) -> None:
    backups = make_backups(modern, 2)

    def scenario() -> str:
        here = netns_record(System("/"))
        install(backups, [other(here), None])  # the newer from a tcptune that did not record
        return transaction.newest_unreverted(System("/"))["id"]

    assert in_private_namespaces(scenario) == backups[1]["id"]
    below_root_picks_the_newest(modern, backups)


@needs_namespaces
def test_only_other_namespaces_backups_left_says_how_many(modern: FakeMachine) -> None:
    backups = make_backups(modern, 4)

    def scenario() -> list:
        here = netns_record(System("/"))
        reverted_here = {**backups[0], "reverted": "2031-01-01T00:00:00+00:00"}
        install(
            [reverted_here, *backups[1:]],
            [here, other(here), other(here, None), other(here, "/run/netns/blue")],
        )
        return list(revert_line())

    code, out, err = in_private_namespaces(scenario)
    assert (code, out) == (2, "")
    assert err == (
        "tcptune: error: nothing to revert in this network namespace (3 backup(s) of other "
        "namespaces are not reverted) (tcptune backups lists them; revert one there: tcptune "
        "--netns PATH revert ID)\n"
    )
    below_root_picks_the_newest(modern, backups)


@needs_namespaces
def test_every_backup_of_this_namespace_reverted_says_so(modern: FakeMachine) -> None:
    backups = make_backups(modern, 2)

    def scenario() -> list:
        here = netns_record(System("/"))
        done = "2031-01-01T00:00:00+00:00"
        install([{**b, "reverted": done} for b in backups], [here, other(here)])
        return list(revert_line())

    code, _, err = in_private_namespaces(scenario)
    assert (code, err) == (
        2,
        "tcptune: error: nothing to revert: every backup is already reverted (tcptune backups)\n",
    )
    below_root_picks_the_newest(modern, backups)


@needs_namespaces
@pytest.mark.parametrize(
    ("entered", "named"),
    [
        ("--pid 4242", ", entered with --pid 4242"),
        ("/run/netns/blue", ", entered with /run/netns/blue"),
        (None, ""),
    ],
)
def test_a_backup_of_another_namespace_is_refused_by_id_naming_it(
    modern: FakeMachine, entered: str | None, named: str
) -> None:
    (backup,) = make_backups(modern, 1)

    def scenario() -> dict[str, Any]:
        here = netns_record(System("/"))
        elsewhere = other(here, entered)
        install([backup], [elsewhere])
        code, out, err = revert_line(backup["id"])
        return {"code": code, "out": out, "err": err, "inode": elsewhere["inode"]}

    found = in_private_namespaces(scenario)
    inode, backup_id = found["inode"], backup["id"]
    assert (found["code"], found["out"]) == (2, "")
    assert found["err"] == (
        f"tcptune: error: backup {backup_id} holds the live values of network namespace "
        f"{inode}{named}, not of the network namespace this revert runs in; reverting it here "
        "would write them into the wrong one (revert it there while it exists: tcptune --netns "
        f"/proc/PID/ns/net revert {backup_id} (a container's values go with the container))\n"
    )
    below_root_picks_the_newest(modern, [backup])


@needs_namespaces
def test_a_backup_of_this_namespace_entered_another_way_is_reverted_by_id(
    modern: FakeMachine,
) -> None:
    (backup,) = make_backups(modern, 1)

    def scenario() -> dict[str, Any]:
        here = netns_record(System("/"))
        install([backup], [{**here, "entered": "--pid 1"}])
        code, out, err = revert_line(backup["id"], "--json")
        return {"code": code, "err": err, "id": json.loads(out)["backup_id"] if out else None}

    assert in_private_namespaces(scenario) == {"code": 0, "err": "", "id": backup["id"]}
    below_root_picks_the_newest(modern, [backup])


@needs_namespaces
def test_a_runtime_only_apply_records_the_namespace_it_wrote_in(modern: FakeMachine) -> None:
    def scenario() -> dict[str, Any]:
        result = run_cli("apply", "client-profile", "--runtime-only", "--json")
        listed = json.loads(run_cli("backups", "--json").out)["backups"]
        return {
            "code": result.code,
            "err": result.err,
            "id": json.loads(result.out)["backup_id"] if result.out else None,
            "listed": listed,
            "inode": str(os.stat("/proc/self/ns/net").st_ino),  # the kernel's own answer
        }

    found = in_private_namespaces(scenario)
    assert found["code"] == 0, found["err"]
    (row,) = found["listed"]
    assert row["id"] == found["id"]
    assert row["netns"]["inode"] == found["inode"] and row["netns"]["entered"] is None
    assert type(row["netns"]["cookie"]) is int
    # below --root there is no namespace to record
    (modern.root / "etc/sysctl.d").mkdir(parents=True, exist_ok=True)
    result = run_cli("--root", str(modern.root), "apply", "client-profile", "--runtime-only")
    assert result.code == 0, result.err
    (row,) = json.loads(run_cli("--root", str(modern.root), "backups", "--json").out)["backups"]
    assert row["netns"] is None
