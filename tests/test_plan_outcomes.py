"""What `apply` plans, checked from outside: the diff it shows is one GNU patch turns into the
drop-in apply then writes; the keys a drop-in holds are read as the loaders read them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import FakeMachine, cli_json, old_machine

DROP_IN = "etc/sysctl.d/99-tcptune.conf"
PATCH = shutil.which("patch")


@pytest.fixture
def machine(machine_with_sysctl_d: FakeMachine) -> FakeMachine:
    return machine_with_sysctl_d


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
kernel.shmmax = 1
net.ipv4.conf.ethX1.rp_filter = 2
Xnet.bogus = 7
net.ipv4.tcp no_such = 8
"""

LEFT_OUT = {
    "net.ipv4.tcp_fin_timeout": "30",
    "net.ipv4.tcp_keepalive_probes": "4",
    "net.ipv4.tcp_keepalive_time": "600",
    "net.core.somaxconn": "4096",
    "net.ipv4.tcp_mtu_probing": "1 = 2",
    "net.ipv4.tcp_rmem": "4096 131072 6291456",
    "kernel.shmmax": "1",  # not a network key: tcptune does not read it
    "net.ipv4.conf.ethX1.rp_filter": "2",  # interface names may hold capitals
    "Xnet.bogus": "7",  # no such key, but a key to the loaders all the same
    "net.ipv4.tcp no_such": "8",  # not even shaped like one: not read
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
    live = {r["key"]: r["live"] for r in plan["drop_in"]["removed_keys"]}
    assert live["kernel.shmmax"] is None and live["net.ipv4.tcp_fin_timeout"] == "60"
    assert live["net.ipv4.tcp no_such"] is None


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


def header(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#")]


@pytest.mark.parametrize(
    ("release", "shown"), [("6.18.44-generic", "6.18.44-generic"), (None, "unknown")]
)
def test_the_drop_in_says_who_wrote_it_when_and_how_to_undo_it(
    machine: FakeMachine, release: str | None, shown: str
) -> None:
    if release is None:
        machine.remove("kernel.osrelease")
    profile = Path(__file__).resolve().parent.parent / "profiles" / "client-profile.toml"
    assert cli_json(machine, "apply", "client-profile")[0] == 0
    first, written, undo = header((machine.root / DROP_IN).read_text())
    assert first == (
        "# Managed by tcptune: profile client-profile. Changes here are replaced by the next apply."
    )
    assert re.fullmatch(
        rf"# Written 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 by tcptune [0-9.]+ on kernel {re.escape(shown)}\.",
        written,
    ), written
    assert undo == f"# Profile file: {profile}. Undo with: tcptune revert"


def test_each_key_of_the_plan_names_the_profile_that_set_it(machine: FakeMachine) -> None:
    """proxy-profile extends server-profile and sets two keys of its own."""
    code, plan = cli_json(machine, "apply", "proxy-profile", "--dry-run")
    assert code == 0
    origin = {k["key"]: k["origin"] for k in plan["keys"]}
    assert origin["net.ipv4.ip_local_port_range"] == "proxy-profile"
    assert origin["net.ipv4.tcp_tw_reuse"] == "proxy-profile"
    assert origin["net.core.somaxconn"] == "server-profile"
    assert set(origin.values()) == {"proxy-profile", "server-profile"}
    path = Path(__file__).resolve().parent.parent / "profiles" / "proxy-profile.toml"
    assert plan["profile"] == {"name": "proxy-profile", "path": str(path)}


def test_skipped_unchanged_and_changed_keys_in_the_plan(tmp_path: Path) -> None:
    """On 4.17 tcp_tw_reuse = 2 does not exist yet (4.18, commit 79e9fed46079): skipped, with
    its reason and no boot claim; an unchanged key has no reason."""
    machine = old_machine(tmp_path).kernel("4.17.19")
    (machine.root / "etc/sysctl.d").mkdir(parents=True)
    profile = tmp_path / "loopback.toml"
    profile.write_text(
        'description = "x"\n[sysctl]\n"net.ipv4.tcp_tw_reuse" = 2\n'
        '"net.ipv4.tcp_fin_timeout" = 60\n"net.ipv4.tcp_keepalive_time" = 600\n'
    )
    code, plan = cli_json(machine, "apply", str(profile), "--dry-run")
    assert code == 0
    keys = {k["key"]: k for k in plan["keys"]}
    skipped = keys["net.ipv4.tcp_tw_reuse"]
    assert (skipped["action"], skipped["reason"], skipped["boot"]) == (
        "skip",
        "value 2 needs kernel 4.18 or later; skipped",
        None,
    )
    unchanged = keys["net.ipv4.tcp_fin_timeout"]
    assert (unchanged["action"], unchanged["reason"]) == ("unchanged", None)
    assert unchanged["boot"]["procps"]["survives"] is True
    changed = keys["net.ipv4.tcp_keepalive_time"]
    assert (changed["action"], changed["reason"]) == ("change", None)
    drop_in = plan["drop_in"]["diff"]
    assert "+net.ipv4.tcp_keepalive_time = 600" in drop_in and "tcp_tw_reuse" not in drop_in


def test_an_unreadable_key_is_written_and_says_why(machine: FakeMachine) -> None:
    key_file = machine.root / "proc/sys/net/ipv4/tcp_tw_reuse"
    key_file.unlink()
    key_file.mkdir()
    code, plan = cli_json(machine, "apply", "client-profile", "--dry-run")
    assert code == 0
    (key,) = [k for k in plan["keys"] if k["key"] == "net.ipv4.tcp_tw_reuse"]
    assert (key["action"], key["reason"]) == ("change", "is a directory, not a value")


def test_a_removed_key_set_on_the_kernel_command_line_says_so(machine: FakeMachine) -> None:
    """The kernel applies sysctl.* parameters of its command line at boot (5.8, commit
    3db978d480e2): a key the new drop-in leaves out keeps that value."""
    assert cli_json(machine, "apply", "server-profile")[0] in (0, 1)
    (machine.root / "proc/cmdline").write_text("ro quiet sysctl.net.ipv4.tcp_keepalive_time=900\n")
    code, plan = cli_json(machine, "apply", "client-profile", "--dry-run")
    assert code == 0
    (removed,) = [
        r for r in plan["drop_in"]["removed_keys"] if r["key"] == "net.ipv4.tcp_keepalive_time"
    ]
    assert [(b["loader"], b["set_by"], b["value"]) for b in removed["boot"]] == [
        ("procps", "/proc/cmdline", "900"),
        ("systemd", "/proc/cmdline", "900"),
    ]


@pytest.mark.parametrize(
    ("directory", "name", "masked"),
    [
        ("usr/lib/sysctl.d", "99-tcptune.conf", True),
        ("run/sysctl.d", "99-tcptune.conf", True),
        ("usr/lib/sysctl.d", "50-default.conf", False),
        ("etc/sysctl.d", "10-site.conf", False),
    ],
)
def test_a_drop_in_masks_only_files_of_its_name_in_other_directories(
    machine: FakeMachine, directory: str, name: str, masked: bool
) -> None:
    """sysctl.d(5): a file in /etc/sysctl.d hides one of the same name in /run or /usr/lib."""
    (machine.root / directory).mkdir(parents=True, exist_ok=True)
    (machine.root / directory / name).write_text("net.ipv4.tcp_fin_timeout = 30\n")
    argv = ["apply", "client-profile", "--dry-run", "--force"]
    code, plan = cli_json(machine, *argv)
    assert code == 0
    assert plan["drop_in"]["masks"] == ([f"/{directory}/{name}"] if masked else [])
    code, plan = cli_json(machine, *argv, "--runtime-only")
    assert plan["drop_in"]["masks"] == []  # nothing written, nothing hidden


def test_etc_sysctl_conf_is_not_masked_by_a_drop_in_named_like_it(machine: FakeMachine) -> None:
    (machine.root / "etc/sysctl.conf").write_text("net.ipv4.tcp_fin_timeout = 30\n")
    code, plan = cli_json(
        machine, "apply", "client-profile", "--drop-in", "sysctl.conf", "--dry-run"
    )
    assert code == 0, plan
    assert plan["drop_in"]["masks"] == []
    assert plan["drop_in"]["path"] == "/etc/sysctl.d/sysctl.conf"


@pytest.mark.parametrize(
    ("text", "foreign"),
    [(None, False), ("net.core.somaxconn = 1\n", True), ("", True)],
)
def test_the_plan_says_whether_the_drop_in_there_is_someone_else_s(
    machine: FakeMachine, text: str | None, foreign: bool
) -> None:
    if text is not None:
        (machine.root / DROP_IN).write_text(text)
    code, plan = cli_json(machine, "apply", "client-profile", "--dry-run", "--force")
    assert code == 0 and plan["drop_in"]["foreign"] is foreign
    if text is None:
        assert cli_json(machine, "apply", "client-profile")[0] == 0
        code, plan = cli_json(machine, "apply", "server-profile", "--dry-run")
        assert plan["drop_in"]["foreign"] is False
