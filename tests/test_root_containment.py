"""--root contains every read and write (docs/security.md, "Below the root").

A tree below --root whose etc/, etc/sysctl.d, etc/tcptune, var/, var/lib/tcptune, proc/ or
proc/sys/net/ipv4 is a symlink out of it, to a sentinel tree elsewhere in the temporary
directory that holds what tcptune would otherwise read and write there: every command either
works inside the root or stops with one clear line, and the sentinel tree is left byte for byte,
mode for mode and mtime for mtime as it was. Links inside the root are followed as a chroot
would; a link is never followed as the file written or the directory holding it; a directory
swapped for a link while tcptune works cannot redirect it (real races, driven by a thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import shutil
import stat
import threading
import time
from pathlib import Path

import pytest
from conftest import modern_machine

from tcptune import profiles
from tcptune.cli.main import main
from tcptune.errors import BadInput
from tcptune.system import System, atomic_write, read_conf_files, read_text_under_root

COMPONENTS = [
    "etc",
    "etc/sysctl.d",
    "etc/tcptune",
    "var",
    "var/lib/tcptune",
    "proc",
    "proc/sys/net/ipv4",
]
COMMANDS = {
    "apply": ["apply", "server-profile"],
    "apply-runtime": ["apply", "server-profile", "--runtime-only"],
    "revert": ["revert"],
    "capture": ["profiles", "capture", "golden", "--force"],
    "check": ["check"],
    "check-profile": ["check", "server-profile", "--json"],
    "backups": ["backups"],
}


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(argv), stdout=out)
    return code, out.getvalue(), err.getvalue()


def snapshot(top: Path) -> dict[str, tuple]:
    """Every entry below `top`, not following links: type and mode, owner, mtime (ns), and
    the bytes of files or the target of links."""
    found = {}
    for path in [top, *sorted(top.rglob("*"))]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            content: bytes | str | None = os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            content = path.read_bytes()
        else:
            content = None
        found[str(path.relative_to(top))] = (info.st_mode, info.st_uid, info.st_mtime_ns, content)
    return found


def target_for(style: str, link: Path, destination: Path) -> str:
    if style == "absolute":
        return str(destination)
    if style == "relative":  # climbs out of the root with ..
        return os.path.relpath(destination, link.parent)
    return "/../../../.." + str(destination)  # absolute, with .. above /


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A machine below root/ on which client-profile was applied once (so there is a drop-in,
    a backup, a lock and a captured profile), and an empty sentinel/ beside it."""
    root = tmp_path / "root"
    modern_machine(root)
    (root / "etc/sysctl.d").mkdir(parents=True)
    assert run("--root", str(root), "apply", "client-profile")[0] == 0
    assert run("--root", str(root), "profiles", "capture", "golden")[0] == 0
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    return root, sentinel


def plant(root: Path, sentinel: Path, component: str, style: str) -> None:
    """Move root/COMPONENT to sentinel/COMPONENT and leave a link to it in its place."""
    moved = sentinel / component
    moved.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(root / component, moved)
    link = root / component
    link.symlink_to(target_for(style, link, moved))


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("style", ["absolute", "relative", "dotdot"])
@pytest.mark.parametrize("component", COMPONENTS)
def test_a_link_out_of_the_root_takes_nothing_out(
    tree: tuple[Path, Path], component: str, style: str, command: str
) -> None:
    root, sentinel = tree
    plant(root, sentinel, component, style)
    before = snapshot(sentinel)
    code, out, err = run("--root", str(root), *COMMANDS[command])
    assert snapshot(sentinel) == before, (code, out, err)
    assert "Traceback" not in out + err
    if err:  # one clear line
        assert code >= 2 and err.startswith("tcptune: error: ") and err.count("\n") == 1, err
    else:  # done inside the root; keys it could not reach there are reported, one by one
        assert code in (0, 1) or (code == 3 and "failed " in out), (code, out)
    if command == "check-profile" and code < 2:
        # what was read came from inside the root: a key read through proc/ now is missing
        assert str(sentinel) not in out


@pytest.mark.parametrize("style", ["absolute", "relative", "dotdot"])
def test_what_the_commands_say_with_links_out(tree: tuple[Path, Path], style: str) -> None:
    """The answers, not only the absence of damage: the link is named, or the command works on
    what is inside the root."""
    root, sentinel = tree
    plant(root, sentinel, "var", style)
    code, _, err = run("--root", str(root), "apply", "server-profile")
    assert code == 2 and f"{root}/var is a symlink to" in err and "does not exist inside" in err
    code, out, _ = run("--root", str(root), "backups")
    assert code == 0 and "no backups yet" in out  # the backups outside are not listed

    (root / "var").unlink()
    shutil.move(sentinel / "var", root / "var")
    plant(root, sentinel, "etc/sysctl.d", style)
    code, _, err = run("--root", str(root), "apply", "server-profile")
    assert code == 2 and f"{root}/etc/sysctl.d" in err and "does not exist inside" in err
    # The backup made before the drop-in's directory was met is gone again: only the first.
    assert len(list((root / "var/lib/tcptune/backups").iterdir())) == 1
    code, out, _ = run("--root", str(root), "check", "--json")
    assert code in (0, 1) and "99-tcptune.conf" not in out  # the drop-in outside is not read


def test_links_inside_the_root_are_followed_as_in_a_chroot(tmp_path: Path) -> None:
    """An image of a machine whose etc/ is a link (absolute, as on the machine itself) to
    usr/etc: reads and writes go there, inside the root; the written file's directory and the
    file itself are never links."""
    root = tmp_path / "root"
    modern_machine(root)
    (root / "usr/etc/sysctl.d").mkdir(parents=True)
    (root / "usr/etc/sysctl.d/10-vendor.conf").write_text("net.ipv4.tcp_fin_timeout = 33\n")
    (root / "etc").symlink_to("/usr/etc")  # on the host: /usr/etc, not the root's
    system = System(root)
    assert [f.path for f in read_conf_files(system)] == ["/etc/sysctl.d/10-vendor.conf"]
    assert run("--root", str(root), "apply", "client-profile")[0] == 0
    assert (root / "usr/etc/sysctl.d/99-tcptune.conf").read_text().startswith("# Managed by")
    assert run("--root", str(root), "revert")[0] == 0
    assert not (root / "usr/etc/sysctl.d/99-tcptune.conf").exists()

    (root / "usr/etc/sysctl.d").rename(root / "usr/etc/real.d")
    (root / "usr/etc/sysctl.d").symlink_to("real.d")  # the drop-in's own directory: a link
    code, _, err = run("--root", str(root), "apply", "client-profile")
    assert code == 2 and f"{root}/usr/etc/sysctl.d is a symlink" in err
    assert sorted(p.name for p in (root / "usr/etc/real.d").iterdir()) == ["10-vendor.conf"]


def test_an_absolute_target_with_dotdot_is_read_inside_the_root(tmp_path: Path) -> None:
    """`/../../../../SENTINEL` names the sentinel on the host; below --root it is the root's
    own SENTINEL path, and `..` never climbs above the root."""
    root = tmp_path / "root"
    modern_machine(root)
    outside = tmp_path / "outside.conf"
    outside.write_text("net.ipv4.tcp_fin_timeout = 5\n")
    inside = root / str(outside).lstrip("/")  # the same path, below the root
    inside.parent.mkdir(parents=True)
    inside.write_text("net.ipv4.tcp_fin_timeout = 7\n")
    sysctl_d = root / "etc/sysctl.d"
    sysctl_d.mkdir(parents=True)
    (sysctl_d / "50-up.conf").symlink_to("/../../../.." + str(outside))
    (sysctl_d / "60-rel.conf").symlink_to("../../../../../../../.." + str(outside))
    (sysctl_d / "70-null.conf").symlink_to("/dev/null")  # a mask, as the loaders take it
    system = System(root)
    texts = {f.name: f.text for f in read_conf_files(system)}
    assert texts == {
        "50-up.conf": "net.ipv4.tcp_fin_timeout = 7\n",
        "60-rel.conf": "net.ipv4.tcp_fin_timeout = 7\n",
        "70-null.conf": "",
    }
    assert read_text_under_root(system, "etc/sysctl.d/50-up.conf") == texts["50-up.conf"]
    inside.unlink()
    assert read_text_under_root(system, "etc/sysctl.d/50-up.conf") is None  # not the host's


def test_a_link_loop_ends(tmp_path: Path) -> None:
    root = tmp_path / "root"
    modern_machine(root)
    (root / "etc").mkdir()
    (root / "etc/sysctl.d").symlink_to("sysctl.d")
    (root / "etc/a").symlink_to("b")
    (root / "etc/b").symlink_to("/etc/a")
    system = System(root)
    assert read_text_under_root(system, "etc/sysctl.d/x.conf") is None
    assert read_text_under_root(system, "etc/a") is None
    # the looping directory cannot be listed: what it would set at boot is unknown, and said so
    (entry,) = read_conf_files(system)
    assert (entry.path, entry.state) == ("/etc/sysctl.d", "unknown")
    assert "too many levels of symbolic links" in entry.reason
    code, _, err = run("--root", str(root), "apply", "client-profile")
    assert code == 3 and "99-tcptune.conf: Too many levels of symbolic links" in err


# --- races: a directory swapped for a link while tcptune works ---------------------------------

RENAME_EXCHANGE = 2
AT_FDCWD = -100


def exchange(a: Path, b: Path) -> None:
    """renameat2(RENAME_EXCHANGE): the two names swap at once, neither ever missing."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) != 0:
        errno_ = ctypes.get_errno()
        raise OSError(errno_, os.strerror(errno_), str(a))


class Swapper(threading.Thread):
    """Swaps `directory` between the directory it is and a link to `elsewhere`, as fast as it
    can, until stopped (and at most `limit` times)."""

    def __init__(self, directory: Path, elsewhere: Path, limit: int = 200_000) -> None:
        super().__init__(daemon=True)
        self.directory = directory
        self.spare = directory.with_name(directory.name + ".spare")
        self.spare.symlink_to(elsewhere)
        self.limit = limit
        self.done = threading.Event()
        self.swaps = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.done.is_set() and self.swaps < self.limit:
                exchange(self.directory, self.spare)
                self.swaps += 1
        except BaseException as err:  # reported by stop(), in the test's thread
            self.error = err

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=30)
        if self.error is not None:
            raise self.error
        assert self.swaps > 0
        if self.directory.is_symlink():  # leave the directory in its place
            exchange(self.directory, self.spare)


def race(
    attempt, swapper: Swapper, wanted: set[str], rounds: int = 20_000, seconds: float = 30.0
) -> dict:
    """Run `attempt()` while `swapper` swaps, until each outcome in `wanted` was seen 50 times
    (at most `rounds` attempts and `seconds`); count what happened."""
    outcomes: dict[str, int] = {}
    swapper.start()
    deadline = time.monotonic() + seconds
    try:
        for _ in range(rounds):
            result = attempt()
            outcomes[result] = outcomes.get(result, 0) + 1
            if time.monotonic() > deadline or all(outcomes.get(w, 0) >= 50 for w in wanted):
                break
    finally:
        swapper.stop()
    return outcomes


def test_a_directory_swapped_for_a_link_cannot_redirect_a_write(tmp_path: Path) -> None:
    root = tmp_path / "root"
    sysctl_d = root / "etc/sysctl.d"
    sysctl_d.mkdir(parents=True)
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    before = snapshot(sentinel)
    drop_in = System(root).path("etc/sysctl.d/99-tcptune.conf")

    def attempt() -> str:
        try:
            atomic_write(drop_in, b"net.ipv4.tcp_fin_timeout = 30\n")
            return "written"
        except BadInput:
            return "refused"  # the walk met the link
        except Exception as err:  # the outcome is what is counted
            return type(err).__name__

    outcomes = race(attempt, Swapper(sysctl_d, sentinel), {"written", "refused"})
    assert snapshot(sentinel) == before, outcomes
    assert set(outcomes) <= {"written", "refused"}, outcomes
    assert outcomes.get("written", 0) > 0 and outcomes.get("refused", 0) > 0, outcomes
    assert [p.name for p in sysctl_d.iterdir()] == ["99-tcptune.conf"]


def test_a_directory_swapped_for_a_link_cannot_redirect_a_runtime_write(tmp_path: Path) -> None:
    root = tmp_path / "root"
    modern_machine(root)
    ipv4 = root / "proc/sys/net/ipv4"
    sentinel = tmp_path / "sentinel"
    shutil.copytree(ipv4, sentinel)
    before = snapshot(sentinel)
    system = System(root)

    def attempt() -> str:
        from tcptune.system import SysctlWriteError

        try:
            system.write_sysctl("net.ipv4.tcp_fin_timeout", "31")
            return "written"
        except SysctlWriteError as err:
            return "refused" if "symlink" in err.reason else err.reason

    outcomes = race(attempt, Swapper(ipv4, sentinel), {"written", "refused"})
    assert snapshot(sentinel) == before, outcomes
    assert set(outcomes) <= {"written", "refused"}, outcomes
    assert outcomes.get("written", 0) > 0 and outcomes.get("refused", 0) > 0, outcomes


def test_a_directory_swapped_for_a_link_cannot_redirect_a_read(tmp_path: Path) -> None:
    root = tmp_path / "root"
    sysctl_d = root / "etc/sysctl.d"
    sysctl_d.mkdir(parents=True)
    (sysctl_d / "10-a.conf").write_text("inside\n")
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "10-a.conf").write_text("outside\n")
    system = System(root)

    def attempt() -> str:
        return repr(read_text_under_root(system, "etc/sysctl.d/10-a.conf"))

    outcomes = race(attempt, Swapper(sysctl_d, sentinel), {"'inside\\n'", "None"})
    # Through the link the walk looks for the sentinel's path below the root: nothing there.
    assert set(outcomes) <= {"'inside\\n'", "None"}, outcomes
    assert outcomes.get("'inside\\n'", 0) > 0, outcomes


def test_the_write_lands_in_the_directory_that_was_walked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap at the worst moment, every time: right after the walk opened etc/sysctl.d,
    the name is given to a link out of the root. The file is still written into the directory
    the walk holds (now under its other name), not through the link."""
    import tcptune.system

    root = tmp_path / "root"
    sysctl_d = root / "etc/sysctl.d"
    sysctl_d.mkdir(parents=True)
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    spare = root / "etc/spare"
    spare.symlink_to(sentinel)
    real_open = tcptune.system.os.open
    swapped = []

    def open_then_swap(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if path == "sysctl.d" and not swapped:
            exchange(sysctl_d, spare)  # etc/sysctl.d is now the link, etc/spare the directory
            swapped.append(True)
        return fd

    monkeypatch.setattr(tcptune.system.os, "open", open_then_swap)
    atomic_write(System(root).path("etc/sysctl.d/99-tcptune.conf"), b"x = 1\n")
    monkeypatch.undo()
    assert swapped and sysctl_d.is_symlink()
    assert list(sentinel.iterdir()) == []
    assert (spare / "99-tcptune.conf").read_bytes() == b"x = 1\n"


# --- extends ---------------------------------------------------------------------------------


def write_profile(path: Path, extends: str, value: int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'description = "p"\nextends = "{extends}"\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = {value}\n'
    )
    return path


@pytest.mark.parametrize(
    ("extends", "message"),
    [
        ("/etc/tcptune/profiles/base.toml", "is an absolute path, which a parent may not be"),
        ("../base.toml", "would leave this profile's directory with '..'"),
        ("sub/../../base.toml", "would leave this profile's directory with '..'"),
        ("a\\u0000.toml", "contains a NUL byte"),
    ],
)
def test_extends_cannot_leave_the_profile_directory(
    tmp_path: Path, extends: str, message: str
) -> None:
    root = tmp_path / "root"
    modern_machine(root)
    write_profile(tmp_path / "base.toml", "server-profile")
    child = write_profile(root / "etc/tcptune/profiles/child.toml", extends)
    for argv in (["check", "child"], ["check", str(child)], ["apply", "child", "--dry-run"]):
        code, out, err = run("--root", str(root), *argv)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, out, err)


def test_extends_by_path_stays_in_the_directory_even_through_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    modern_machine(root)
    local = root / "etc/tcptune/profiles"
    write_profile(local / "lib/base.toml", "server-profile", 40)
    write_profile(local / "child.toml", "lib/base.toml")
    profile = profiles.load("child", root)
    assert profile.chain == ["child", "base", "server-profile"]
    # A link in the directory that points out of it is walked inside it: nothing there.
    outside = write_profile(tmp_path / "outside.toml", "server-profile", 50)
    (local / "lib/base.toml").unlink()
    (local / "lib/base.toml").symlink_to(outside)
    code, _, err = run("--root", str(root), "check", "child")
    assert code == 2 and "parent 'lib/base.toml' does not exist" in err
    (local / "lib/base.toml").unlink()
    (local / "lib/base.toml").symlink_to("../../../../../../../../.." + str(outside))
    code, _, err = run("--root", str(root), "check", "child")
    assert code == 2 and "parent 'lib/base.toml' does not exist" in err
    (local / "lib/base.toml").unlink()
    (local / "lib/base.toml").symlink_to("../shared.toml")  # inside the directory: fine
    write_profile(local / "shared.toml", "server-profile", 45)
    assert profiles.load("child", root).sysctl["net.ipv4.tcp_fin_timeout"] == "30"
    assert profiles.load("child", root).origin["net.ipv4.tcp_fin_timeout"] == "child"


# --- every directory on the way to a profile, as root ----------------------------------------


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the rule applies to root") if not os.environ.get("CI") else pytest.fail(
            "CI runs as root"
        )


def test_every_directory_on_the_way_is_judged(tmp_path: Path) -> None:
    needs_root()
    top = tmp_path / "top"
    deep = top / "a/b"
    deep.mkdir(parents=True)
    for directory in (top, top / "a", deep):
        directory.chmod(0o755)
    profile = deep / "p.toml"
    profile.write_text('description = "p"\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = 30\n')
    profile.chmod(0o644)
    assert profiles.read_file(profile).problems == []

    os.chown(top / "a", 65534, 65534)  # a user's directory two levels up
    (problem,) = profiles.read_file(profile).problems
    assert f"directory {top / 'a'} on the way to it is owned by uid 65534" in str(problem)
    os.chown(top / "a", 0, 0)

    (top / "a").chmod(0o775)  # group-writable, no sticky bit
    (problem,) = profiles.read_file(profile).problems
    assert f"directory {top / 'a'} on the way to it is writable by group or others" in str(problem)
    assert "mode 0775" in str(problem)
    (top / "a").chmod(0o1777)  # sticky, like /tmp: others cannot replace root's entries
    assert profiles.read_file(profile).problems == []

    link = top / "a/link.toml"  # a link in that sticky directory, made by another user
    link.symlink_to(profile)
    os.chown(link, 65534, 65534, follow_symlinks=False)
    (problem,) = profiles.read_file(link).problems
    assert f"the symlink {link} on the way to it is owned by uid 65534" in str(problem)
    os.chown(link, 0, 0, follow_symlinks=False)
    assert profiles.read_file(link).problems == []


def test_the_rule_covers_the_local_profiles_and_the_directories_above_the_root(
    tmp_path: Path,
) -> None:
    needs_root()
    top = tmp_path / "top"
    root = top / "root"
    modern_machine(root)
    for path in [top, *top.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    write_profile(root / "etc/tcptune/profiles/mine.toml", "server-profile").chmod(0o644)
    (root / "etc/tcptune/profiles").chmod(0o755)
    assert run("--root", str(root), "check", "mine", "--json")[0] in (0, 1)
    os.chown(top, 65534, 65534)  # the directory that holds the root belongs to a user
    code, _, err = run("--root", str(root), "check", "mine")
    assert code == 2 and f"directory {top} on the way to it is owned by uid 65534" in err
    os.chown(top, 0, 0)
    (root / "etc").chmod(0o777)
    code, _, err = run("--root", str(root), "check", "mine")
    assert code == 2 and f"directory {root}/etc on the way to it is writable" in err


def test_a_directory_judged_is_the_one_walked_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule is applied to the descriptor the walk holds: a trusted directory swapped for a
    user's one right after it was opened still leads to the trusted file, and a user's
    directory swapped in before is refused."""
    needs_root()
    import tcptune.system

    top = tmp_path / "top"
    trusted = top / "profiles"
    theirs = top / "theirs"
    for directory in (trusted, theirs):
        directory.mkdir(parents=True)
        directory.chmod(0o755)
        (directory / "p.toml").write_text(
            f'description = "{directory.name}"\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = 30\n'
        )
        (directory / "p.toml").chmod(0o644)
    os.chown(theirs, 65534, 65534)
    real_open = tcptune.system.os.open
    swapped = []

    def open_then_swap(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if path == "profiles" and not swapped:
            exchange(trusted, theirs)
            swapped.append(True)
        return fd

    monkeypatch.setattr(tcptune.system.os, "open", open_then_swap)
    loaded = profiles.read_file(trusted / "p.toml")
    monkeypatch.undo()
    assert swapped and loaded.problems == [] and loaded.description == "profiles"
    (problem,) = profiles.read_file(trusted / "p.toml").problems  # now the user's directory
    assert "owned by uid 65534" in str(problem)
