"""The claims of docs/security.md, enforced."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml
from conftest import FakeMachine, run_cli, run_tcptune

from tcptune import profiles
from tcptune.system import System


@pytest.fixture
def machine(modern: FakeMachine) -> FakeMachine:
    (modern.root / "etc/sysctl.d").mkdir(parents=True)
    return modern


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000])
def test_file_modes_do_not_depend_on_the_umask(machine: FakeMachine, umask: int) -> None:
    old = os.umask(umask)
    try:
        assert run_cli("--root", str(machine.root), "apply", "client-profile").code == 0
    finally:
        os.umask(old)
    assert mode(machine.root / "etc/sysctl.d/99-tcptune.conf") == 0o644
    backups = machine.root / "var/lib/tcptune/backups"
    assert mode(backups) == 0o700
    assert mode(backups.parent) == 0o700
    assert [mode(p) for p in backups.iterdir()] == [0o600]
    assert mode(backups.parent / "lock") == 0o600


def test_revert_restores_the_drop_in_mode(machine: FakeMachine) -> None:
    drop_in = machine.root / "etc/sysctl.d/99-tcptune.conf"
    drop_in.write_text("# Managed by tcptune: profile old\nnet.ipv4.tcp_fin_timeout = 40\n")
    os.chmod(drop_in, 0o600)
    assert run_cli("--root", str(machine.root), "apply", "client-profile").code == 0
    assert mode(drop_in) == 0o644
    assert run_cli("--root", str(machine.root), "revert").code == 0
    assert mode(drop_in) == 0o600


def test_runtime_writes_never_follow_a_symlink(machine: FakeMachine, tmp_path: Path) -> None:
    """A planted link in /proc/sys of a fake root must not turn root's write into a write
    elsewhere."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    key = machine.root / "proc/sys/net/ipv4/tcp_tw_reuse"
    key.unlink()
    key.symlink_to(victim)
    result = run_cli(
        "--root", str(machine.root), "apply", "client-profile", "--runtime-only", "--json"
    )
    assert result.code == 3
    assert victim.read_text() == "precious\n"


def test_writes_never_follow_a_symlinked_directory(machine: FakeMachine, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sysctl_d = machine.root / "etc/sysctl.d"
    sysctl_d.rmdir()
    sysctl_d.symlink_to(elsewhere)
    result = run_cli("--root", str(machine.root), "apply", "client-profile")
    assert result.code == 2
    assert list(elsewhere.iterdir()) == []


def test_profiles_others_can_change_are_refused_as_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the rule applies to root") if not os.environ.get("CI") else pytest.fail(
            "CI runs as root"
        )
    good = tmp_path / "good.toml"
    good.write_text('description = "g"\n')
    assert profiles.read_file(good).problems == []
    os.chmod(good, 0o620)
    assert "writable by group or others" in str(profiles.read_file(good).problems[0])
    os.chmod(good, 0o644)
    os.chown(good, 1000, 0)
    assert "not root" in str(profiles.read_file(good).problems[0])
    os.chown(good, 0, 0)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    planted = shared / "p.toml"
    planted.write_text('description = "p"\n')
    assert "could be replaced" in str(profiles.read_file(planted).problems[0])
    os.chmod(shared, 0o1777)  # sticky, like /tmp: others cannot replace root's file
    assert profiles.read_file(planted).problems == []


def test_backup_contents_are_validated_before_use(machine: FakeMachine) -> None:
    """A backup is input too: a path or key in it outside what tcptune writes is refused."""
    import json

    assert run_cli("--root", str(machine.root), "apply", "client-profile").code == 0
    (path,) = (machine.root / "var/lib/tcptune/backups").glob("*.json")
    data = json.loads(path.read_text())
    for field, value, message in [
        ("drop_in.path", "/etc/sysctl.d/../../root/.ssh/authorized_keys", "plain file name"),
        ("runtime.key", "kernel.core_pattern", "not a network key"),
    ]:
        edited = json.loads(json.dumps(data))
        if field == "drop_in.path":
            edited["drop_in"]["path"] = value
        else:
            edited["runtime"][0]["key"] = value
        path.write_text(json.dumps(edited))
        from tcptune.errors import BadInput
        from tcptune.transaction import load_backup

        with pytest.raises(BadInput, match=message):
            load_backup(System(machine.root), data["id"])


HOSTILE_NAMES = [
    "evil\nkernel.core_pattern = |bin\n",  # a newline starts a line of its own
    "evil\rkernel.core_pattern = |bin\r",  # carriage return
    "evil\x0bfs.suid_dumpable = 2\x0c",  # vertical tab, form feed
    "evil\u2028kernel.modprobe = x\u2029",  # Unicode line and paragraph separators
    "evil\x1b[2Jkernel.sysrq = 1",  # a terminal escape
]
ASSIGNMENT = __import__("re").compile(r"-?net\.(ipv4|ipv6|core)(\.[A-Za-z0-9_-]+)+ = \S.*")


def lines_a_loader_could_read(text: str) -> list[str]:
    """Every line of `text` split at anything any reader might take for a line break (a superset
    of what procps and systemd-sysctl split on), blank lines and comments left out."""
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith(("#", ";"))]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_names_and_paths_never_reach_a_drop_in_as_lines(machine: FakeMachine, name: str) -> None:
    """A profile whose file name holds line breaks: the drop-in apply writes and every export
    hold only network key assignments and tcptune's own comment lines."""
    folder = machine.root / "profiles-in"
    folder.mkdir()
    path = folder / f"{name}.toml"
    path.write_text('description = "x"\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = 30\n')
    assert run_cli("--root", str(machine.root), "apply", str(path)).code == 0
    written = (machine.root / "etc/sysctl.d/99-tcptune.conf").read_text()
    assert lines_a_loader_could_read(written) == ["net.ipv4.tcp_fin_timeout = 30"]
    out = {}
    for fmt in ("sysctl", "k8s", "docker", "ansible"):
        result = run_cli("--root", str(machine.root), "export", str(path), "--format", fmt)
        assert result.code == 0
        assert not any(ch in result.out for ch in "\r\x0b\x0c\x1b\u2028\u2029"), fmt
        out[fmt] = result.out
    assert [
        ASSIGNMENT.fullmatch(line) is not None for line in lines_a_loader_could_read(out["sysctl"])
    ] == [True]
    # what the YAML consumers would set: the profile's one network key, nothing else
    k8s = yaml.safe_load(out["k8s"])
    assert [s["name"] for s in k8s["securityContext"]["sysctls"]] == ["net.ipv4.tcp_fin_timeout"]
    tasks = yaml.safe_load(out["ansible"])
    assert [t["ansible.posix.sysctl"]["name"] for t in tasks] == ["net.ipv4.tcp_fin_timeout"]
    compose = yaml.safe_load(out["docker"].split("# docker compose")[1].split("\n", 1)[1])
    assert list(compose["services"]["app"]["sysctls"]) == ["net.ipv4.tcp_fin_timeout"]


@pytest.mark.parametrize(
    "line",
    ["kernel.core_pattern = |x", "net.ipv4.x = 1\nkernel.sysrq = 1", "net.ipv4.a b = 1", "junk"],
)
def test_a_line_that_is_not_a_network_assignment_never_reaches_a_drop_in(line: str) -> None:
    from tcptune.model import only_network_assignments

    with pytest.raises(ValueError, match="not ours"):
        only_network_assignments(["# Managed by tcptune", line])


def snapshot_tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    return {
        str(p.relative_to(root)): (p.lstat().st_mode, None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize(
    ("argv", "unreadable"),
    [
        (["backups"], "var/lib/tcptune/backups"),
        (["revert", "--dry-run"], "var/lib/tcptune/backups"),
        (["revert", "--dry-run", "--json"], "var/lib/tcptune/backups"),
        (["check", "server-profile"], "etc/tcptune/profiles"),
        (["profiles", "list"], "etc/tcptune/profiles"),
        (["export", "client-profile", "--format", "sysctl"], "etc/tcptune/profiles"),
        # 0711: files can be looked up but not listed; a listing is never silently empty
        (["profiles", "list"], "etc/tcptune/profiles 0711"),
    ],
)
def test_root_only_directories_are_reported_to_other_users(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], unreadable: str
) -> None:
    """An unprivileged user (uid 65534) meeting root's 0700 backup or profile directory gets one
    line naming it, exit 3: not an empty answer, not a traceback, and nothing changes."""
    import contextlib
    import io
    import shutil
    import tempfile

    import typer._click.decorators  # noqa: F401
    from conftest import as_nobody, modern_machine

    import tcptune.cli.backups
    import tcptune.cli.check
    import tcptune.cli.export
    import tcptune.cli.profiles
    import tcptune.cli.revert  # noqa: F401
    from tcptune.cli.main import main

    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges") if not os.environ.get("CI") else pytest.fail(
            "needs root on CI"
        )
    top = Path(tempfile.mkdtemp(prefix="tcptune-nobody-"))  # /tmp: reachable by every user
    try:
        top.chmod(0o755)
        root = top / "root"
        modern_machine(root)
        (root / "etc/sysctl.d").mkdir(parents=True)
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        # The shipped profiles, copied where every user may read them: the checkout itself may
        # sit in a 0700 directory (a clone under /root), and that is not what this is about.
        shipped = top / "shipped"
        shutil.copytree(profiles.shipped_dir(), shipped)
        for path in [shipped, *shipped.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        monkeypatch.setattr(profiles, "shipped_dir", lambda: shipped)
        assert main(["--root", str(root), "apply", "client-profile"], stdout=io.StringIO()) == 0
        unreadable, _, mode = unreadable.partition(" ")
        (root / "etc/tcptune/profiles").mkdir(parents=True)
        (root / "etc/tcptune/profiles").chmod(int(mode or "700", 8))
        before = snapshot_tree(root)

        def attempt() -> list:
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main(["--root", str(root), *argv], stdout=out)
            return [code, err.getvalue()]

        code, err = as_nobody(attempt)
        assert code == 3, err
        assert err.startswith("tcptune: error: ") and err.count("\n") == 1, err
        assert str(root / unreadable) in err and "Permission denied" in err, err
        assert snapshot_tree(root) == before
    finally:
        shutil.rmtree(top)


@pytest.mark.parametrize("argv", [["backups"], ["backups", "--json"], ["revert", "--dry-run"]])
def test_read_only_commands_change_nothing(machine: FakeMachine, argv: list[str]) -> None:
    """backups and revert --dry-run only read: a backup directory whose mode someone changed
    is left as it is (apply, which writes there, is what makes it private again)."""
    assert run_cli("--root", str(machine.root), "apply", "client-profile").code == 0
    backups = machine.root / "var/lib/tcptune/backups"
    backups.chmod(0o750)
    before = snapshot_tree(machine.root)
    assert run_cli("--root", str(machine.root), *argv).code == 0
    assert snapshot_tree(machine.root) == before


@pytest.mark.parametrize(
    "argv",
    [["profiles", "show"], ["check"], ["apply", "--dry-run"], ["profiles", "validate"]],
    ids=lambda argv: " ".join(argv),
)
def test_control_characters_in_a_profile_path_never_reach_the_terminal(
    machine: FakeMachine, argv: list[str]
) -> None:
    """A profile file named with an escape sequence and a newline: every line of the human output
    shows them escaped (no colour change, no cursor move, no line of its own)."""
    folder = machine.root / "profiles-in"
    folder.mkdir()
    path = folder / "x\x1b[31mred\nfake.toml"
    path.write_text('description = "x"\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = 30\n')
    result = run_cli("--root", str(machine.root), *argv, str(path))
    assert result.code in (0, 1), result.out
    assert "\x1b" not in result.out
    assert "\\x1b[31mred\\nfake" in result.out


def test_what_is_checked_is_what_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile reached through a link that its owner re-points between the check and the
    read: tcptune reads the link once, on the descriptor it opened, then checks (fstat) and reads
    the one file it opened, so a swap right after that changes nothing; pointed at the user's
    file from the start, it is refused."""
    if os.geteuid() != 0:
        pytest.skip("needs root") if not os.environ.get("CI") else pytest.fail("needs root on CI")
    import tcptune.system

    trusted_dir = tmp_path / "root-owned"
    trusted_dir.mkdir(mode=0o755)
    trusted = trusted_dir / "a.toml"
    trusted.write_text('description = "root\'s"\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = 30\n')
    trusted.chmod(0o644)
    theirs = tmp_path / "theirs.toml"
    theirs.write_text('description = "theirs"\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = 5\n')
    os.chown(theirs, 65534, 65534)
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    link = sticky / "p.toml"
    link.symlink_to(trusted)
    real_readlink = tcptune.system.os.readlink

    def readlink_then_swap(path, *args, **kwargs):
        target = real_readlink(path, *args, **kwargs)
        if target == str(trusted):
            link.unlink()
            link.symlink_to(theirs)  # the owner re-points the link at once
        return target

    monkeypatch.setattr(tcptune.system.os, "readlink", readlink_then_swap)
    loaded = profiles.read_file(link)
    assert loaded.problems == []
    assert loaded.sysctl == {"net.ipv4.tcp_fin_timeout": "30"}
    assert os.readlink(link) == str(theirs)  # the swap did happen
    monkeypatch.undo()
    refused = profiles.read_file(link)  # now pointing at the user's file from the start
    assert refused.problems and "owned by uid 65534" in refused.problems[0].message


@pytest.mark.parametrize("kind", ["owner", "mode", "directory"])
def test_a_profile_others_could_change_is_refused_with_the_fix_not_as_invalid(
    tmp_path: Path, kind: str
) -> None:
    """Root refuses a profile another user could change; the message says what is wrong with
    its ownership or mode and the chown/chmod that fixes it, not "invalid profile"."""
    directory = tmp_path / "profiles"
    directory.mkdir()
    os.chmod(tmp_path, 0o755)
    path = directory / "site.toml"
    path.write_text('description = "x"\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = 30\n')
    if kind == "owner":
        os.chown(path, 65534, 65534)
        fix = f"chown root {path}"
    elif kind == "mode":
        os.chmod(path, 0o666)
        fix = f"chmod go-w {path}"
    else:
        os.chown(directory, 65534, 65534)
        fix = f"chown root {directory}"
    done = run_tcptune("check", str(path))
    assert done.returncode == 2
    assert done.stderr.startswith(f"tcptune: error: refusing profile {path}: ")
    assert fix in done.stderr
    assert "invalid profile" not in done.stderr and "profiles validate" not in done.stderr
    assert done.stderr.count("\n") == 1
