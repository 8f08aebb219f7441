"""The census counts socket tables in bulk: runs of records of one size, a column at a time. These
tests hold it to a count made one socket at a time, on tables of thousands of sockets that mix
what the readers meet: every state, records of several sizes interleaved (TIME_WAIT 96 bytes,
full sockets 124, IPv6 listeners 132), attribute bytes of any value, ports on and around the
range's bounds, addresses many and few, /proc rows whose sl field grows a digit, buffers and
chunks cut anywhere."""

from __future__ import annotations

import random
import socket
import struct
import sys
from collections import Counter
from dataclasses import dataclass

import pytest

from tcptune import census

V4, V6 = socket.AF_INET, socket.AF_INET6
TW, EST, CW, FW2, LISTEN = (
    census.TIME_WAIT,
    census.ESTABLISHED,
    census.CLOSE_WAIT,
    census.FIN_WAIT2,
    census.LISTEN,
)
DONE = struct.pack("=IHHIIi", 20, 3, 2, 1, 0, 0)


@dataclass(frozen=True)
class Sock:
    family: int
    state: int
    local: bytes  # 4 or 16 bytes
    port: int
    remote: bytes
    remote_port: int
    inode: int
    uid: int
    full: bool  # a full socket (attributes follow its inet_diag_msg), not a timewait/request one


def address(family: int, rng: random.Random, few: bool) -> bytes:
    if family == V4:
        return bytes((10, 0, rng.randrange(2) if few else rng.randrange(256), rng.randrange(1, 4)))
    tail = rng.randrange(3) if few else rng.randrange(1 << 16)
    return socket.inet_pton(V6, "2001:db8::")[:14] + tail.to_bytes(2, "big")


def table(seed: int, size: int, low: int, high: int) -> list[Sock]:
    """Runs of TIME_WAIT sockets (the bulk), broken by every other kind."""
    rng = random.Random(seed)
    ports = [low - 1, low, low + 1, high - 1, high, high + 1, 0, 65535, 1, 256, 255]
    ports = [p for p in ports if 0 <= p <= 65535]
    socks = []
    while len(socks) < size:
        family = V6 if rng.random() < 0.25 else V4
        few = rng.random() < 0.7
        local, remote = address(family, rng, few), address(family, rng, few)
        port = rng.choice(ports) if rng.random() < 0.1 else rng.randrange(1, 65536)
        remote_port = rng.choice((80, 443, 5432)) if few else rng.randrange(1, 65536)
        kind = rng.random()
        if kind < 0.85:
            run = rng.randrange(1, 400)
            for i in range(run):  # TIME_WAIT, with a few orphaned FIN_WAIT2 among them
                state = FW2 if rng.random() < 0.02 else TW
                p = (port + i) % 65536
                socks.append(Sock(family, state, local, p, remote, remote_port, 0, 0, False))
            continue
        state = rng.choice(
            [EST, EST, CW, CW, LISTEN, 2, census.FIN_WAIT1, FW2, census.LAST_ACK,
             census.CLOSING, census.SYN_RECV, 7]
        )  # fmt: skip
        full = state != census.SYN_RECV
        orphan = state in census.ORPHAN_STATES and rng.random() < 0.5
        inode = 0 if orphan or not full else rng.randrange(1, 1 << 32)
        uid = rng.choice((0, 33, 1000, 65534)) if full else 0
        socks.append(Sock(family, state, local, port, remote, remote_port, inode, uid, full))
    return socks


def expected(socks: list[Sock], low: int, high: int) -> dict:
    """The census, one socket at a time."""
    states = Counter()
    groups, time_wait = Counter(), Counter()
    orphans = fin_wait2 = established = 0
    close_wait = []
    for s in socks:
        states[s.state] += 1
        if s.state != LISTEN and low <= s.port <= high:
            key = (
                "ipv4" if s.family == V4 else "ipv6",
                socket.inet_ntop(s.family, s.local),
                socket.inet_ntop(s.family, s.remote),
                s.remote_port,
            )
            groups[key] += 1
            time_wait[key] += s.state == TW
            established += s.state == EST
        if s.state == CW:
            close_wait.append(
                (
                    s.inode,
                    s.uid,
                    census.endpoint(s.family, s.local, s.port),
                    census.endpoint(s.family, s.remote, s.remote_port),
                )
            )
        elif s.state in census.ORPHAN_STATES and s.inode == 0:
            orphans += 1
            fin_wait2 += s.state == FW2
    return {
        "states": {name: states[code] for code, name in census.STATE_NAMES.items()},
        "groups": sorted((*key, n, time_wait[key]) for key, n in groups.items()),
        "ephemeral": sum(groups.values()),
        "established": established,
        "orphans": (orphans, fin_wait2),
        "close_wait": sorted(close_wait),
    }


def counted(c: census.Census) -> dict:
    return {
        "states": c.states,
        "groups": sorted(
            (g.family, g.local_address, g.remote_address, g.remote_port, g.sockets, g.time_wait)
            for g in c.groups
        ),
        "ephemeral": c.ephemeral,
        "established": c.established_ephemeral,
        "orphans": (c.orphans, c.fin_wait2_orphans),
        "close_wait": [(w.inode, w.uid, w.local, w.remote) for w in c.close_wait],
    }


def message(s: Sock, rng: random.Random) -> bytes:
    """An inet_diag message as 6.18 sends it: timewait and request sockets with one 8-byte
    attribute, full sockets with 36 bytes of them (40 for an IPv6 listener); attribute bytes
    random, as nothing may read them."""
    attributes = 36 + (8 if s.family == V6 and s.state == LISTEN else 0) if s.full else 8
    body = (
        struct.pack("=BBBB", s.family, s.state, 0, 0)
        + struct.pack(">HH", s.port, s.remote_port)
        + s.local.ljust(16, b"\0")
        + s.remote.ljust(16, b"\0")
        + struct.pack("=I8s", 0, rng.randbytes(8))
        + struct.pack("=IIIII", rng.randrange(60000), 0, 0, s.uid, s.inode)
        + rng.randbytes(attributes)
    )
    return struct.pack("=IHHII", 16 + len(body), 20, 2, 1, 0) + body


def buffers(messages: list[bytes], rng: random.Random, most: int) -> list[bytes]:
    """Messages packed into buffers of at most `most` bytes, DONE after the last."""
    out, current = [], b""
    for m in [*messages, DONE]:
        if current and len(current) + len(m) > most:
            out.append(current)
            current = b""
            most = rng.randrange(200, most + 1) if most > 200 else most
        current += m
    return [*out, current]


def via_netlink(socks: list[Sock], low: int, high: int, seed: int, most: int) -> census.Census:
    rng = random.Random(seed)
    tally = census.Tally(census.NETLINK, low, high)
    for family in (V4, V6):
        feed = tally.netlink_feeder(family)
        parts = buffers([message(s, rng) for s in socks if s.family == family], rng, most)
        assert [feed(part) for part in parts] == [False] * (len(parts) - 1) + [True]
    return tally.finish()


def hex_address(raw: bytes) -> str:
    """As the kernel prints it: each 32-bit word of the network-order address with %08X."""
    words = (int.from_bytes(raw[i : i + 4], sys.byteorder) for i in range(0, len(raw), 4))
    return "".join(f"{w:08X}" for w in words)


def proc_row(n: int, s: Sock) -> str:
    local = f"{hex_address(s.local)}:{s.port:04X}"
    remote = f"{hex_address(s.remote)}:{s.remote_port:04X}"
    if s.full:
        rest = (
            f"00000000:00000000 00:00000000 00000000 {s.uid:5d} {0:8d} {s.inode} 1 "
            "0000000000000000 100 0 0 10 0"
        )
    else:
        rest = f"00000000:00000000 03:00001234 00000000 {0:5d} {0:8d} 0 3 0000000000000000"
    row = f"{n:4d}: {local} {remote} {s.state:02X} {rest}"
    return (row.ljust(149) if s.family == V4 else row) + "\n"  # tcp4_seq_show pads to 149


def proc_text(socks: list[Sock], family: int) -> bytes:
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt\n"
    rows = (proc_row(n, s) for n, s in enumerate(s for s in socks if s.family == family))
    return (header + "".join(rows)).encode()


def via_proc(socks: list[Sock], low: int, high: int, seed: int, most: int) -> census.Census:
    rng = random.Random(seed)
    tally = census.Tally(census.PROC, low, high)
    for family in (V4, V6):
        text = proc_text(socks, family)
        cuts = sorted(rng.randrange(len(text)) for _ in range(len(text) // most))
        edges = zip([0, *cuts], [*cuts, len(text)], strict=True)
        tally.feed_proc(family, [text[a:b] for a, b in edges])
    return tally.finish()


RANGES = [(32768, 60999), (1024, 65535), (40000, 40000), (40000, 40255), (0, 0), (61000, 32768)]


@pytest.mark.parametrize(("low", "high"), RANGES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bulk_counts_equal_one_at_a_time(seed: int, low: int, high: int) -> None:
    socks = table(seed, 12000, low, high)
    want = expected(socks, low, high)
    assert counted(via_netlink(socks, low, high, seed, 32 * 1024)) == want
    assert counted(via_proc(socks, low, high, seed, 256 * 1024)) == want


def test_rows_are_counted_in_bulk_not_one_by_one(monkeypatch) -> None:
    """Only the rows that need more than their columns (CLOSE_WAIT, orphans, a run's odd row)
    are parsed on their own; netlink messages never are."""
    parsed = Counter()
    for name in ("_proc_row", "_message"):
        original = getattr(census.Tally, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            parsed[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(census.Tally, name, spy)
    socks = table(4, 20000, 32768, 60999)
    want = expected(socks, 32768, 60999)
    assert counted(via_netlink(socks, 32768, 60999, 4, 32 * 1024)) == want
    assert counted(via_proc(socks, 32768, 60999, 4, 1 << 20)) == want
    assert parsed["_message"] == 0
    assert parsed["_proc_row"] < len(socks) // 10


def test_small_buffers_and_chunks_give_the_same_counts() -> None:
    socks = table(7, 3000, 32768, 60999)
    want = expected(socks, 32768, 60999)
    assert counted(via_netlink(socks, 32768, 60999, 7, 300)) == want  # a message or two each
    assert counted(via_netlink(socks, 32768, 60999, 7, 300_000)) == want  # past 64 KiB
    assert counted(via_proc(socks, 32768, 60999, 7, 97)) == want  # rows cut everywhere


def test_proc_rows_past_ten_thousand_widen_the_sl_field() -> None:
    socks = table(11, 26000, 1024, 65535)
    assert sum(s.family == V4 for s in socks) > 10000  # rows 10000 on have a 5-digit sl
    assert counted(via_proc(socks, 1024, 65535, 11, 1 << 20)) == expected(socks, 1024, 65535)


def test_proc_lines_as_str_still_count() -> None:
    """feed_proc takes the rows as str too, one by one (as callers passed them before)."""
    socks = table(5, 4000, 32768, 60999)
    tally = census.Tally(census.PROC, 32768, 60999)
    for family in (V4, V6):
        tally.feed_proc(family, proc_text(socks, family).decode().splitlines(keepends=True))
    assert counted(tally.finish()) == expected(socks, 32768, 60999)


def test_proc_rows_not_in_the_kernels_format_are_skipped() -> None:
    socks = table(9, 2000, 32768, 60999)
    text = proc_text(socks, V4)
    rows = text.split(b"\n")
    rows[5] = b"   4: not hex at all" + b" " * 120  # same length as its neighbours
    rows[6] = rows[6].replace(b":", b"-", 2)
    rows[7] = b"\xff\xfe" * 70
    tally = census.Tally(census.PROC, 32768, 60999)
    tally.feed_proc(V4, [b"\n".join(rows)])
    v4 = [s for s in socks if s.family == V4]
    assert counted(tally.finish()) == expected([*v4[:4], *v4[7:]], 32768, 60999)


def test_a_few_other_states_among_time_wait_ones() -> None:
    """Every port in the range, a few FIN_WAIT2 and ESTABLISHED sockets among the TIME_WAIT
    ones: counted as TIME_WAIT in bulk, then taken off one by one."""
    rng = random.Random(3)
    socks = []
    for i in range(30000):
        family = V4 if i % 3 else V6
        local, remote = address(family, rng, True), address(family, rng, True)
        state = rng.choice((FW2, EST)) if rng.random() < 0.03 else TW
        full = state == EST
        inode = rng.randrange(1, 1000) if full else 0
        socks.append(Sock(family, state, local, 20000 + i % 20000, remote, 443, inode, 0, full))
    for proc in (False, True):
        read = via_proc if proc else via_netlink
        assert counted(read(socks, 1024, 65535, 3, 32 * 1024)) == expected(socks, 1024, 65535)


def test_memory_holds_groups_not_sockets() -> None:
    """A hundred thousand TIME_WAIT sockets towards one destination leave one group behind."""
    local, remote = bytes((10, 0, 0, 1)), bytes((10, 0, 0, 9))
    socks = [Sock(V4, TW, local, 1024 + i % 60000, remote, 443, 0, 0, False) for i in range(100000)]
    tally = census.Tally(census.NETLINK, 1024, 65535)
    feed = tally.netlink_feeder(V4)
    rng = random.Random(0)
    for part in buffers([message(s, rng) for s in socks], rng, 32 * 1024):
        feed(part)
    assert [len(c) for c in tally._groups.values()] == [1]
    (group,) = tally.finish().groups
    assert (group.sockets, group.time_wait) == (100000, 100000)
