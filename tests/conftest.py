"""Shared fixtures: fake machines under tmp roots, and a gate for real-kernel namespace tests."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tcptune import keys
from tcptune.cli.main import app

# Text output is fitted to the terminal's width (tcptune.render.width). The tests read what the
# commands say, not how it is laid out, so they run 200 columns wide, whatever terminal runs
# them; tests/test_terminal_width.py sets the widths it checks itself.
os.environ["COLUMNS"] = "200"

# What a fresh 6.18 network namespace reports (read with `sysctl -n` in `unshare -n`), minus keys
# that depend on the machine; tests override what they care about.
MODERN_VALUES = {
    "net.ipv4.tcp_tw_reuse": "2",
    "net.ipv4.tcp_tw_reuse_delay": "1000",
    "net.ipv4.tcp_fin_timeout": "60",
    "net.ipv4.tcp_max_tw_buckets": "131072",
    "net.ipv4.ip_local_port_range": "32768\t60999",
    "net.ipv4.ip_local_reserved_ports": "",
    "net.ipv4.tcp_timestamps": "1",
    "net.ipv4.tcp_max_orphans": "131072",
    "net.ipv4.tcp_orphan_retries": "0",
    "net.ipv4.tcp_keepalive_time": "7200",
    "net.ipv4.tcp_keepalive_intvl": "75",
    "net.ipv4.tcp_keepalive_probes": "9",
    "net.ipv4.tcp_syncookies": "1",
    "net.ipv4.tcp_max_syn_backlog": "2048",
    "net.core.somaxconn": "4096",
    "net.ipv4.tcp_fastopen": "1",
    "net.ipv4.tcp_rmem": "4096\t131072\t33554432",
    "net.ipv4.tcp_wmem": "4096\t16384\t4194304",
    "net.ipv4.tcp_congestion_control": "cubic",
    "net.ipv4.tcp_slow_start_after_idle": "1",
    "net.ipv4.tcp_mtu_probing": "0",
    "net.ipv4.tcp_rfc1337": "0",
}

SOCKSTAT = """sockets: used 5
TCP: inuse {inuse} orphan 0 tw {tw} alloc 3 mem 1
UDP: inuse 0 mem 0
"""

NETSTAT = """TcpExt: SyncookiesSent TW TWRecycled TWKilled TCPTimeWaitOverflow
TcpExt: 0 {tw_total} 0 0 {overflow}
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
"""


class FakeMachine:
    """A tree under tmp_path shaped like / : proc/sys/..., proc/net/sockstat, proc/net/netstat."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def set(self, key: str, value: str) -> FakeMachine:
        path = self.root / "proc/sys" / key.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
        return self

    def remove(self, key: str) -> FakeMachine:
        (self.root / "proc/sys" / key.replace(".", "/")).unlink()
        return self

    def kernel(self, release: str) -> FakeMachine:
        return self.set("kernel.osrelease", release)

    def sockets(self, tw: int = 0, inuse: int = 0, overflow: int = 0) -> FakeMachine:
        net = self.root / "proc/net"
        net.mkdir(parents=True, exist_ok=True)
        (net / "sockstat").write_text(SOCKSTAT.format(tw=tw, inuse=inuse))
        (net / "netstat").write_text(NETSTAT.format(tw_total=tw, overflow=overflow))
        return self


def modern_machine(root: Path, release: str = "6.18.44-generic") -> FakeMachine:
    machine = FakeMachine(root).kernel(release).sockets()
    for key, value in MODERN_VALUES.items():
        machine.set(key, value)
    return machine


def old_machine(root: Path) -> FakeMachine:
    """A 4.9 kernel: tcp_tw_recycle exists, tcp_tw_reuse is boolean, no tcp_tw_reuse_delay."""
    machine = modern_machine(root, "4.9.0-19-amd64")
    machine.remove("net.ipv4.tcp_tw_reuse_delay")
    machine.set("net.ipv4.tcp_tw_reuse", "0")
    machine.set("net.ipv4.tcp_tw_recycle", "0")
    machine.set("net.core.somaxconn", "128")
    return machine


@pytest.fixture
def modern(tmp_path: Path) -> FakeMachine:
    return modern_machine(tmp_path)


@pytest.fixture
def old(tmp_path: Path) -> FakeMachine:
    return old_machine(tmp_path)


class Result:
    def __init__(self, code: int, out: str, err: str = "") -> None:
        self.code = code
        self.out = out
        self.err = err


def run_cli(*argv: str) -> Result:
    """Run the Typer app in-process (typer.testing.CliRunner), capturing stdout and stderr."""
    done = CliRunner().invoke(app, list(argv), catch_exceptions=False)
    return Result(done.exit_code, done.stdout, done.stderr)


# The console script the package installs next to this interpreter (`pip install -e .` in .venv).
TCPTUNE = Path(sys.executable).with_name("tcptune")


def run_tcptune(
    *argv: str, env: dict[str, str] | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """Run the installed `tcptune` console script as a real process, as a user would."""
    assert TCPTUNE.is_file(), f"{TCPTUNE} is missing: install the package (make dev)"
    full_env = {k: v for k, v in os.environ.items() if k != "TCPTUNE_ROOT"}
    full_env.update(env or {})
    return subprocess.run(
        [str(TCPTUNE), *argv],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        **kwargs,
    )


def _netns_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not shutil.which("unshare"):
        return "needs unshare (util-linux)"
    try:
        probe = subprocess.run(
            ["unshare", "-n", "true"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unshare -n failed: {err}"
    if probe.returncode != 0:
        return f"unshare -n failed: {probe.stderr.strip()}"
    return None


@pytest.fixture(scope="session")
def netns() -> None:
    """Gate for tests against the real kernel in a private network namespace.

    On CI (CI set) a missing capability is a failure, never a silent skip.
    """
    problem = _netns_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"namespace test cannot run on CI: {problem}")
    pytest.skip(f"namespace test skipped: {problem}")


ALL_KEYS = list(keys.KEYS)


def in_child(func, prepare=None):
    """Run prepare() then func() in a forked child; return func's JSON-able result (a failure in
    either is raised here with the child's traceback)."""
    import json
    import traceback

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_end)
            try:
                if prepare is not None:
                    prepare()
                payload = {"result": func()}
            except BaseException:
                payload = {"error": traceback.format_exc()}
            os.write(write_end, json.dumps(payload).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        payload = json.loads(pipe.read() or '{"error": "the child wrote nothing"}')
    os.waitpid(pid, 0)
    assert "error" not in payload, payload.get("error")
    return payload["result"]


def _drop_to_nobody() -> None:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def as_nobody(func):
    """Run func() in a forked child that has dropped to uid/gid 65534 (a real unprivileged
    process, so the kernel's own permission checks apply); return its JSON-able result.

    Whatever func needs must be imported before the call: the interpreter's files may not be
    readable by that user."""
    return in_child(func, _drop_to_nobody)


@pytest.fixture
def machine_with_sysctl_d(modern: FakeMachine) -> FakeMachine:
    """A modern fake machine whose etc/sysctl.d exists."""
    (modern.root / "etc/sysctl.d").mkdir(parents=True)
    return modern


def cli_json(machine: FakeMachine, *argv: str) -> tuple[int, dict]:
    """Run `tcptune --root MACHINE ARGV --json` in-process: its exit code and JSON document."""
    import json

    result = run_cli("--root", str(machine.root), *argv, "--json")
    return result.code, json.loads(result.out) if result.out else {}


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> Path:
    """The project built as a wheel, once per test session."""
    out = tmp_path_factory.mktemp("wheel")
    source = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = out.glob("tcptune-*.whl")
    return wheel


def run_in_namespace(flags: list[str], argv: list[str], timeout: int = 300) -> dict:
    """Run this interpreter under `unshare FLAGS` (a private network, and maybe mount,
    namespace) with argv; the program prints one JSON document, which is returned."""
    import json

    done = subprocess.run(
        ["unshare", *flags, sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def run_in_pty(
    argv: list[str], env: dict[str, str], size: tuple[int, int] | None = None
) -> tuple[int, str]:
    """Run `argv` with a terminal on stdout and stderr, as a person would; the exit code and
    what it printed. `size`: the terminal's (rows, columns), as a window of that size has."""
    leader, follower = pty.openpty()
    if size is not None:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    proc = subprocess.Popen(
        argv, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=env
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    code = proc.wait(timeout=60)
    os.close(leader)
    return code, b"".join(chunks).decode("utf-8", "replace")


def row_with_notes(out: str, first_cell: str) -> str:
    """The table row that starts with `first_cell`, with the text of each note it points to
    ("[2]": moved below the table to fit the width) put back in place of the marker."""
    lines = out.splitlines()
    row = next(line for line in lines if line.startswith(first_cell + " "))
    notes: dict[str, str] = {}
    current = None
    for line in lines:
        if line.startswith("[") and "] " in line and line[1 : line.index("]")].isdigit():
            current = line[: line.index("]") + 1]
            notes[current] = line[len(current) + 1 :]
        elif current and line.startswith(" " * (len(current) + 1)) and line.strip():
            notes[current] += " " + line.strip()
        else:
            current = None
    for marker, text in notes.items():
        if marker in row.split():
            row = row.replace(marker, text.partition(": ")[2], 1)
    return " ".join(row.split())


# ss -tan state names -> tcptune's
SS_STATES = {
    "ESTAB": "ESTABLISHED",
    "SYN-SENT": "SYN_SENT",
    "SYN-RECV": "SYN_RECV",
    "FIN-WAIT-1": "FIN_WAIT1",
    "FIN-WAIT-2": "FIN_WAIT2",
    "TIME-WAIT": "TIME_WAIT",
    "UNCONN": "CLOSE",
    "CLOSE-WAIT": "CLOSE_WAIT",
    "LAST-ACK": "LAST_ACK",
    "LISTEN": "LISTEN",
    "CLOSING": "CLOSING",
}


def ss_state_counts(lines: list[str]) -> dict[str, int]:
    """Sockets per state (tcptune's names) from the lines `ss -Htan` prints."""
    counts = dict.fromkeys(SS_STATES.values(), 0)
    for line in lines:
        counts[SS_STATES[line.split()[0]]] += 1
    return counts
