"""Boot truth through the whole program: the files as the system layer finds them below --root
(masks of every kind, links, big and unreadable files, the kernel command line), the boot data
of `check PROFILE --json` and `apply --json`, the tcp_tw_recycle leftover finding, and the
summary agreeing with the exit code. The loader rules themselves: tests/test_sysctld.py, and
against the real programs tests/test_loaders_differential.py."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import FakeMachine, modern_machine, run_cli

from tcptune import sysctld
from tcptune.model import CONF_MASK, CONF_TEXT, CONF_UNKNOWN, PROCPS, SYSTEMD
from tcptune.system import MAX_CONF_BYTES, System, read_conf_files

KEY = "net.ipv4.tcp_fin_timeout"


@pytest.fixture
def machine(modern: FakeMachine) -> FakeMachine:
    for directory in ("etc/sysctl.d", "usr/lib/sysctl.d", "run/sysctl.d"):
        (modern.root / directory).mkdir(parents=True)
    return modern


def profile(machine: FakeMachine, values: dict[str, int | str]) -> str:
    path = machine.root.parent / "p.toml"
    lines = [f'"{k}" = {json.dumps(v)}' for k, v in values.items()]
    path.write_text('description = "test"\n[sysctl]\n' + "\n".join(lines) + "\n")
    return str(path)


def check_profile(machine: FakeMachine, values: dict, *extra: str) -> tuple[int, dict]:
    result = run_cli(
        "--root", str(machine.root), "check", profile(machine, values), "--json", *extra
    )
    return result.code, json.loads(result.out)


def entries(machine: FakeMachine) -> dict[str, tuple[str, str]]:
    return {f.path: (f.state, f.reason) for f in read_conf_files(System(machine.root))}


# --- what the system layer finds ------------------------------------------------------------------


def test_masks_of_every_kind_and_links(machine: FakeMachine) -> None:
    etc, vendor = machine.root / "etc/sysctl.d", machine.root / "usr/lib/sysctl.d"
    (etc / "10-dangling.conf").symlink_to("/nowhere.conf")
    (etc / "20-dir.conf").mkdir()
    (etc / "30-null.conf").symlink_to("/dev/null")
    (etc / "40-null-relative.conf").symlink_to("../../dev/null")
    (etc / "50-loop.conf").symlink_to("50-loop.conf")
    (vendor / "target.txt").write_text(f"{KEY} = 31\n")
    (etc / "60-relative.conf").symlink_to("../../usr/lib/sysctl.d/target.txt")
    os.mkfifo(etc / "70-fifo.conf")
    found = entries(machine)
    assert found["/etc/sysctl.d/10-dangling.conf"] == (CONF_MASK, "a link to nothing")
    assert found["/etc/sysctl.d/20-dir.conf"] == (CONF_MASK, "a directory")
    assert found["/etc/sysctl.d/30-null.conf"] == (CONF_TEXT, "")
    # Below a fake root there is no dev/null: the link leads nowhere, a mask all the same.
    assert found["/etc/sysctl.d/40-null-relative.conf"][0] == CONF_MASK
    assert found["/etc/sysctl.d/50-loop.conf"][0] == CONF_MASK
    assert found["/etc/sysctl.d/60-relative.conf"] == (CONF_TEXT, "")
    assert found["/etc/sysctl.d/70-fifo.conf"][0] == CONF_UNKNOWN
    assert "/usr/lib/sysctl.d/target.txt" not in found  # not *.conf
    files = read_conf_files(System(machine.root))
    relative = next(f for f in files if f.name == "60-relative.conf")
    assert relative.text == f"{KEY} = 31\n"


def test_a_relative_link_to_dev_null_on_the_real_root_is_a_mask(tmp_path: Path) -> None:
    """Under / itself the link reaches the null device (read-only look at this machine's /dev)."""
    from tcptune.system import conf_entry

    link_dir = tmp_path / "etc/sysctl.d"
    link_dir.mkdir(parents=True)
    (link_dir / "x.conf").symlink_to("/dev/null")
    rel = str(link_dir.relative_to("/"))
    found = conf_entry(System("/"), rel, "x.conf")
    assert found is not None and found.state in (CONF_MASK, CONF_TEXT) and found.text == ""
    (link_dir / "y.conf").symlink_to("../" * len(link_dir.parts[1:]) + "dev/null")
    found = conf_entry(System("/"), rel, "y.conf")
    assert found is not None and (found.state, found.reason) == (CONF_MASK, "a link to /dev/null")


def test_sysctl_conf_kinds(machine: FakeMachine) -> None:
    conf = machine.root / "etc/sysctl.conf"
    conf.symlink_to("/dev/null")
    assert entries(machine)["/etc/sysctl.conf"] == (CONF_TEXT, "")
    conf.unlink()
    conf.mkdir()
    assert entries(machine)["/etc/sysctl.conf"] == (CONF_MASK, "a directory")
    conf.rmdir()
    assert "/etc/sysctl.conf" not in entries(machine)


def test_files_over_1_mib_are_read_whole(machine: FakeMachine) -> None:
    big = machine.root / "etc/sysctl.d/50-big.conf"
    big.write_text("# filler\n" * 300_000 + f"{KEY} = 33\n")  # 2.7 MiB
    assert big.stat().st_size > 2 * 1024 * 1024
    machine.set(KEY, "33")
    code, doc = check_profile(machine, {KEY: 33})
    (setting,) = doc["settings"]
    assert code == 0 and setting["status"] == "ok"
    assert setting["boot"][PROCPS]["source"] == "/etc/sysctl.d/50-big.conf:300001"
    assert setting["boot"][SYSTEMD]["value"] == "33"


def test_a_file_over_the_limit_is_unknown_not_truncated(machine: FakeMachine) -> None:
    huge = machine.root / "etc/sysctl.d/50-huge.conf"
    with huge.open("w") as handle:
        handle.truncate(MAX_CONF_BYTES + 10)  # sparse: NUL bytes
    state, reason = entries(machine)["/etc/sysctl.d/50-huge.conf"]
    assert state == CONF_UNKNOWN and reason == "larger than 16 MiB; tcptune does not read it"
    machine.set(KEY, "33")
    code, doc = check_profile(machine, {KEY: 33})
    (setting,) = doc["settings"]
    assert code == 3 and setting["status"] == "unreadable" and setting["in_sync"] is None
    assert "/etc/sysctl.d/50-huge.conf: larger than 16 MiB" in setting["reason"]


def test_lib_linked_to_usr_lib_is_listed_once(machine: FakeMachine) -> None:
    (machine.root / "usr/lib/sysctl.d/50-v.conf").write_text(f"{KEY} = 34\n")
    (machine.root / "lib").symlink_to("usr/lib")
    assert [p for p in entries(machine) if p.endswith("50-v.conf")] == [
        "/usr/lib/sysctl.d/50-v.conf"
    ]


# --- check PROFILE and apply: the boot data -------------------------------------------------------


def test_check_profile_json_boot_per_loader(machine: FakeMachine) -> None:
    (machine.root / "etc/sysctl.d/10-a.conf").write_text(f"{KEY} = 0x21\n")
    (machine.root / "etc/sysctl.conf").write_text(f"{KEY} = 40 # hand-tuned\n")
    machine.set(KEY, "33")
    code, doc = check_profile(machine, {KEY: 33})
    assert doc["schema_version"] == 2
    (setting,) = doc["settings"]
    assert setting["boot"] == {
        PROCPS: {
            "value": "40",
            "source": "/etc/sysctl.conf:1",
            "unknown": None,
            "refused": [],
            "survives": False,
        },
        SYSTEMD: {
            "value": "33",
            "source": "/etc/sysctl.d/10-a.conf:1",
            "unknown": None,
            "refused": [],
            "survives": True,
        },
    }
    assert setting["boot_note"] == (
        "procps: overridden by /etc/sysctl.conf:1 (value 40); "
        "systemd: persisted by /etc/sysctl.d/10-a.conf:1"
    )
    assert setting["status"] == "drift" and code == 1


def test_apply_json_boot_per_loader(machine: FakeMachine) -> None:
    (machine.root / "usr/lib/sysctl.d/50-v.conf").write_text("net.ipv4.tcp_tw_reuse = 0\n")
    result = run_cli("--root", str(machine.root), "apply", "client-profile", "--dry-run", "--json")
    doc = json.loads(result.out)
    boot = {k["key"]: k["boot"] for k in doc["keys"]}
    reuse = boot["net.ipv4.tcp_tw_reuse"]
    assert reuse[PROCPS]["source"] == reuse[SYSTEMD]["source"] == "/etc/sysctl.d/99-tcptune.conf:5"
    assert reuse[PROCPS]["survives"] is True
    note = next(k["boot_note"] for k in doc["keys"] if k["key"] == "net.ipv4.tcp_tw_reuse")
    assert note.startswith("procps: persisted by /etc/sysctl.d/99-tcptune.conf:5")


def test_an_explicit_key_early_beats_a_glob_late(machine: FakeMachine) -> None:
    """Both loaders: no false 'overridden' when only a glob comes later."""
    (machine.root / "etc/sysctl.d/10-a.conf").write_text(f"{KEY} = 33\n")
    (machine.root / "usr/lib/sysctl.d/90-g.conf").write_text("net.ipv4.tcp_fin_* = 44\n")
    machine.set(KEY, "33")
    code, doc = check_profile(machine, {KEY: 33})
    assert code == 0 and doc["settings"][0]["boot_summary"] == "survives reboot"


def test_the_kernel_command_line_is_shown_at_boot(machine: FakeMachine) -> None:
    (machine.root / "proc/cmdline").write_text(f"ro quiet sysctl.{KEY}=25\n")
    machine.set(KEY, "25")
    code, doc = check_profile(machine, {KEY: 25})
    (setting,) = doc["settings"]
    assert code == 0, doc
    assert setting["boot"][PROCPS]["source"] == "/proc/cmdline"
    assert setting["boot_summary"] == "survives reboot (kernel command line)"
    text = run_cli("--root", str(machine.root), "check", profile(machine, {KEY: 25})).out
    assert "survives reboot (kernel command line)" in text


# --- unreadable files: unknown, naming them -------------------------------------------------------


def nobody_tree() -> Path:
    top = Path(tempfile.mkdtemp(prefix="tcptune-boot-"))  # /tmp: reachable by every user
    top.chmod(0o755)
    root = top / "root"
    modern_machine(root)
    for directory in ("etc/sysctl.d", "usr/lib/sysctl.d"):
        (root / directory).mkdir(parents=True)
    (top / "p.toml").write_text(f'description = "t"\n[sysctl]\n"{KEY}" = 33\n')
    return top


def run_as_nobody(argv: list[str]) -> list:
    import typer._click.decorators  # noqa: F401
    from conftest import as_nobody

    import tcptune.cli.check
    import tcptune.drift
    import tcptune.profiles  # noqa: F401
    from tcptune.cli.main import main

    def attempt() -> list:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(argv, stdout=out)
        return [code, out.getvalue(), err.getvalue()]

    return as_nobody(attempt)


@pytest.mark.parametrize("what", ["file", "directory"])
def test_what_another_user_cannot_read_makes_the_answer_unknown(what: str) -> None:
    """As root the vendor file overrides the key (drift); as uid 65534, who cannot read the
    0600 file (or list the 0700 directory), the answer is unknown, naming it, exit 3: never a
    false 'in sync'."""
    if os.geteuid() != 0:
        pytest.fail("needs root to drop privileges")
    top = nobody_tree()
    try:
        root = top / "root"
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (root / "proc/sys/net/ipv4/tcp_fin_timeout").write_text("33\n")
        secret = root / "usr/lib/sysctl.d/90-vendor.conf"
        secret.write_text(f"{KEY} = 60\n")
        if what == "file":
            secret.chmod(0o600)
            named = "/usr/lib/sysctl.d/90-vendor.conf: permission denied"
        else:
            secret.parent.chmod(0o700)
            named = "cannot list /usr/lib/sysctl.d: permission denied"
        argv = ["--root", str(root), "check", str(top / "p.toml"), "--json"]
        assert run_cli(*argv).code == 1  # root reads the file: overridden
        code, out_text, err = run_as_nobody(argv)
        doc = json.loads(out_text)
        (setting,) = doc["settings"]
        assert code == 3, err
        assert setting["status"] == "unreadable" and doc["in_sync"] is False
        assert named in setting["reason"] and "run as root" in setting["reason"]
        assert setting["boot"][PROCPS]["unknown"] and setting["boot"][PROCPS]["value"] is None
        assert setting["boot"][PROCPS]["survives"] is None
    finally:
        for path in [top, *top.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(top)


# --- tcp_tw_recycle left in a file ----------------------------------------------------------------


def recycle_findings(machine: FakeMachine) -> list[str]:
    doc = json.loads(run_cli("--root", str(machine.root), "check", "--json").out)
    return [
        f["message"]
        for f in doc["findings"]
        if f["key"] == "net.ipv4.tcp_tw_recycle" and "sets tcp_tw_recycle" in f["message"]
    ]


def test_a_leftover_line_says_what_each_loader_does(machine: FakeMachine) -> None:
    (machine.root / "etc/sysctl.d/10-blog.conf").write_text("net.ipv4.tcp_tw_recycle = 1\n")
    (message,) = recycle_findings(machine)
    assert message == (
        "/etc/sysctl.d/10-blog.conf:1 sets tcp_tw_recycle = 1, which this kernel does not have "
        "(removed in 4.12). At boot procps `sysctl --system` skips it without a word (its exit "
        "status stays 0); systemd-sysctl logs \"Couldn't write '1' to 'net/ipv4/tcp_tw_recycle', "
        'ignoring: No such file or directory" and exits 0. `sysctl -p /etc/sysctl.d/10-blog.conf` '
        'fails on it ("cannot stat /proc/sys/net/ipv4/tcp_tw_recycle", exit 1). Delete the line.'
    )


def test_a_leftover_line_with_a_dash_and_in_sysctl_conf(machine: FakeMachine) -> None:
    (machine.root / "etc/sysctl.d/10-blog.conf").write_text("-net.ipv4.tcp_tw_recycle = 1\n")
    (machine.root / "etc/sysctl.conf").write_text("net.ipv4.tcp_tw_recycle = 0\n")
    dash, conf = recycle_findings(machine)
    assert "systemd-sysctl skips it silently (the '-' prefix) and exits 0" in dash
    assert "procps `sysctl --system` skips it without a word" in conf
    assert "systemd-sysctl does not read it" in conf


def test_a_leftover_line_in_a_masked_file_is_not_reported(machine: FakeMachine) -> None:
    (machine.root / "usr/lib/sysctl.d/50-old.conf").write_text("net.ipv4.tcp_tw_recycle = 1\n")
    (machine.root / "etc/sysctl.d/50-old.conf").symlink_to("/dev/null")
    assert recycle_findings(machine) == []


def test_strict_summary_and_exit_code_agree(machine: FakeMachine) -> None:
    (machine.root / "etc/sysctl.d/10-blog.conf").write_text("net.ipv4.tcp_tw_recycle = 1\n")
    root = str(machine.root)
    plain = run_cli("--root", root, "check", "--json")
    strict = run_cli("--root", root, "check", "--json", "--strict")
    for result, code in ((plain, 0), (strict, 1)):
        doc = json.loads(result.out)
        assert result.code == doc["exit_code"] == code
        assert doc["summary"]["findings"]["warning"] == 1
        assert doc["summary"]["findings"]["error"] == 0
    text = run_cli("--root", root, "check", "--strict").out
    assert "Findings: 1 warning" in text and "Exit 1." in text
    assert "Exit 1: --strict and 1 warning-level finding; see above." in text
    machine.set(KEY, "60")
    path = profile(machine, {KEY: 60})
    result = run_cli("--root", root, "check", path, "--strict")
    assert result.code == 1
    assert "in sync. Findings: 1 warning" in result.out
    assert "Exit 1: --strict and 1 warning-level finding; see above." in result.out
    doc = json.loads(run_cli("--root", root, "check", path, "--strict", "--json").out)
    assert doc["in_sync"] is True and doc["exit_code"] == 1
    assert doc["summary"]["findings"]["warning"] == 1


def test_the_model_refuses_questions_it_was_not_built_for() -> None:
    model = sysctld.BootModel([], keys=[KEY])
    assert model.answer(KEY, PROCPS).value is None
    with pytest.raises(ValueError, match="not among the keys"):
        model.answer("net.ipv4.tcp_rmem", PROCPS)
