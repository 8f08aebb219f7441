"""The system layer reads below its root and reports, never raises, for a bad key."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from conftest import FakeMachine, as_nobody, modern_machine

from tcptune.errors import BadInput, EnvironmentProblem
from tcptune.model import MISSING, PRESENT, UNREADABLE
from tcptune.system import (
    System,
    parse_netstat,
    parse_sockstat,
    root_from,
)


def test_reads_below_root_and_normalises_whitespace(modern: FakeMachine) -> None:
    reading = System(modern.root).read_sysctl("net.ipv4.ip_local_port_range")
    assert reading.state == PRESENT
    assert reading.value == "32768 60999"


def test_missing_key(modern: FakeMachine) -> None:
    reading = System(modern.root).read_sysctl("net.ipv4.tcp_tw_recycle")
    assert reading.state == MISSING
    assert reading.value is None


def test_kernel_release(modern: FakeMachine) -> None:
    assert System(modern.root).kernel_release() == "6.18.44-generic"


def test_oversized_value_is_unreadable(modern: FakeMachine) -> None:
    modern.set("net.ipv4.tcp_fin_timeout", "9" * 70000)
    assert System(modern.root).read_sysctl("net.ipv4.tcp_fin_timeout").state == UNREADABLE


def test_require_proc_sys(tmp_path) -> None:
    with pytest.raises(EnvironmentProblem, match="does not exist"):
        System(tmp_path).require_proc_sys()


def test_root_from_option_env_and_default(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("TCPTUNE_ROOT", raising=False)
    assert str(root_from(None)) == "/"
    monkeypatch.setenv("TCPTUNE_ROOT", str(tmp_path))
    assert root_from(None) == tmp_path
    assert str(root_from("/")) == "/"  # the option wins over the environment
    with pytest.raises(BadInput, match="TCPTUNE_ROOT"):
        monkeypatch.setenv("TCPTUNE_ROOT", str(tmp_path / "nope"))
        root_from(None)
    with pytest.raises(BadInput, match="--root"):
        root_from(str(tmp_path / "nope"))


def test_parse_sockstat_as_pairs() -> None:
    parsed = parse_sockstat(
        "sockets: used 7\nTCP: inuse 3 orphan 1 tw 12 alloc 9 mem 2\nFRAG: inuse 0 memory 0\n"
    )
    assert parsed["TCP"] == {"inuse": 3, "orphan": 1, "tw": 12, "alloc": 9, "mem": 2}
    assert parsed["sockets"] == {"used": 7}


def test_parse_netstat_pairs_lines() -> None:
    parsed = parse_netstat(
        "TcpExt: TW TCPTimeWaitOverflow\nTcpExt: 5 2\nIpExt: InNoRoutes\nIpExt: 0\n"
    )
    assert parsed["TcpExt"] == {"TW": 5, "TCPTimeWaitOverflow": 2}
    assert parsed["IpExt"] == {"InNoRoutes": 0}


def test_parsers_read_this_machine() -> None:
    """The formats are the kernel's own: parse the live files, not only samples."""
    system = System("/")
    sockstat = system.sockstat()
    netstat = system.netstat()
    assert sockstat is not None and "tw" in sockstat["TCP"]
    assert netstat is not None and "TCPTimeWaitOverflow" in netstat["TcpExt"]


def read_as_nobody(system: System, key: str) -> tuple[str, str]:
    def read() -> tuple[str, str]:
        reading = system.read_sysctl(key)
        return reading.state, reading.error

    state, error = as_nobody(read)  # as JSON
    return state, error


def test_permission_denied_is_unreadable_for_a_real_unprivileged_reader() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("this test needs root on CI")
        pytest.skip("needs root to drop privileges")
    # pytest's temporary directories are private (0700) and so may be their parents: the
    # machine lives in a directory of its own in the system's temporary directory, the only
    # mode changed is that directory's, and it is removed after.
    top = Path(tempfile.gettempdir())
    for directory in [top, *top.parents]:
        assert directory.stat().st_mode & 0o001, f"{directory} is not traversable by all"
    with tempfile.TemporaryDirectory(prefix="tcptune-nobody-") as made:
        Path(made).chmod(0o755)
        modern = modern_machine(Path(made) / "root")
        (modern.root / "proc/sys/net/ipv4/tcp_fin_timeout").chmod(0o600)
        system = System(modern.root)
        assert read_as_nobody(system, "net.ipv4.tcp_fin_timeout") == (
            UNREADABLE,
            "permission denied",
        )
        assert read_as_nobody(system, "net.ipv4.tcp_tw_reuse") == (PRESENT, "")


def test_a_refused_setns_as_root_does_not_say_run_as_root(monkeypatch) -> None:
    """Permission denied entering a namespace means "needs root" only for a non-root caller; as
    root it is a namespace of a user namespace this one does not own (PID 1 of a sandbox)."""
    from tcptune import system

    monkeypatch.setattr(system, "running_as_root", lambda: True)
    as_root = system._needs_root("--pid 1")
    assert "needs root" not in as_root.line() and "user namespace" in as_root.line()
    monkeypatch.setattr(system, "running_as_root", lambda: False)
    assert "needs root (CAP_SYS_ADMIN)" in system._needs_root("--pid 1").line()
