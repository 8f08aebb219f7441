"""What a person sees on a small terminal: each table command, run in a pseudo-terminal of 80
and of 120 columns (rich output) and with NO_COLOR (plain output), prints every key, profile
name and backup id whole, and no line wider than the terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import unicodedata

import pytest
from conftest import TCPTUNE, FakeMachine, run_cli, run_in_pty, run_tcptune
from test_sockets import Sock, fake_sockets

from tcptune import keys, profiles

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def columns_of(line: str) -> int:
    """Terminal columns the line takes: wide characters count two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> FakeMachine:
    """A machine with a key overridden at boot, two backups and a local profile with a long
    name, a long description and a deep path."""
    from conftest import modern_machine

    machine = modern_machine(tmp_path_factory.mktemp("busy") / "root")
    root = machine.root
    (root / "etc/sysctl.d").mkdir(parents=True)
    (root / "etc/sysctl.d/zz-site.conf").write_text(
        "net.ipv4.tcp_keepalive_time = 1800\nnet.ipv4.tcp_rfc1337 = 0\n"
    )
    local = profiles.local_dir(root)
    local.mkdir(parents=True)
    (local / "edge-proxy-with-a-rather-long-name.toml").write_text(
        'description = "An edge proxy in front of many backends, tuned for outbound bursts '
        'and slow clients, with a description far longer than any terminal is wide"\n'
        'extends = "proxy-profile"\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = 30\n'
    )
    for name in ("server-profile", "client-profile"):
        assert run_cli("--root", str(root), "apply", name).code in (0, 1)
    # sockets: a CLOSE_WAIT leak of a program with a long command line, and many destinations
    leak = [
        Sock("CLOSE_WAIT", ("10.0.0.1", 8080), ("10.0.0.5", 1 + i), inode=1000 + i)
        for i in range(40)
    ]
    many = [
        Sock("TIME_WAIT", (f"10.0.0.{1 + n % 20}", 40000 + n), (f"10.9.0.{n % 30}", 443), inode=0)
        for n in range(300)
    ]
    fake_sockets(machine, leak + many, {31: ("leaky-app", [1000 + i for i in range(40)])})
    return machine


def commands(machine: FakeMachine) -> dict[str, tuple[list[str], set[str]]]:
    """Each command, with the names that must appear whole in what it prints."""
    root = machine.root
    backups = {p.stem for p in (root / "var/lib/tcptune/backups").glob("*.json")}
    long_profile = "edge-proxy-with-a-rather-long-name"
    return {
        "check": (["check"], set(keys.KEYS) - {"net.ipv4.tcp_tw_recycle"}),
        "check PROFILE": (["check", long_profile], set(profiles.load(long_profile, root).sysctl)),
        "profiles list": (
            ["profiles", "list"],
            {"server-profile", "client-profile", "proxy-profile", long_profile},
        ),
        "backups": (["backups"], backups | {"server-profile", "client-profile"}),
        "apply --dry-run": (
            ["apply", "server-profile", "--dry-run"],
            set(profiles.load("server-profile", root).sysctl),
        ),
        "sockets": (["sockets", "--source", "proc"], {"CLOSE_WAIT", "TIME_WAIT", "leaky-app"}),
    }


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("colour", [True, False], ids=["rich", "plain"])
@pytest.mark.parametrize(
    "command",
    ["check", "check PROFILE", "profiles list", "backups", "apply --dry-run", "sockets"],
)
def test_fits_the_terminal_with_names_whole(
    busy: FakeMachine, command: str, width: int, colour: bool
) -> None:
    argv, names = commands(busy)[command]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    if not colour:
        env["NO_COLOR"] = "1"
    code, out = run_in_pty([str(TCPTUNE), "--root", str(busy.root), *argv], env, (24, width))
    assert code in (0, 1), out
    text = ANSI.sub("", out).replace("\r\n", "\n")
    assert "Traceback" not in text
    lines = text.splitlines()
    too_wide = [line for line in lines if columns_of(line) > width]
    assert too_wide == [], "\n".join(too_wide)
    words = set(re.findall(r"[A-Za-z0-9_.\-]+", text))
    missing = sorted(n for n in names if n not in words)
    assert missing == [], f"not shown whole: {missing}\n{text}"
    if colour:
        assert "\x1b[" in out  # really the rich form
    else:
        assert "\x1b[" not in out


def test_plain_output_to_a_pipe_fits_columns(busy: FakeMachine) -> None:
    """Piped (to a pager, say), the output fits $COLUMNS; JSON is never folded."""
    env = {**os.environ, "COLUMNS": "80"}
    argv = ["--root", str(busy.root), "check", "edge-proxy-with-a-rather-long-name"]
    done = run_tcptune(*argv, env=env)
    assert done.returncode == 1
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    assert "net.ipv4.tcp_fin_timeout" in done.stdout
    shown = run_tcptune(*argv, "--json", env=env)
    doc = json.loads(shown.stdout)
    assert any(len(line) > 80 for line in shown.stdout.splitlines())  # long strings stay whole
    assert doc["profile"]["name"] == "edge-proxy-with-a-rather-long-name"


def test_a_pager_gets_the_width_of_the_terminal_behind_stderr(busy: FakeMachine) -> None:
    """`tcptune check | less`: stdout is a pipe, stderr the terminal; the lines fit the latter."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    try:
        done = subprocess.run(
            [str(TCPTUNE), "--root", str(busy.root), "check", "server-profile"],
            stdout=subprocess.PIPE,
            stderr=follower,
            env=env,
            text=True,
            timeout=60,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 1
    assert max(len(line) for line in done.stdout.splitlines()) <= 80


@pytest.mark.parametrize("width", [80, 120])
def test_a_watch_frame_fits_the_terminal(busy: FakeMachine, width: int) -> None:
    """`sockets --watch` in a terminal of `width` x 24: the live view's frames fit, and name the
    CLOSE_WAIT owner."""
    import signal
    import time

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, width, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    argv = [str(TCPTUNE), "--root", str(busy.root), "sockets", "--watch", "0.2", "--source", "proc"]
    proc = subprocess.Popen(argv, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while seen.count(b"trend since start") < 2 and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(leader, 65536)
                except OSError:
                    break
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        os.close(leader)
    text = ANSI.sub("", seen.decode("utf-8", "replace")).replace("\r", "\n")
    assert text.count("trend since start") >= 2, text
    assert "leaky-app (--serve)" in text
    too_wide = [line for line in text.split("\n") if columns_of(line) > width]
    assert too_wide == [], "\n".join(too_wide)
