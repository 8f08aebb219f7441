"""What `apply` plans, checked from outside: the diff it shows is one GNU patch turns into the
drop-in apply then writes; the keys a drop-in holds are read as the loaders read them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import FakeMachine, run_cli

DROP_IN = "etc/sysctl.d/99-tcptune.conf"
PATCH = shutil.which("patch")


@pytest.fixture
def machine(modern: FakeMachine) -> FakeMachine:
    (modern.root / "etc/sysctl.d").mkdir(parents=True)
    return modern


def cli_json(machine: FakeMachine, *argv: str) -> tuple[int, dict]:
    result = run_cli("--root", str(machine.root), *argv, "--json")
    return result.code, json.loads(result.out) if result.out else {}


def without_time(text: str) -> list[str]:
    """The drop-in's lines but the one with the time of writing (a dry run and the apply after it
    run at different times)."""
    return [line for line in text.splitlines() if not line.startswith("# Written ")]


def patched(old: bytes | None, diff: str, work: Path) -> str:
    """GNU patch applied to `old` (None: no file) with `diff`: the file it makes."""
    assert PATCH is not None, "GNU patch is missing: make system-deps installs it"
    target = work / "drop-in.conf"
    target.unlink(missing_ok=True)
    if old is not None:
        target.write_bytes(old)
    done = subprocess.run(
        [PATCH, "--batch", "--silent", "--posix", str(target)],
        input=diff,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return target.read_text()


@pytest.mark.parametrize(
    ("before", "argv"),
    [
        (None, ()),  # no drop-in yet
        (b"", ("--force",)),  # an empty one, not tcptune's
        (b"net.ipv4.tcp_fin_timeout = 30\n", ("--force",)),
    ],
)
def test_the_diff_a_dry_run_shows_is_what_apply_writes(
    machine: FakeMachine, tmp_path: Path, before: bytes | None, argv: tuple[str, ...]
) -> None:
    path = machine.root / DROP_IN
    if before is not None:
        path.write_bytes(before)
    code, plan = cli_json(machine, "apply", "client-profile", "--dry-run", *argv)
    assert code == 0
    diff = plan["drop_in"]["diff"]
    first = diff.splitlines()[0]
    assert first == ("--- /dev/null" if before is None else f"--- /{DROP_IN}")
    assert diff.splitlines()[1] == f"+++ /{DROP_IN}"
    work = tmp_path / "patch"
    work.mkdir()
    result = patched(before, diff, work)
    code, _ = cli_json(machine, "apply", "client-profile", *argv)
    assert code == 0
    assert without_time(result) == without_time(path.read_text())


def test_the_diff_from_another_profile_s_drop_in_patches_it_into_the_new_one(
    machine: FakeMachine, tmp_path: Path
) -> None:
    assert cli_json(machine, "apply", "server-profile")[0] in (0, 1)
    path = machine.root / DROP_IN
    before = path.read_bytes()
    code, plan = cli_json(machine, "apply", "client-profile", "--dry-run")
    assert code in (0, 1)
    result = patched(before, plan["drop_in"]["diff"], tmp_path)
    assert cli_json(machine, "apply", "client-profile")[0] in (0, 1)
    assert without_time(result) == without_time(path.read_text())


# A drop-in apply --force replaces, as sysctl.d(5) reads it: '#' and ';' start comments, a '-'
# before the key only silences a failed write, '/' may stand for '.', blanks around key and value
# do not count, and a glob names no key of its own. client-profile sets ip_local_port_range,
# tcp_tw_reuse and tcp_timestamps: every other key the file sets is one the new drop-in leaves out.
FOREIGN = """\
# net.ipv4.tcp_rfc1337 = 1
; net.ipv4.tcp_syncookies = 0
  ;net.core.netdev_max_backlog = 1
-net.ipv4.tcp_fin_timeout = 30
  -net.ipv4.tcp_keepalive_probes=4
net/ipv4/tcp_keepalive_time = 600
net.ipv4.conf.*.rp_filter = 1
net.ipv4.tcp_?mem = 1 2 3
net.ipv4.conf.[ae]*.forwarding = 0
net.ipv4.tcp_slow_start_after_idle
= 5
net.core.somaxconn =   4096
net.ipv4.tcp_mtu_probing = 1 = 2
net.ipv4.tcp_rmem = 4096\t131072   6291456
net.ipv4.tcp_tw_reuse = 2
"""

LEFT_OUT = {
    "net.ipv4.tcp_fin_timeout": "30",
    "net.ipv4.tcp_keepalive_probes": "4",
    "net.ipv4.tcp_keepalive_time": "600",
    "net.core.somaxconn": "4096",
    "net.ipv4.tcp_mtu_probing": "1 = 2",
    "net.ipv4.tcp_rmem": "4096 131072 6291456",
}


def test_the_keys_a_replaced_drop_in_sets_are_read_as_sysctl_d_reads_them(
    machine: FakeMachine,
) -> None:
    (machine.root / DROP_IN).write_text(FOREIGN)
    code, plan = cli_json(machine, "apply", "client-profile", "--dry-run", "--force")
    assert code == 0
    removed = {r["key"]: r["value"] for r in plan["drop_in"]["removed_keys"]}
    assert removed == LEFT_OUT
    assert list(removed) == list(LEFT_OUT)  # in the file's order


def test_a_drop_in_differing_only_in_its_time_line_is_no_change(machine: FakeMachine) -> None:
    assert cli_json(machine, "apply", "client-profile")[0] == 0
    path = machine.root / DROP_IN
    text = path.read_text()
    assert [line for line in text.splitlines() if line.startswith("# Written ")]
    path.write_text(
        "\n".join(
            "# Written 1999-01-01T00:00:00+00:00 by tcptune 0.0 on kernel 1.0."
            if line.startswith("# Written ")
            else line
            for line in text.splitlines()
        )
        + "\n"
    )
    code, plan = cli_json(machine, "apply", "client-profile", "--dry-run")
    assert code == 0 and plan["drop_in"]["changes"] is False and plan["drop_in"]["diff"] == ""
    path.write_text(text.replace("# Profile file:", "# Profile  file:"))
    code, plan = cli_json(machine, "apply", "client-profile", "--dry-run")
    assert code == 0 and plan["drop_in"]["changes"] is True
