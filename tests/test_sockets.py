"""`tcptune sockets` on hand-made inputs: the netlink and /proc parsers, owners, port pressure,
findings, and the command on fake /proc trees (real files under a tmp root)."""

from __future__ import annotations

import errno
import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import astuple, replace
from pathlib import Path

import pytest
from conftest import FakeMachine, run_cli, run_tcptune

from tcptune import census
from tcptune.census import Tally
from tcptune.model import ERROR, INFO, WARNING, Holders, parse_port_range, usable_ports
from tcptune.rules import NETSTAT_SOURCE

V4, V6 = socket.AF_INET, socket.AF_INET6
ST = {name: code for code, name in census.STATE_NAMES.items()}


class Sock:
    """One socket as a test describes it."""

    def __init__(self, state, local, remote, family=V4, inode=0, uid=0):
        self.state = ST[state] if isinstance(state, str) else state
        self.local_ip, self.local_port = local
        self.remote_ip, self.remote_port = remote
        self.family = family
        self.inode = inode
        self.uid = uid


def netlink_message(s: Sock, flags: int = 2) -> bytes:
    """An inet_diag_msg as the kernel sends it (include/uapi/linux/inet_diag.h)."""
    src = socket.inet_pton(s.family, s.local_ip).ljust(16, b"\0")
    dst = socket.inet_pton(s.family, s.remote_ip).ljust(16, b"\0")
    body = (
        struct.pack("=BBBB", s.family, s.state, 0, 0)
        + struct.pack(">HH", s.local_port, s.remote_port)
        + src
        + dst
        + struct.pack("=I8s", 0, b"\xff" * 8)
        + struct.pack("=IIIII", 0, 0, 0, s.uid, s.inode)
    )
    return struct.pack("=IHHII", 16 + len(body), 20, flags, 1, 0) + body


DONE = struct.pack("=IHHIIi", 20, 3, 2, 1, 0, 0)


def proc_address(family: int, ip: str) -> str:
    """The kernel prints each 32-bit word of the network-order address with %08X."""
    raw = socket.inet_pton(family, ip)
    return "".join(
        f"{int.from_bytes(raw[i : i + 4], sys.byteorder):08X}" for i in range(0, len(raw), 4)
    )


def proc_line(n: int, s: Sock) -> str:
    local = f"{proc_address(s.family, s.local_ip)}:{s.local_port:04X}"
    remote = f"{proc_address(s.family, s.remote_ip)}:{s.remote_port:04X}"
    return (
        f"{n:4d}: {local} {remote} {s.state:02X} 00000000:00000000 00:00000000 00000000 "
        f"{s.uid:5d}        0 {s.inode} 1 0000000000000000 100 0 0 10 0\n"
    )


PROC_HEADER = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode\n"
)


def via_netlink(socks: list[Sock], low: int, high: int, per_buffer: int = 3) -> census.Census:
    tally = Tally(census.NETLINK, low, high)
    for family in (V4, V6):
        feed = tally.netlink_feeder(family)
        messages = [netlink_message(s) for s in socks if s.family == family] + [DONE]
        buffers = [
            b"".join(messages[i : i + per_buffer]) for i in range(0, len(messages), per_buffer)
        ]
        results = [feed(buffer) for buffer in buffers]
        assert results == [False] * (len(buffers) - 1) + [True]
    return tally.finish()


def via_proc(socks: list[Sock], low: int, high: int) -> census.Census:
    tally = Tally(census.PROC, low, high)
    for family in (V4, V6):
        rows = [s for s in socks if s.family == family]
        tally.feed_proc(family, [PROC_HEADER, *(proc_line(i, s) for i, s in enumerate(rows))])
    return tally.finish()


TABLE = [
    Sock("LISTEN", ("0.0.0.0", 80), ("0.0.0.0", 0), inode=100),
    Sock("LISTEN", ("::", 443), ("::", 0), family=V6, inode=101),
    *[Sock("TIME_WAIT", ("10.0.0.1", 40000 + i), ("10.0.0.9", 5432)) for i in range(7)],
    *[
        Sock("ESTABLISHED", ("10.0.0.1", 40500 + i), ("10.0.0.9", 5432), inode=200 + i)
        for i in range(2)
    ],
    *[Sock("TIME_WAIT", ("10.0.0.2", 40000 + i), ("10.0.0.9", 5432)) for i in range(3)],
    *[Sock("TIME_WAIT", ("10.0.0.1", 80), ("192.0.2.7", 50000 + i)) for i in range(4)],
    *[
        Sock("TIME_WAIT", ("2001:db8::1", 40000 + i), ("2001:db8::9", 443), family=V6)
        for i in range(5)
    ],
    Sock("CLOSE_WAIT", ("10.0.0.1", 80), ("192.0.2.8", 50001), inode=300, uid=33),
    Sock("CLOSE_WAIT", ("10.0.0.1", 80), ("192.0.2.8", 50002), inode=301, uid=33),
    Sock(
        "CLOSE_WAIT", ("2001:db8::1", 8443), ("2001:db8::7", 50003), family=V6, inode=302, uid=1000
    ),
    Sock("FIN_WAIT2", ("10.0.0.1", 40100), ("10.0.0.9", 6379)),  # orphan: no inode
    Sock("FIN_WAIT2", ("10.0.0.1", 40101), ("10.0.0.9", 6379), inode=400),  # still owned
    Sock("FIN_WAIT1", ("10.0.0.1", 80), ("192.0.2.9", 50004)),
    Sock("LAST_ACK", ("10.0.0.1", 80), ("192.0.2.9", 50005)),
    Sock("CLOSING", ("10.0.0.1", 80), ("192.0.2.9", 50006), inode=401),
    Sock("SYN_SENT", ("10.0.0.1", 40999), ("10.0.0.9", 5432), inode=402),
    Sock(census.NEW_SYN_RECV, ("10.0.0.1", 80), ("192.0.2.10", 50007)),
    Sock("SYN_RECV", ("10.0.0.1", 80), ("192.0.2.10", 50008)),
]


def test_netlink_and_proc_parsers_give_the_same_census() -> None:
    from_netlink = via_netlink(TABLE, 40000, 40999)
    from_proc = via_proc(TABLE, 40000, 40999)
    assert replace(from_netlink, source="") == replace(from_proc, source="")
    c = from_netlink
    assert c.states == {
        "ESTABLISHED": 2,
        "SYN_SENT": 1,
        "SYN_RECV": 2,  # request sockets (NEW_SYN_RECV) are SYN_RECV, as ss and /proc say
        "FIN_WAIT1": 1,
        "FIN_WAIT2": 2,
        "TIME_WAIT": 19,
        "CLOSE": 0,
        "CLOSE_WAIT": 3,
        "LAST_ACK": 1,
        "LISTEN": 2,
        "CLOSING": 1,
    }
    assert c.total == len(TABLE)
    assert (c.orphans, c.fin_wait2_orphans) == (3, 1)  # FIN_WAIT1, LAST_ACK, one FIN_WAIT2
    assert [astuple(g) for g in c.groups] == [
        ("ipv4", "10.0.0.1", "10.0.0.9", 5432, 10, 7),  # 7 TIME_WAIT, 2 ESTAB, 1 SYN_SENT
        ("ipv6", "2001:db8::1", "2001:db8::9", 443, 5, 5),
        ("ipv4", "10.0.0.2", "10.0.0.9", 5432, 3, 3),
        ("ipv4", "10.0.0.1", "10.0.0.9", 6379, 2, 0),
    ]
    assert c.ephemeral == 20 and c.established_ephemeral == 2
    assert c.close_wait == [
        census.CloseWait(inode=300, uid=33, local="10.0.0.1:80", remote="192.0.2.8:50001"),
        census.CloseWait(inode=301, uid=33, local="10.0.0.1:80", remote="192.0.2.8:50002"),
        census.CloseWait(
            inode=302, uid=1000, local="[2001:db8::1]:8443", remote="[2001:db8::7]:50003"
        ),
    ]


def test_port_range_bounds_are_inclusive_and_listeners_never_count() -> None:
    table = [
        Sock("ESTABLISHED", ("10.0.0.1", 40000), ("10.0.0.9", 1), inode=1),
        Sock("ESTABLISHED", ("10.0.0.1", 40002), ("10.0.0.9", 1), inode=2),
        Sock("ESTABLISHED", ("10.0.0.1", 39999), ("10.0.0.9", 1), inode=3),
        Sock("ESTABLISHED", ("10.0.0.1", 40003), ("10.0.0.9", 1), inode=4),
        Sock("LISTEN", ("10.0.0.1", 40001), ("0.0.0.0", 0), inode=5),
    ]
    for counted in (via_netlink(table, 40000, 40002), via_proc(table, 40000, 40002)):
        assert [(g.local_address, g.sockets) for g in counted.groups] == [("10.0.0.1", 2)]


@pytest.mark.skipif(sys.byteorder != "little", reason="sample taken on a little-endian machine")
def test_proc_rows_as_the_kernel_prints_them() -> None:
    """Rows copied from /proc/net/tcp and tcp6 of an x86-64 machine."""
    tally = Tally(census.PROC, 32768, 60999)
    tally.feed_proc(
        V4,
        [
            PROC_HEADER,
            "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0"
            "        0 21718 1 0000000000000000 100 0 0 10 0\n",
            "   1: 0100007F:9C40 0100007F:1F90 08 00000000:00000001 00:00000000 00000000  1000"
            "        0 31337 1 0000000000000000 20 4 30 10 -1\n",
        ],
    )
    tally.feed_proc(
        V6,
        [
            "   0: 00000000000000000000000001000000:9C41 00000000000000000000000001000000:0050 06 "
            "00000000:00000000 03:00000F3C 00000000     0        0 0 3 0000000000000000\n",
        ],
    )
    c = tally.finish()
    assert (c.states["LISTEN"], c.states["CLOSE_WAIT"], c.states["TIME_WAIT"]) == (1, 1, 1)
    assert c.close_wait == [
        census.CloseWait(inode=31337, uid=1000, local="127.0.0.1:40000", remote="127.0.0.1:8080")
    ]
    assert [astuple(g) for g in c.groups] == [
        ("ipv4", "127.0.0.1", "127.0.0.1", 8080, 1, 0),
        ("ipv6", "::1", "::1", 80, 1, 1),
    ]


def test_netlink_error_and_interrupted_dump() -> None:
    tally = Tally(census.NETLINK, 1, 2)
    error = struct.pack("=IHHIIi", 36, 2, 0, 1, 0, -errno.EPERM) + b"\0" * 16
    with pytest.raises(OSError) as raised:
        tally.netlink_feeder(V4)(error)
    assert raised.value.errno == errno.EPERM
    feed = tally.netlink_feeder(V6)
    sock = Sock("ESTABLISHED", ("::1", 5), ("::1", 6), family=V6, inode=9)
    assert feed(netlink_message(sock, flags=2 | 0x10) + DONE) is True
    counted = tally.finish()
    assert counted.interrupted and counted.states["ESTABLISHED"] == 1
    assert any("interrupted" in f.message for f in census.findings(context(counted)))


# --- owners -------------------------------------------------------------------------------------


def holders(by_inode=None, denied=0, privileged=True) -> Holders:
    by_inode = by_inode or {}
    pids = {pid for pids in by_inode.values() for pid in pids}
    return Holders(
        by_inode=by_inode,
        commands={pid: f"prog{pid}" for pid in pids},
        cmdlines={pid: f"/usr/bin/prog{pid} --serve" for pid in pids},
        scanned=len(pids),
        denied=denied,
        privileged=privileged,
    )


def test_owners_per_process_and_unknown_per_uid_with_the_reason() -> None:
    counted = via_netlink(TABLE, 40000, 40999)
    owners = census.close_wait_owners(
        counted, holders({300: [77], 301: [77]}, denied=4, privileged=False)
    )
    assert [(o.pid, o.command, o.uid, o.count) for o in owners] == [
        (77, "prog77", 33, 2),
        (None, None, 1000, 1),
    ]
    assert owners[0].local == [("10.0.0.1:80", 2)]
    assert owners[0].cmdline == "/usr/bin/prog77 --serve"
    assert "not running as root" in owners[1].reason and "4 processes" in owners[1].reason
    as_root = census.close_wait_owners(counted, holders({300: [77]}, privileged=True))
    unknown = [o for o in as_root if o.pid is None]
    assert [(o.uid, o.count) for o in unknown] == [(33, 1), (1000, 1)]
    assert all("another PID namespace" in o.reason for o in unknown)


def test_a_socket_shared_over_fork_counts_for_each_holder() -> None:
    counted = via_netlink(TABLE, 40000, 40999)
    owners = census.close_wait_owners(counted, holders({300: [5, 6], 301: [6], 302: [6]}))
    assert [(o.pid, o.count) for o in owners] == [(6, 3), (5, 1)]


# --- findings -----------------------------------------------------------------------------------

LIVE = {
    "tcp_max_tw_buckets": "1000",
    "ip_local_port_range": "40000 40999",
    "ip_local_reserved_ports": "",
    "tcp_fin_timeout": "60",
    "tcp_tw_reuse": "2",
    "tcp_timestamps": "1",
}


def context(counted, owners=(), sysctl=None, counters=None, tw_live=None) -> census.CensusInput:
    values = {**LIVE, **(sysctl or {})}
    port_range = parse_port_range(values["ip_local_port_range"])
    usable = usable_ports(port_range, values["ip_local_reserved_ports"])
    return census.CensusInput(
        census=counted,
        owners=list(owners),
        sysctl=values,
        counters=counters,
        tw_live=tw_live,
        port_range=port_range,
        usable=usable,
    )


def clients(n: int, local="10.0.0.1", state="TIME_WAIT", start=40000) -> list[Sock]:
    return [Sock(state, (local, start + i), ("10.0.0.9", 443), inode=0) for i in range(n)]


@pytest.mark.parametrize(("count", "severity"), [(3, INFO), (10, WARNING), (1000, ERROR)])
def test_close_wait_finding_names_the_program(count: int, severity: str) -> None:
    table = [
        Sock("CLOSE_WAIT", ("10.0.0.1", 80), ("10.0.0.2", 1 + i), inode=10 + i)
        for i in range(count)
    ]
    counted = via_proc(table, 40000, 40999)
    owners = census.close_wait_owners(counted, holders({10 + i: [4242] for i in range(count)}))
    (finding,) = [f for f in census.findings(context(counted, owners)) if f.key == "CLOSE_WAIT"]
    assert finding.severity == severity
    # the command and its arguments (not its path) tell it apart from other prog4242s
    assert f"program prog4242 (--serve) (pid 4242) holds {count} CLOSE_WAIT" in finding.message
    assert "has not called close(). No sysctl bounds CLOSE_WAIT" in finding.message
    assert finding.message.count("close()") == 1  # said once, not repeated
    assert "10.0.0.1:80" in finding.message
    assert "RFC 9293" in finding.source
    assert census.suggest_profile(context(counted, owners)) is None  # no profile fixes a leak


@pytest.mark.parametrize(
    ("count", "severity"), [(499, None), (500, WARNING), (899, WARNING), (900, ERROR)]
)
def test_port_pressure_on_one_destination(count: int, severity: str | None) -> None:
    counted = via_netlink(clients(count) + clients(100, local="10.0.0.2"), 40000, 40999)
    found = [f for f in census.findings(context(counted)) if f.key.endswith("ip_local_port_range")]
    if severity is None:
        assert found == []
        assert census.suggest_profile(context(counted)) is None
        return
    (finding,) = found
    assert finding.severity == severity
    assert f"10.0.0.1 -> 10.0.0.9:443 holds {count} of the 1000 usable" in finding.message
    assert "EADDRNOTAVAIL" in finding.message and "client-profile" in finding.message
    assert "add source addresses" in finding.message
    assert "TCP_TIMEWAIT_LEN" in finding.source
    assert census.suggest_profile(context(counted))[0] == "client-profile"


def test_pressure_on_a_host_that_also_serves_suggests_the_proxy_profile() -> None:
    inbound = [
        Sock("ESTABLISHED", ("10.0.0.1", 443), ("192.0.2.1", 1000 + i), inode=i + 1)
        for i in range(census.PROXY_INBOUND)
    ]
    listener = [Sock("LISTEN", ("0.0.0.0", 443), ("0.0.0.0", 0), inode=9999)]
    counted = via_netlink(clients(600) + inbound + listener, 40000, 40999)
    assert census.suggest_profile(context(counted))[0] == "proxy-profile"
    fewer = via_netlink(clients(600) + inbound[1:] + listener, 40000, 40999)
    assert census.suggest_profile(context(fewer))[0] == "client-profile"


def test_pressure_when_the_profile_values_are_already_live() -> None:
    counted = via_netlink(clients(600, start=40000), 10240, 65535)
    ctx = context(counted, sysctl={"ip_local_port_range": "10240 65535", "tcp_tw_reuse": "1"})
    ctx = replace(ctx, usable=1000)  # as if ip_local_reserved_ports left only 1000
    (finding,) = [f for f in census.findings(ctx) if f.key.endswith("ip_local_port_range")]
    assert "client-profile" not in finding.message and "reuse connections" in finding.message
    assert census.suggest_profile(ctx) is None


@pytest.mark.parametrize(
    ("tw_live", "severity"), [(799, None), (800, WARNING), (1000, ERROR), (None, WARNING)]
)
def test_time_wait_against_the_bucket_cap(tw_live: int | None, severity: str | None) -> None:
    # 850 TIME_WAIT on the server side; the estimate (no sockstat) is TIME_WAIT + FIN_WAIT2 orphans
    counted = via_netlink(clients(850, local="10.0.0.3", start=1000), 40000, 40999)
    found = [
        f
        for f in census.findings(context(counted, tw_live=tw_live))
        if f.key.endswith("tcp_max_tw_buckets")
    ]
    if severity is None:
        assert found == []
        return
    (finding,) = found
    assert finding.severity == severity
    assert "skips TIME_WAIT" in finding.message and "TCPTimeWaitOverflow" in finding.message


def test_overflow_counter_is_reported() -> None:
    counted = via_netlink([], 1, 2)
    counters = {"TW": 5, "TWKilled": 0, "TWRecycled": 0, "TCPTimeWaitOverflow": 42}
    found = census.findings(context(counted, counters=counters, tw_live=0))
    (finding,) = [f for f in found if "TCPTimeWaitOverflow = 42" in f.message]
    assert finding.severity == WARNING and finding.source == NETSTAT_SOURCE


@pytest.mark.parametrize(("orphans", "severity"), [(1, INFO), (1000, WARNING)])
def test_fin_wait2_orphans_point_at_tcp_fin_timeout(orphans: int, severity: str) -> None:
    counted = via_proc(clients(orphans, state="FIN_WAIT2"), 1, 2)
    (finding,) = [
        f
        for f in census.findings(context(counted, sysctl={"tcp_fin_timeout": "17"}))
        if f.key == "net.ipv4.tcp_fin_timeout"
    ]
    assert finding.severity == severity
    assert f"{orphans} orphaned FIN_WAIT2" in finding.message
    assert "now 17 s" in finding.message and "does not shorten TIME_WAIT" in finding.message


def test_syn_recv_pile_suggests_the_server_profile() -> None:
    half_open = [
        Sock("SYN_RECV", ("10.0.0.1", 443), ("192.0.2.1", 1000 + i))
        for i in range(census.SYN_RECV_WARNING)
    ]
    counted = via_netlink(half_open, 40000, 40999)
    assert any(f.key == "SYN_RECV" for f in census.findings(context(counted)))
    assert census.suggest_profile(context(counted))[0] == "server-profile"
    assert census.suggest_profile(context(via_netlink(half_open[1:], 40000, 40999))) is None


def test_server_side_time_wait_is_explained() -> None:
    counted = via_netlink(
        clients(census.SERVER_TIME_WAIT_NOTE, local="10.0.0.1", start=0), 40000, 40999
    )
    (finding,) = [f for f in census.findings(context(counted, tw_live=0)) if f.key == "TIME_WAIT"]
    assert finding.severity == INFO and "closed those connections first" in finding.message


def test_every_finding_has_a_source() -> None:
    counted = via_proc(TABLE, 40000, 40999)
    owners = census.close_wait_owners(counted, holders({300: [1]}))
    for finding in census.findings(context(counted, owners, tw_live=1000)):
        assert finding.source and finding.severity in (INFO, WARNING, ERROR)


# --- the command on fake trees -------------------------------------------------------------------


def fake_sockets(machine: FakeMachine, socks: list[Sock], owners: dict[int, tuple[str, list]]):
    """proc/net/tcp{,6} and proc/<pid>/{comm,cmdline,fd/*} under the machine's root."""
    net = machine.root / "proc/net"
    net.mkdir(parents=True, exist_ok=True)
    for family, name in ((V4, "tcp"), (V6, "tcp6")):
        rows = [s for s in socks if s.family == family]
        (net / name).write_text(PROC_HEADER + "".join(proc_line(i, s) for i, s in enumerate(rows)))
    for pid, (comm, inodes) in owners.items():
        fd = machine.root / f"proc/{pid}/fd"
        fd.mkdir(parents=True)
        (fd.parent / "comm").write_text(comm + "\n")
        (fd.parent / "cmdline").write_bytes(f"/usr/bin/{comm}\0--serve\0".encode())
        os.symlink("/dev/null", fd / "0")
        os.symlink("pipe:[77]", fd / "1")
        for n, inode in enumerate(inodes, start=3):
            os.symlink(f"socket:[{inode}]", fd / str(n))


def test_sockets_json_on_a_fake_tree(modern: FakeMachine) -> None:
    modern.set("net.ipv4.ip_local_port_range", "40000\t40999")
    fake_sockets(modern, TABLE, {4242: ("leaky-app", [300, 301]), 17: ("other", [12345])})
    result = run_cli("--root", str(modern.root), "sockets", "--json", "--top", "2")
    doc = json.loads(result.out)
    assert result.code == 0  # a warning at most: two CLOSE_WAIT and one unknown
    assert doc["schema_version"] == 2 and doc["command"] == "sockets"
    assert doc["source"] == "proc" and doc["source_note"] is None  # no kernel under a tmp root
    # counted by hand from TABLE; a request socket (NEW_SYN_RECV) counts as SYN_RECV, as in ss
    assert doc["states"] == {
        "ESTABLISHED": 2,
        "SYN_SENT": 1,
        "SYN_RECV": 2,
        "FIN_WAIT1": 1,
        "FIN_WAIT2": 2,
        "TIME_WAIT": 7 + 3 + 4 + 5,
        "CLOSE": 0,
        "CLOSE_WAIT": 3,
        "LAST_ACK": 1,
        "LISTEN": 2,
        "CLOSING": 1,
    }
    assert doc["total"] == len(TABLE) and doc["orphans"] == 3
    pressure = doc["port_pressure"]
    assert pressure["range"] == [40000, 40999] and pressure["usable"] == 1000
    assert pressure["groups"] == 4 and len(pressure["top"]) == 2
    assert pressure["top"][0] == {
        "family": "ipv4",
        "local_address": "10.0.0.1",
        "remote_address": "10.0.0.9",
        "remote_port": 5432,
        "sockets": 10,
        "time_wait": 7,
        "percent": 1.0,
    }
    first, second = doc["close_wait_owners"]
    assert first["pid"] == 4242 and first["command"] == "leaky-app" and first["count"] == 2
    assert first["cmdline"] == "/usr/bin/leaky-app --serve"
    assert first["local_endpoints"] == [{"endpoint": "10.0.0.1:80", "count": 2}]
    assert second["pid"] is None and second["uid"] == 1000 and second["count"] == 1
    # every /proc/<pid>/fd of the tree was read (none denied): the holder is out of sight
    assert second["reason"].startswith("no process visible here holds them: they belong to a ")
    assert "another PID namespace" in second["reason"] and "root" not in second["reason"]
    assert doc["close_wait_unknown"] == 1
    assert doc["counters"] == {"TW": 0, "TWKilled": 0, "TWRecycled": 0, "TCPTimeWaitOverflow": 0}
    assert doc["time_wait"]["buckets_used_from"] == "sockstat"
    assert doc["sysctl"]["net.ipv4.tcp_max_tw_buckets"] == "131072"
    for finding in doc["findings"]:
        assert set(finding) == {"severity", "key", "message", "source"} and finding["source"]
    assert doc["exit_code"] == 0


def test_sockets_text_and_exit_1_on_error_findings(modern: FakeMachine) -> None:
    leak = [
        Sock("CLOSE_WAIT", ("10.0.0.1", 8080), ("10.0.0.5", 1 + i), inode=1000 + i)
        for i in range(census.CLOSE_WAIT_ERROR)
    ]
    fake_sockets(modern, leak + clients(3), {31: ("leaky-app", [1000 + i for i in range(1000)])})
    result = run_cli("--root", str(modern.root), "sockets")
    assert result.code == 1
    assert "\x1b[" not in result.out
    assert "CLOSE_WAIT owners (1000 sockets)" in result.out
    assert "error   CLOSE_WAIT" in result.out
    assert "program leaky-app (--serve) (pid 31) holds 1000 CLOSE_WAIT sockets" in result.out
    assert "TIME_WAIT    3" in result.out
    assert "Exit 1." in result.out


def test_unreadable_port_range_falls_back_to_the_default(modern: FakeMachine) -> None:
    modern.remove("net.ipv4.ip_local_port_range")
    fake_sockets(modern, clients(2, start=33000), {})
    doc = json.loads(run_cli("--root", str(modern.root), "sockets", "--json").out)
    assert doc["port_pressure"]["range"] == [32768, 60999]
    assert doc["port_pressure"]["range_assumed"] is True
    assert doc["port_pressure"]["sockets"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--top", "0"], "--top: expected a whole number >= 1"),
        (["--top", "many"], "--top: expected a whole number >= 1"),
        (["--watch", "0"], "--watch: expected seconds > 0"),
        (["--watch", "nan"], "--watch: expected seconds > 0"),
        (["--watch", "1", "--json"], "--watch and --json cannot be combined"),
        (["--source", "netlink"], "--source netlink asks the running kernel"),
        (["--source", "carrier-pigeon"], "'carrier-pigeon' is not one of"),
    ],
)
def test_bad_input_is_one_line_exit_2(modern: FakeMachine, argv: list[str], message: str) -> None:
    fake_sockets(modern, [], {})
    done = run_tcptune("--root", str(modern.root), "sockets", *argv)
    assert done.returncode == 2
    assert done.stderr.startswith("tcptune: error: ") and message in done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_help_has_examples_and_exit_codes() -> None:
    done = run_tcptune("sockets", "--help")
    assert done.returncode == 0
    assert "examples:" in done.stdout and "tcptune sockets --watch 2" in done.stdout
    assert "exit codes:" in done.stdout
    assert "sockets" in run_tcptune("--help").stdout


def test_without_netlink_it_reads_proc_and_says_so(monkeypatch) -> None:
    """The kernel refusing the dump (a sandbox, no inet_diag) falls back to /proc/net/tcp."""
    from tcptune import sockdiag

    def refused(family, states, feed):
        raise sockdiag.Unavailable("cannot open a NETLINK_SOCK_DIAG socket: Permission denied")

    monkeypatch.setattr(sockdiag, "dump", refused)
    monkeypatch.delenv("TCPTUNE_ROOT", raising=False)
    doc = json.loads(run_cli("sockets", "--json").out)
    assert doc["source"] == "proc"
    assert doc["source_note"].startswith("netlink unavailable (cannot open a NETLINK_SOCK_DIAG")
    assert run_cli("sockets", "--source", "netlink").code == 3


def test_no_socket_table_is_exit_3(modern: FakeMachine) -> None:
    done = run_tcptune("--root", str(modern.root), "sockets")
    assert done.returncode == 3
    assert "proc/net/tcp" in done.stderr and "Traceback" not in done.stderr


# --- --watch ------------------------------------------------------------------------------------


def read_until(fd: int, done, seconds: float = 30) -> bytes:
    """Read from fd until done(output) holds, EOF, or `seconds` pass: never blocks forever."""
    seen = b""
    deadline = time.monotonic() + seconds
    while not done(seen) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other end is gone
            break
        if not chunk:
            break
        seen += chunk
    return seen


def start_watch(root: Path, reader, seconds: str = "0.2") -> tuple[subprocess.Popen, int]:
    output, child_end = reader()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcptune", "--root", str(root), "sockets", "--watch", seconds],
        stdout=child_end,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k not in ("TCPTUNE_ROOT", "NO_COLOR")},
    )
    os.close(child_end)
    return proc, output


def interrupt(proc: subprocess.Popen, output: int) -> tuple[int, bytes]:
    try:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        os.close(output)
    return proc.returncode, stderr


@pytest.mark.parametrize("terminal", [True, False])
def test_watch_refreshes_until_ctrl_c_then_exits_0(modern: FakeMachine, terminal: bool) -> None:
    fake_sockets(modern, clients(4), {})
    marker = b"Ephemeral ports: 4 sockets"
    proc, output = start_watch(modern.root, pty.openpty if terminal else os.pipe)
    out = read_until(output, lambda seen: seen.count(marker) >= 2)
    code, err = interrupt(proc, output)
    assert out.count(marker) >= 2, out  # it refreshed
    if terminal:
        assert b"Ctrl-C to stop" in out  # the rich live view
    else:
        assert out.startswith(b"--- ") and b"\x1b[" not in out
    assert code == 0, err
    assert b"Traceback" not in err and b"interrupted" not in err


def test_watch_reads_the_table_again_at_each_refresh(modern: FakeMachine) -> None:
    fake_sockets(modern, clients(4), {})
    proc, output = start_watch(modern.root, os.pipe, seconds="0.1")
    first = read_until(output, lambda seen: b"Ephemeral ports: 4 sockets" in seen)
    (modern.root / "proc/net/tcp").write_text(
        PROC_HEADER + "".join(proc_line(i, s) for i, s in enumerate(clients(9)))
    )
    later = read_until(output, lambda seen: b"Ephemeral ports: 9 sockets" in seen)
    code, err = interrupt(proc, output)
    assert b"Ephemeral ports: 4 sockets" in first
    assert b"Ephemeral ports: 9 sockets" in later
    assert code == 0 and b"Traceback" not in err


@pytest.mark.parametrize(
    ("command", "cmdline", "shown"),
    [
        (
            "python3",
            "/usr/bin/python3 /srv/app/worker.py --queue orders",
            "python3 (worker.py --queue orders)",
        ),
        ("python3", "python3 -m http.server 8080", "python3 (-m http.server 8080)"),
        (
            "java",
            "/usr/lib/jvm/bin/java -Xmx2g -jar /opt/orders/orders-service.jar --port 9000",
            "java (-Xmx2g -jar orders-service.jar -…)",
        ),
        ("nginx", "nginx: worker process", "nginx (worker process)"),
        ("sleep", "", "sleep"),
    ],
)
def test_programs_are_named_with_enough_to_tell_them_apart(
    command: str, cmdline: str, shown: str
) -> None:
    owner = census.Owner(
        pid=1, command=command, cmdline=cmdline, uid=0, count=1, local=[], remote=[]
    )
    assert census.program_name(owner) == shown
    assert len(shown) <= census.PROGRAM_NAME_WIDTH


@pytest.mark.parametrize(("width", "height"), [(80, 24), (80, 16), (120, 40)])
def test_a_watch_frame_fits_the_screen_cause_first(
    modern: FakeMachine, width: int, height: int
) -> None:
    """On a small screen the frame keeps what explains the trouble: the findings and the
    CLOSE_WAIT owners first, then the trend of the counts that grow, the states in a line or two,
    and the port table last, cut to the rows left; no line wider than the screen."""
    from tcptune.cli import sockets
    from tcptune.system import System

    leak = [
        Sock("CLOSE_WAIT", ("10.0.0.1", 8080), ("10.0.0.5", 1 + i), inode=1000 + i)
        for i in range(50)
    ]
    many = [
        Sock("TIME_WAIT", (f"10.0.0.{1 + n % 20}", 40000 + n), (f"10.9.0.{n % 30}", 443), inode=0)
        for n in range(600)
    ]
    fake_sockets(modern, leak + many, {31: ("leaky-app", [1000 + i for i in range(50)])})
    system, first, history = System(modern.root), [], []
    frames = [
        sockets.watch_frame(system, "proc", 10, first, history, width=width, height=height)
        for _ in range(2)
    ]
    lines = frames[-1].splitlines()
    assert len(lines) <= height
    assert max(len(line) for line in lines) <= width
    order = [
        next(i for i, line in enumerate(lines) if line.startswith(prefix))
        for prefix in ("warning CLOSE_WAIT", "CLOSE_WAIT owners", "trend since start:", "states:",
                       "Ephemeral ports:")
    ]  # fmt: skip
    assert order == sorted(order)
    assert any(line.startswith("31 ") and "leaky-app (--serve)" in line for line in lines)
    trend = next(line for line in lines if line.startswith("trend since start:"))
    assert "TIME_WAIT 600 " in trend and "CLOSE_WAIT 50 " in trend and "+0" in trend
    ports = [line for line in lines if line.startswith("10.0.0.")]
    if height == 16:  # the port table gives way to the rest, and only it
        assert 0 < len(ports) < 10
    else:
        assert len(ports) == 10


def test_the_sparkline_spans_lowest_to_highest() -> None:
    from tcptune.cli.sockets import sparkline

    assert sparkline([0, 7, 14]) == "▁▄█"
    assert sparkline([5, 5]) == "▁▁"
    assert sparkline([3]) == "▁"


@pytest.mark.parametrize(
    ("local", "remote", "reuse", "loopback_wording"),
    [
        ("127.0.0.1", "127.0.0.1", "2", True),  # the default already covers loopback
        ("10.0.0.1", "127.0.0.5", "2", True),
        ("::1", "::1", "2", True),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1", "2", True),
        ("127.0.0.1", "127.0.0.1", "0", False),  # reuse off: turning it on does help
        ("10.0.0.1", "10.0.0.9", "2", False),  # not loopback: 2 does not reuse these
    ],
)
def test_pressure_towards_loopback_does_not_ask_for_tw_reuse_1(
    local: str, remote: str, reuse: str, loopback_wording: bool
) -> None:
    """tcp_tw_reuse = 2 reuses TIME_WAIT ports when either address is loopback
    (net/ipv4/tcp_ipv4.c:tcp_twsk_unique): towards loopback the remedy is a wider port range,
    not tcp_tw_reuse = 1 or a profile setting it."""
    family = V6 if ":" in local else V4
    table = [
        Sock("TIME_WAIT", (local, 40000 + i), (remote, 5000), family=family, inode=0)
        for i in range(600)
    ]
    counted = via_netlink(table, 40000, 40999)
    ctx = context(counted, sysctl={"tcp_tw_reuse": reuse})
    (finding,) = [f for f in census.findings(ctx) if f.key.endswith("ip_local_port_range")]
    if loopback_wording:
        assert "already reuses TIME_WAIT ports towards loopback" in finding.message
        assert "tcp_tw_reuse=1" not in finding.message and "client-profile" not in finding.message
        assert census.suggest_profile(ctx) is None
    else:
        assert "towards loopback" not in finding.message
        assert "client-profile" in finding.message
        assert census.suggest_profile(ctx)[0] == "client-profile"


def test_the_documented_thresholds_are_the_ones_used() -> None:
    """docs/commands.md states when a count becomes a finding; the numbers there are the ones
    the census uses."""
    from pathlib import Path

    from tcptune import rules

    doc = (Path(__file__).resolve().parent.parent / "docs/commands.md").read_text()
    table = doc.split("### When a count becomes a finding", 1)[1].split("###", 1)[0]
    rows = {
        line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")
    }
    assert (
        f"from {census.CLOSE_WAIT_WARNING} | from {census.CLOSE_WAIT_ERROR} |"
        in rows["CLOSE_WAIT sockets of one program"]
    )
    assert (
        f"from {census.PRESSURE_WARNING:.0%} | from {census.PRESSURE_ERROR:.0%} |"
        in rows["ephemeral ports held towards one destination, of the usable ones"]
    )
    assert (
        f"from {rules.TW_BUCKETS_NEAR_CAP:.0%} |"
        in rows["TIME_WAIT sockets against `tcp_max_tw_buckets`"]
    )
    assert f"from {census.FIN_WAIT2_WARNING} |" in rows["orphaned FIN_WAIT2 sockets"]
    assert f"from {census.SYN_RECV_WARNING} |" in rows["half-open connections (SYN_RECV)"]
    assert (
        f"from {census.SERVER_TIME_WAIT_NOTE:,} |"
        in rows["server-side TIME_WAIT (a local port outside the ephemeral range)"]
    )
