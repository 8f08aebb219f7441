"""docs/bad-input.md, row by row: each hostile or broken input gets its documented exit code and
message, one line, no traceback, and every file stays byte-identical."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import as_nobody, modern_machine

from tcptune.cli.main import main

DOC = Path(__file__).resolve().parent.parent / "docs/bad-input.md"
PREFIX = 'description = "x"\n[sysctl]\n'


def doc_rows() -> dict[str, tuple[int, str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        if not line.startswith("| ") or line.startswith(("| id ", "|---")):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        ident, exit_code, message = cells[0], int(cells[3]), cells[4].strip("`")
        rows[ident] = (exit_code, message.replace("\\|", "|"))
    return rows


class Case:
    """What a row runs: argv for tcptune, and how (in-process, as uid 65534, or with mounts)."""

    def __init__(
        self,
        argv: list[str],
        runner: str = "in",
        mount: tuple[str, str] | None = None,
        env: dict[str, str] | None = None,
    ):
        self.argv = argv
        self.runner = runner
        self.mount = mount  # (kind, relative path) for the "mount" runner
        self.env = env  # environment for an in-process run; the root then comes from it


SETUPS: dict[str, Callable[[Path], Case]] = {}


def setup(ident: str):
    def register(func: Callable[[Path], Case]) -> Callable[[Path], Case]:
        SETUPS[ident] = func
        return func

    return register


def profile(root: Path, body: str, name: str = "p.toml", prefix: str = PREFIX) -> str:
    path = root / "profiles-in" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(prefix + body + "\n")
    return str(path)


def local(root: Path, name: str, text: str) -> None:
    directory = root / "etc/tcptune/profiles"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.toml").write_text(text)


def simple(ident: str, body: str, command: str = "check", prefix: str = PREFIX) -> None:
    @setup(ident)
    def _(root: Path) -> Case:
        path = profile(root, body, prefix=prefix)
        return Case(["profiles", "validate", path] if command == "validate" else [command, path])


simple("toml-malformed", '"net.ipv4.tcp_fin_timeout" = 30\n[sysctl')
simple("toml-truncated", "", "validate", prefix='description = "cut off')
simple("toml-line", '"net.ipv4.tcp_fin_timeout" = ', "validate")
simple("type-string", '"net.ipv4.tcp_fin_timeout" = "soon"')
simple("type-bool", '"net.ipv4.tcp_fin_timeout" = true')
simple("type-float", '"net.core.netdev_max_backlog" = 1.5')
simple("range-high", '"net.ipv4.tcp_keepalive_probes" = 300', "apply")
simple("range-negative", '"net.ipv4.tcp_fin_timeout" = -5', "apply")
simple("vector-short", '"net.ipv4.ip_local_port_range" = [1024]', "apply")
simple("vector-long", '"net.ipv4.tcp_rmem" = [1, 2, 3, 4]', "apply")
simple("vector-order", '"net.ipv4.ip_local_port_range" = [40000, 30001]', "apply")
simple("key-kernel", '"kernel.core_pattern" = "|/tmp/x"', "apply")
simple("key-vm", '"vm.swappiness" = 10', "apply")
simple("key-dotdot", '"net.ipv4.../../kernel.core_pattern" = 1', "apply")
simple("key-newline", '"net.ipv4.tcp_fin_timeout\\n" = 30', "apply")
simple("int-huge", '"net.ipv4.tcp_fin_timeout" = ' + "9" * 5000)
simple("int-huge-string", '"net.ipv4.tcp_fin_timeout" = "' + "9" * 5000 + '"')
simple("key-unknown-net", '"net.core.netdev_max_backlog" = 5000', "validate")
simple("key-table", "net.ipv4.tcp_fin_timeout = 30", "apply")
simple("recycle-on", '"net.ipv4.tcp_tw_recycle" = 1', "apply")
simple("top-level-unknown", "", prefix='description = "x"\ncolour = "blue"\n')
simple("no-description", '"net.ipv4.tcp_fin_timeout" = 30', prefix="[sysctl]\n")


@setup("extends-cycle")
def _(root: Path) -> Case:
    local(root, "a", 'description = "a"\nextends = "b"\n')
    local(root, "b", 'description = "b"\nextends = "a"\n')
    return Case(["check", "a"])


@setup("extends-missing")
def _(root: Path) -> Case:
    local(root, "orphan", 'description = "o"\nextends = "nobody-here"\n')
    return Case(["check", "orphan"])


setup("name-dotdot")(lambda root: Case(["profiles", "capture", "../evil"]))
setup("name-slash")(lambda root: Case(["check", "a/b"]))
setup("name-newline")(lambda root: Case(["check", "server-profile\n"]))
setup("explain-newline")(lambda root: Case(["explain", "tcp_fin\ntimeout"]))
setup("name-nul")(lambda root: Case(["check", "a\x00b"]))
setup("name-empty")(lambda root: Case(["profiles", "capture", ""]))
setup("name-long")(lambda root: Case(["profiles", "capture", "a" * 200]))
setup("name-unknown")(lambda root: Case(["check", "server-profil"]))
setup("path-too-long")(lambda root: Case(["check", f"{root}/{'a' * 5000}.toml"]))
setup("output-empty")(lambda root: Case(["profiles", "capture", "x", "--output", ""]))


@setup("not-utf8")
def _(root: Path) -> Case:
    path = Path(profile(root, ""))
    path.write_bytes(b'description = "\xff\xfe"\n')
    return Case(["check", str(path)])


@setup("huge")
def _(root: Path) -> Case:
    path = Path(profile(root, ""))
    with open(path, "r+b") as handle:
        handle.truncate(50 * 1024 * 1024)  # a 50 MB file (sparse: nothing is read)
    return Case(["check", str(path)])


@setup("directory")
def _(root: Path) -> Case:
    path = root / "profiles-in" / "x.toml"
    path.mkdir(parents=True)
    return Case(["check", str(path)])


@setup("world-writable")
def _(root: Path) -> Case:
    path = profile(root, '"net.ipv4.tcp_fin_timeout" = 30')
    os.chmod(path, 0o666)
    return Case(["check", path])


@setup("not-root-owned")
def _(root: Path) -> Case:
    path = profile(root, '"net.ipv4.tcp_fin_timeout" = 30')
    os.chown(path, 65534, 65534)
    return Case(["check", path])


@setup("dropin-symlink")
def _(root: Path) -> Case:
    (root / "etc/sysctl.d/99-tcptune.conf").symlink_to(root / "elsewhere.conf")
    return Case(["apply", "client-profile"])


@setup("backup-symlink")
def _(root: Path) -> Case:
    (root / "elsewhere").mkdir()
    (root / "var/lib/tcptune").mkdir(parents=True)
    (root / "var/lib/tcptune/backups").symlink_to(root / "elsewhere")
    return Case(["apply", "client-profile"])


@setup("dir-not-root-owned")
def _(root: Path) -> Case:
    path = profile(root, '"net.ipv4.tcp_fin_timeout" = 30')
    os.chown(Path(path).parent, 65534, 65534)
    return Case(["check", path])


@setup("dir-writable")
def _(root: Path) -> Case:
    path = root / "profiles-in/deep/p.toml"
    path.parent.mkdir(parents=True)
    path.write_text(PREFIX + '"net.ipv4.tcp_fin_timeout" = 30\n')
    os.chmod(root / "profiles-in", 0o777)
    return Case(["check", str(path)])


@setup("extends-absolute")
def _(root: Path) -> Case:
    return Case(["check", profile(root, "", prefix='description = "x"\nextends = "/etc/x.toml"\n')])


@setup("extends-dotdot")
def _(root: Path) -> Case:
    return Case(["check", profile(root, "", prefix='description = "x"\nextends = "../o.toml"\n')])


def move_out(root: Path, component: str) -> Path:
    """Move root/COMPONENT beside the root, to outside/COMPONENT; return where it went."""
    import shutil

    moved = root.parent / "outside" / component
    moved.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(root / component, moved)
    return moved


@setup("etc-link-out")
def _(root: Path) -> Case:
    moved = move_out(root, "etc")
    (root / "etc").symlink_to(os.path.relpath(moved, root))  # ../outside/etc
    return Case(["apply", "client-profile"])


@setup("var-link-out")
def _(root: Path) -> Case:
    applied_backup(root)
    moved = move_out(root, "var")
    (root / "var").symlink_to(moved)
    return Case(["backups"])


@setup("proc-link-out")
def _(root: Path) -> Case:
    moved = move_out(root, "proc/sys/net/ipv4")
    (root / "proc/sys/net/ipv4").symlink_to("/../../../.." + str(moved))
    return Case(["apply", "client-profile", "--runtime-only"])


@setup("dropin-foreign")
def _(root: Path) -> Case:
    (root / "etc/sysctl.d/99-tcptune.conf").write_text("net.ipv4.tcp_fin_timeout = 45\n")
    return Case(["apply", "client-profile"])


@setup("dropin-masks-vendor")
def _(root: Path) -> Case:
    (root / "usr/lib/sysctl.d").mkdir(parents=True)
    (root / "usr/lib/sysctl.d/50-default.conf").write_text("net.ipv4.tcp_fin_timeout = 60\n")
    return Case(["apply", "client-profile", "--drop-in", "50-default.conf"])


setup("dropin-name")(
    lambda root: Case(["apply", "client-profile", "--drop-in", "../../etc/passwd"])
)


def applied_backup(root: Path) -> Path:
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["--root", str(root), "apply", "client-profile"], stdout=io.StringIO()) == 0
    (path,) = (root / "var/lib/tcptune/backups").glob("*.json")
    return path


@setup("backup-huge")
def _(root: Path) -> Case:
    path = applied_backup(root)
    with path.open("ab") as handle:  # 17 MiB of padding after the JSON
        handle.write(b" " * (17 * 1024 * 1024))
    return Case(["revert", path.stem])


@setup("dropin-huge")
def _(root: Path) -> Case:
    (root / "etc/sysctl.d/99-tcptune.conf").write_bytes(b"# x\n" * (9 * 1024 * 256))
    return Case(["apply", "client-profile", "--force"])


@setup("backup-corrupt")
def _(root: Path) -> Case:
    applied_backup(root).write_text("{not json")
    return Case(["revert"])


@setup("backup-not-object")
def _(root: Path) -> Case:
    applied_backup(root).write_text("[]")
    return Case(["revert"])


@setup("backup-edited")
def _(root: Path) -> Case:
    (root / "etc/sysctl.d/99-tcptune.conf").write_text("# Managed by tcptune: profile x\n")
    path = applied_backup(root)
    data = json.loads(path.read_text())
    data["drop_in"]["content_b64"] = base64.b64encode(b"# Managed by tcptune: evil\n").decode()
    path.write_text(json.dumps(data))
    return Case(["revert", data["id"]])


setup("backup-unknown")(lambda root: Case(["revert", "20990101T000000000000Z"]))
setup("backup-id-path")(lambda root: Case(["revert", "../../etc/shadow"]))


@setup("backup-id-empty")
def _(root: Path) -> Case:
    applied_backup(root)
    return Case(["revert", ""])


def edit_backup(root: Path, change: Callable[[dict], None]) -> str:
    path = applied_backup(root)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return data["id"]


@setup("backup-sequence-invalid")
def _(root: Path) -> Case:
    return Case(["revert", edit_backup(root, lambda data: data.update(sequence="7"))])


@setup("backup-written-invalid")
def _(root: Path) -> Case:
    def change(data: dict) -> None:
        data["drop_in"]["written_sha256"] = "not hex"

    return Case(["revert", edit_backup(root, change)])


@setup("revert-dropin-edited")
def _(root: Path) -> Case:
    applied_backup(root)
    with (root / "etc/sysctl.d/99-tcptune.conf").open("a") as handle:
        handle.write("net.ipv4.tcp_fin_timeout = 33\n")
    return Case(["revert"])


def two_applies(root: Path) -> tuple[str, str]:
    ids = []
    for name in ("client-profile", "server-profile"):
        out = io.StringIO()
        with contextlib.redirect_stderr(io.StringIO()):
            assert main(["--root", str(root), "apply", name, "--json"], stdout=out) == 0
        ids.append(json.loads(out.getvalue())["backup_id"])
    return ids[0], ids[1]


@setup("revert-dropin-removed")
def _(root: Path) -> Case:
    two_applies(root)
    (root / "etc/sysctl.d/99-tcptune.conf").unlink()
    return Case(["revert"])


@setup("revert-later-apply")
def _(root: Path) -> Case:
    first, _ = two_applies(root)
    return Case(["revert", first])


@setup("revert-old-backup")
def _(root: Path) -> Case:
    def older(data: dict) -> None:
        del data["sequence"], data["drop_in"]["written_sha256"]

    edit_backup(root, older)
    return Case(["revert"])


@setup("proc-unreadable")
def _(root: Path) -> Case:
    path = root / "proc/sys/net/ipv4/tcp_fin_timeout"
    path.unlink()
    path.mkdir()
    return Case(["check", "kernel-defaults", "--json"])


setup("proc-read-only")(lambda root: Case(["apply", "client-profile"], "mount", ("ro", "proc/sys")))
setup("not-root")(lambda root: Case(["--root", "/", "apply", "client-profile"], "nobody"))
setup("disk-full-backup")(
    lambda root: Case(["apply", "client-profile"], "mount", ("full", "var/lib/tcptune"))
)
setup("disk-full-dropin")(
    lambda root: Case(["apply", "client-profile"], "mount", ("full", "etc/sysctl.d"))
)
setup("root-missing")(lambda root: Case(["--root", "/nonexistent", "check"]))
setup("root-too-long")(lambda root: Case(["--root", "/" + "a" * 5000, "check"]))


@setup("release-huge")
def _(root: Path) -> Case:
    (root / "proc/sys/kernel/osrelease").write_text("6." + "1" * 5000 + "\n")
    return Case(["check"])


@setup("proc-value-huge")
def _(root: Path) -> Case:
    (root / "proc/sys/net/ipv4/tcp_fin_timeout").write_text("9" * 5000 + "\n")
    return Case(["check"])


def fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)


@setup("fifo-proc-key")
def _(root: Path) -> Case:
    fifo(root / "proc/sys/net/ipv4/tcp_fin_timeout")
    return Case(["check", "--json"])


@setup("fifo-proc-net")
def _(root: Path) -> Case:
    fifo(root / "proc/net/tcp")
    return Case(["sockets", "--source", "proc"])


@setup("proc-net-garbled")
def _(root: Path) -> Case:
    good = (
        "   {n}: 0100007F:{port:04X} 0100007F:1F90 06 00000000:00000000 03:00001234 00000000"
        "     0        0 0 3 0000000000000000"
    )
    rows = [
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid",
        good.format(n=0, port=40000),
        good.format(n=1, port=40001).replace(" 06 ", " ZZ "),
        good.format(n=2, port=40002).replace("0100007F:", "00007F:", 1),
        good.format(n=3, port=40003)[:40],
        good.format(n=4, port=40004),
    ]
    net = root / "proc/net"
    net.mkdir(parents=True, exist_ok=True)
    (net / "tcp").write_bytes("\n".join(rows).encode() + b"\n\xff\xfe\x00garbage\n")
    return Case(["sockets", "--source", "proc", "--json"])


@setup("fifo-sysctl-d")
def _(root: Path) -> Case:
    fifo(root / "etc/sysctl.d/10-fifo.conf")
    return Case(["check"])


@setup("sysctl-d-huge")
def _(root: Path) -> Case:
    with (root / "etc/sysctl.d/50-huge.conf").open("w") as handle:
        handle.truncate(17 * 1024 * 1024)  # sparse
    return Case(["check", profile(root, '"net.ipv4.tcp_fin_timeout" = 60'), "--json"])


@setup("sysctl-d-bare-cr")
def _(root: Path) -> Case:
    (root / "etc/sysctl.d/50-mac.conf").write_bytes(
        b"net.ipv4.tcp_fin_timeout = 60\rnet.ipv4.tcp_keepalive_time = 7200\r"
    )
    return Case(["check", profile(root, '"net.ipv4.tcp_fin_timeout" = 60')])


@setup("sysctl-d-glob-brackets")
def _(root: Path) -> Case:
    (root / "etc/sysctl.d/50-glob.conf").write_text(
        "net.ipv4.tcp_fin_time[z-a]ut = 1\nnet.ipv4.tcp_fin_timeou[\\]t] = 30\n"
    )
    return Case(["check", profile(root, '"net.ipv4.tcp_fin_timeout" = 60')])


@setup("fifo-dropin")
def _(root: Path) -> Case:
    fifo(root / "etc/sysctl.d/99-tcptune.conf")
    return Case(["apply", "client-profile", "--force"])


@setup("fifo-output")
def _(root: Path) -> Case:
    fifo(root / "out.toml")
    return Case(["profiles", "capture", "x", "--output", str(root / "out.toml"), "--force"])


@setup("root-no-proc")
def _(root: Path) -> Case:
    empty = root / "empty-root"
    empty.mkdir()
    return Case(["--root", str(empty), "check"])


setup("key-unknown-explain")(lambda root: Case(["explain", "tcp_tw_reues"]))
setup("options-exclusive")(
    lambda root: Case(["apply", "client-profile", "--runtime-only", "--persist-only"])
)
setup("option-unknown")(lambda root: Case(["check", "--jsno"]))
setup("lock-wait-infinite")(lambda root: Case(["apply", "client-profile", "--lock-wait", "inf"]))
setup("root-env-empty")(lambda root: Case(["check"], env={"TCPTUNE_ROOT": ""}))
simple("profile-bom", "", prefix='\ufeffdescription = "x"\n[sysctl]\n')
setup("lock-wait-negative")(lambda root: Case(["apply", "client-profile", "--lock-wait", "-1"]))


# --netns and --pid: the running machine (TCPTUNE_ROOT=/), each refused before any namespace is
# entered, so none of these runs leaves the test's own network namespace.
LIVE = {"TCPTUNE_ROOT": "/"}
NO_PID = "4194304"  # PID_MAX_LIMIT: pids are below pid_max, which is at most this


def live(ident: str, *argv: str) -> None:
    setup(ident)(lambda root: Case(list(argv), env=LIVE))


live("netns-no-such-pid", "--pid", NO_PID, "check")
live("netns-pid-zero", "--pid", "0", "check")
live("netns-missing", "--netns", "/nonexistent/netns", "check")
live("netns-device", "--netns", "/dev/null", "check")
live("netns-other-kind", "--netns", "/proc/self/ns/mnt", "sockets")
live("netns-both", "--netns", "/proc/self/ns/net", "--pid", "1", "check")
live("netns-apply-persist", "--pid", "1", "apply", "client-profile")
live("netns-apply-persist-only", "--pid", "1", "apply", "client-profile", "--persist-only")
live("netns-export", "--pid", "1", "export", "server-profile", "--format", "docker")
live("netns-profiles-show", "--pid", "1", "profiles", "show", "server-profile")
live("netns-all-netns", "--pid", "1", "sockets", "--all-netns")
live("all-netns-watch", "sockets", "--all-netns", "--watch", "1")


@setup("netns-file")
def _(root: Path) -> Case:
    plain = root / "not-a-namespace"
    plain.write_text("net:[4026531840]\n")
    return Case(["--netns", str(plain), "check"], env=LIVE)


@setup("netns-fifo")
def _(root: Path) -> Case:
    fifo = root / "netns-fifo"
    os.mkfifo(fifo)
    return Case(["--netns", str(fifo), "check"], env=LIVE)


setup("netns-with-root")(lambda root: Case(["--root", str(root), "--pid", "1", "check"]))
setup("all-netns-root")(lambda root: Case(["--root", str(root), "sockets", "--all-netns"]))
setup("netns-not-root")(lambda root: Case(["--pid", "1", "check"], "nobody", env=LIVE))


setup("sockets-top-zero")(lambda root: Case(["sockets", "--top", "0"]))
setup("sockets-watch-zero")(lambda root: Case(["sockets", "--watch", "0"]))
setup("sockets-watch-nan")(lambda root: Case(["sockets", "--watch", "nan"]))
setup("sockets-watch-json")(lambda root: Case(["sockets", "--watch", "1", "--json"]))
setup("sockets-netlink-root")(lambda root: Case(["sockets", "--source", "netlink"]))
setup("export-format")(lambda root: Case(["export", "server-profile", "--format", "helm"]))


@setup("export-harmful-value")
def _(root: Path) -> Case:
    return Case(["export", profile(root, '"net.ipv4.tcp_tw_recycle" = 1'), "--format", "k8s"])


# --- --format prometheus, --output and the CLOSE_WAIT growth state ----------------------------


def textfile_dir(root: Path) -> Path:
    """A textfile directory holding a previous metrics file, and a socket table to count."""
    directory = root / "textfile"
    directory.mkdir()
    (directory / "tcptune.prom").write_text('tcptune_sockets{netns="1",state="LISTEN"} 1\n')
    (root / "proc/net/tcp").write_text(PROC_TCP)
    return directory


PROC_TCP = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode\n   0: 0100007F:1F90 0100007F:9C40 08 00000000:00000000 00:00000000 00000000  1000 "
    "       0 5555 1 0000000000000000 100 0 0 10 0\n"
)
PROMETHEUS = ["--format", "prometheus", "--output"]

setup("metrics-output-empty")(lambda root: Case(["sockets", *PROMETHEUS, ""]))
setup("metrics-output-format")(lambda root: Case(["check", "--output", str(root / "x.prom")]))
setup("metrics-format-json")(lambda root: Case(["check", "--json", "--format", "prometheus"]))
setup("metrics-top-unbounded")(
    lambda root: Case(["sockets", "--format", "prometheus", "--top", "1000"])
)
setup("metrics-watch")(lambda root: Case(["sockets", "--watch", "1", "--format", "prometheus"]))


@setup("metrics-output-dir-missing")
def _(root: Path) -> Case:
    textfile_dir(root)
    return Case(["sockets", *PROMETHEUS, str(root / "no-such-dir/tcptune.prom")])


@setup("metrics-output-read-only")
def _(root: Path) -> Case:
    directory = textfile_dir(root)
    return Case(
        ["sockets", *PROMETHEUS, str(directory / "tcptune.prom")], "mount", ("ro", "textfile")
    )


@setup("metrics-output-fifo")
def _(root: Path) -> Case:
    directory = textfile_dir(root)
    fifo(directory / "check.prom")
    return Case(["check", *PROMETHEUS, str(directory / "check.prom")])


@setup("metrics-output-symlink")
def _(root: Path) -> Case:
    directory = textfile_dir(root)
    (directory / "link.prom").symlink_to(directory / "tcptune.prom")
    return Case(["sockets", *PROMETHEUS, str(directory / "link.prom")])


@setup("metrics-output-dir-symlink")
def _(root: Path) -> Case:
    directory = textfile_dir(root)
    (root / "linked").symlink_to(directory)
    return Case(["check", "server-profile", *PROMETHEUS, str(root / "linked/tcptune.prom")])


@setup("metrics-output-directory")
def _(root: Path) -> Case:
    directory = textfile_dir(root)
    (directory / "dir.prom").mkdir()
    return Case(["sockets", *PROMETHEUS, str(directory / "dir.prom")])


@setup("metrics-state-symlink")
def _(root: Path) -> Case:
    directory = textfile_dir(root)
    state = root / "var/lib/tcptune"
    state.mkdir(parents=True, mode=0o700)
    (root / "elsewhere.json").write_text("{}\n")
    (state / "close-wait.json").symlink_to(root / "elsewhere.json")
    return Case(["sockets", *PROMETHEUS, str(directory / "tcptune.prom")])


@setup("metrics-state-dir-symlink")
def _(root: Path) -> Case:
    directory = textfile_dir(root)
    (root / "elsewhere").mkdir()
    (root / "var/lib").mkdir(parents=True)
    (root / "var/lib/tcptune").symlink_to(root / "elsewhere")
    return Case(["sockets", *PROMETHEUS, str(directory / "tcptune.prom")])


# --- running a case -----------------------------------------------------------------------------


class Hung(Exception):
    pass


def _hung(signum: int, frame: object) -> None:
    raise Hung("tcptune did not answer within 60 s (blocked on a FIFO?)")


def run_in_process(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _hung)
    signal.alarm(60)  # a row that blocks (a FIFO read) fails instead of hanging the suite
    try:
        with contextlib.redirect_stderr(err):
            try:
                code = main(argv, stdout=out)
            except SystemExit as exit_:  # should the command line ever exit instead of returning
                code = int(exit_.code or 0)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue()


def run_as_nobody(argv: list[str]) -> tuple[int, str, str]:
    import tcptune.cli.apply
    import tcptune.cli.check
    import tcptune.netns  # noqa: F401

    code, out, err = as_nobody(lambda: run_in_process(argv))
    return code, out, err


MOUNTED = """
import contextlib, io, json, os, subprocess, sys
kind, target, argv = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
run = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=30)
run("mount", "--make-rprivate", "/")
if kind == "ro":
    run("mount", "--bind", target, target)
    run("mount", "-o", "remount,bind,ro", target)
else:  # a full file system: a tiny tmpfs, filled up
    os.makedirs(target, exist_ok=True)
    run("mount", "-t", "tmpfs", "-o", "size=16k,nr_inodes=64", "tmpfs", target)
    fd = os.open(os.path.join(target, ".filler"), os.O_WRONLY | os.O_CREAT)
    with contextlib.suppress(OSError):
        while True:
            os.write(fd, b"x" * 1024)
    os.close(fd)
from tcptune.cli.main import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stderr(err):
    code = main(argv, stdout=out)
print(json.dumps([code, out.getvalue(), err.getvalue()]))
"""


def run_mounted(argv: list[str], kind: str, target: Path) -> tuple[int, str, str]:
    done = subprocess.run(
        ["unshare", "-m", sys.executable, "-c", MOUNTED, kind, str(target), json.dumps(argv)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    code, out, err = json.loads(done.stdout)
    return code, out, err


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    result = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if relative.endswith("var/lib/tcptune/lock"):
            continue  # tcptune's own lock may be created; nothing else may change
        if path.is_symlink():
            result[relative] = (os.readlink(path).encode(), 0, 0)
        elif path.is_file():
            info = path.stat()
            with open(path, "rb") as handle:
                data = handle.read(1024 * 1024)
            result[relative] = (data, info.st_mode, info.st_uid)
    return result


ROWS = doc_rows()


def test_the_table_has_at_least_30_rows_and_each_has_a_test() -> None:
    assert len(ROWS) >= 30
    assert set(ROWS) == set(SETUPS)


# Rows that need root: a second user (uid 65534), mounts, files of another owner, or the checks
# tcptune makes only when it runs as root (who owns and may write a profile). The other rows run
# in-process for any user.
NEEDS_ROOT = {
    "not-root",  # run as uid 65534
    "netns-not-root",
    "proc-read-only",  # mounts
    "disk-full-backup",
    "disk-full-dropin",
    "metrics-output-read-only",
    "not-root-owned",  # files of another owner (chown)
    "dir-not-root-owned",
    "world-writable",  # the profile checks tcptune makes only as root
    "dir-writable",
}


def test_the_rows_that_need_root_are_rows() -> None:
    assert set(ROWS) >= NEEDS_ROOT


@pytest.mark.parametrize("ident", list(ROWS))
def test_bad_input(ident: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    expected_code, message = ROWS[ident]
    if ident in NEEDS_ROOT:
        request.getfixturevalue("netns")  # the gate: root and unshare, a failure on CI
    root = tmp_path / "root"
    machine = modern_machine(root)
    (machine.root / "etc/sysctl.d").mkdir(parents=True)
    case = SETUPS[ident](root)
    assert (case.runner == "in") or ident in NEEDS_ROOT, (
        "a row run as nobody or with mounts needs root"
    )
    given = "--root" in case.argv or case.env is not None
    argv = case.argv if given else ["--root", str(root), *case.argv]
    before = snapshot(tmp_path)
    if case.runner == "nobody":
        code, out, err = run_as_nobody(argv)
    elif case.runner == "mount":
        kind, relative = case.mount  # type: ignore[misc]
        code, out, err = run_mounted(argv, kind, root / relative)
    elif case.env is not None:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in case.env.items():
                patch.setenv(name, value)
            code, out, err = run_in_process(argv)
    else:
        code, out, err = run_in_process(argv)
    assert code == expected_code, (out, err)
    assert "Traceback" not in out + err
    assert message in out + err, (out, err)
    if expected_code == 2 and argv[-2:-1] != ["validate"] and "validate" not in argv:
        assert err.count("\n") == 1, err  # one line
    if "--json" not in argv and expected_code == 3:
        assert err.count("\n") == 1, err
    assert snapshot(tmp_path) == before
