"""The census against oracles of its own: a count made one socket at a time (test_census_bulk's
`expected`, which reads each record as include/uapi/linux/inet_diag.h lays it out), netlink
framing as NLMSG_NEXT walks it (every message starts 4-byte aligned), and tables worked out by
hand from docs/commands.md ("When a count becomes a finding") for the findings users read."""

from __future__ import annotations

import errno
import os
import random
import socket
import struct

import pytest
from test_census_bulk import DONE, V4, V6, Sock, counted, expected, message, proc_text, table

from tcptune import census
from tcptune.model import ERROR, INFO, WARNING, Holders

LOW, HIGH = 40000, 40999
STATES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]


def every_kind(low: int = LOW, high: int = HIGH) -> list[Sock]:
    """Every state, both families, local ports on both sides of both bounds, with and without
    a file (inode 0: an orphan when its state is one)."""
    socks = []
    for n, (state, family, port) in enumerate(
        (s, f, p)
        for s in STATES
        for f in (V4, V6)
        for p in (low - 1, low, high, high + 1)
        if 0 <= p <= 0xFFFF
    ):
        local = (
            bytes((10, 0, 0, 1 + n % 3))
            if family == V4
            else socket.inet_pton(V6, f"fd00::{n % 3 + 1}")
        )
        remote = bytes((192, 0, 2, 9)) if family == V4 else socket.inet_pton(V6, "2001:db8::9")
        inode = 0 if n % 2 else 1000 + n
        full = state != census.SYN_RECV
        socks.append(Sock(family, state, local, port, remote, 443 + n % 2, inode, n % 4, full))
    return socks


def framed(body: bytes, length: int) -> bytes:
    """One message of `length` bytes (header included; attribute bytes added to reach it),
    padded to 4 bytes as the kernel sends it (NLMSG_ALIGN)."""
    assert length >= 16 + len(body)
    message = struct.pack("=IHHII", length, 20, 2, 1, 0) + body.ljust(length - 16, b"\x5a")
    return message + bytes(-length % 4)


def feed_all(socks: list[Sock], lengths, low: int = LOW, high: int = HIGH) -> census.Census:
    rng = random.Random(5)
    tally = census.Tally(census.NETLINK, low, high)
    for family in (V4, V6):
        feed = tally.netlink_feeder(family)
        data = b""
        for i, s in enumerate(x for x in socks if x.family == family):
            body = message(s, rng)[16:]
            data += framed(body, lengths(i, len(body) + 16))
        assert feed(data + DONE) is True
    return tally.finish()


def test_long_messages_are_counted_one_by_one_as_in_bulk() -> None:
    """Messages past 64 KiB (attributes that long) are parsed on their own; the counts are those
    of the one-at-a-time reading."""
    socks = every_kind()
    assert counted(feed_all(socks, lambda i, n: 0x10000 + 4 * i)) == expected(socks, LOW, HIGH)


@pytest.mark.parametrize("odd", [1, 2, 3])
def test_unaligned_messages_are_followed_by_padding(odd: int) -> None:
    """A message whose length is not a multiple of 4 is padded to one (NLMSG_ALIGN); the next
    starts after the padding, as NLMSG_NEXT finds it."""
    socks = every_kind()
    want = expected(socks, LOW, HIGH)
    assert counted(feed_all(socks, lambda i, n: n + odd)) == want
    # aligned and unaligned ones mixed
    assert counted(feed_all(socks, lambda i, n: n + (odd if i % 3 else 0))) == want


def test_one_destination_is_one_group_however_its_messages_came() -> None:
    """Sockets towards one destination, some in messages read one by one (past 64 KiB), the
    rest in runs: one group, counted once each."""
    local, remote = bytes((10, 0, 0, 1)), bytes((192, 0, 2, 9))
    local6, remote6 = socket.inet_pton(V6, "fd00::1"), socket.inet_pton(V6, "2001:db8::9")
    socks = [
        Sock(V4, census.TIME_WAIT, local, LOW + i, remote, 443, 0, 0, False) for i in range(40)
    ]
    socks += [
        Sock(V6, census.TIME_WAIT, local6, LOW + i, remote6, 443, 0, 0, False) for i in range(40)
    ]
    found = feed_all(socks, lambda i, n: 0x10000 + 4 if i % 5 == 0 else n)
    assert [(g.family, g.sockets, g.time_wait) for g in found.groups] == [
        ("ipv4", 40, 40),
        ("ipv6", 40, 40),
    ]
    assert counted(found) == expected(socks, LOW, HIGH)


@pytest.mark.parametrize(("low", "high"), [(1, 65535), (40000, 40000), (443, 443), (2, 1)])
def test_long_messages_at_other_ranges(low: int, high: int) -> None:
    socks = every_kind(low, high)
    result = counted(feed_all(socks, lambda i, n: 0x10000 + 4, low, high))
    assert result == expected(socks, low, high)


def test_a_port_on_either_bound_is_ephemeral() -> None:
    """ip_local_port_range is inclusive: a local port equal to low or to high is ephemeral, one
    outside is not (hand count: one socket on each of the four ports, listeners never count)."""
    local, remote = bytes((10, 0, 0, 1)), bytes((10, 0, 0, 9))
    socks = [
        Sock(V4, census.ESTABLISHED, local, port, remote, 80, 7, 0, True)
        for port in (LOW - 1, LOW, HIGH, HIGH + 1)
    ] + [Sock(V4, census.LISTEN, local, LOW, bytes(4), 0, 8, 0, True)]
    for lengths in (lambda i, n: n, lambda i, n: n + 1, lambda i, n: 0x10000):
        found = feed_all(socks, lengths)
        assert [(g.local_address, g.sockets) for g in found.groups] == [("10.0.0.1", 2)]
        assert found.ephemeral == 2 and found.established_ephemeral == 2
        assert found.states["ESTABLISHED"] == 4 and found.states["LISTEN"] == 1


# --- netlink framing: include/uapi/linux/netlink.h (NLMSG_OK, NLMSG_NEXT, nlmsgerr) -----------

NLMSG_NOOP, NLMSG_ERROR = 1, 2
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_ECHO, NLM_F_DUMP_INTR = 0x1, 0x2, 0x4, 0x8, 0x10


def nlmsg(kind: int, payload: bytes = b"", length: int | None = None, flags: int = 2) -> bytes:
    """A netlink message: nlmsghdr (len, type, flags, seq, pid) and its payload, padded to 4."""
    length = 16 + len(payload) if length is None else length
    data = struct.pack("=IHHII", length, kind, flags, 1, 0) + payload
    return data + bytes(-len(data) % 4)


def time_wait(port: int) -> Sock:
    return Sock(V4, census.TIME_WAIT, bytes((10, 0, 0, 1)), port, bytes((192, 0, 2, 9)), 443, 0,
                0, False)  # fmt: skip


def diag(port: int, flags: int = NLM_F_MULTI) -> bytes:
    data = message(time_wait(port), random.Random(port))
    return data[:6] + struct.pack("=H", flags) + data[8:]


def fed(*buffers: bytes) -> tuple[census.Census, list[bool]]:
    tally = census.Tally(census.NETLINK, LOW, HIGH)
    feed = tally.netlink_feeder(V4)
    said = [feed(data) for data in buffers]
    return tally.finish(), said


def test_messages_that_are_no_socket_are_stepped_over() -> None:
    """A no-op (16 bytes: a header alone), an acknowledgement (nlmsgerr with error 0), a message
    whose length is not a multiple of 4 (NLMSG_NEXT steps over its padding), and a sock_diag
    message too short to hold an inet_diag_msg are no sockets; the sockets around them count, and
    a buffer that ends on a bare header is whole."""
    ack = nlmsg(NLMSG_ERROR, struct.pack("=i", 0) + nlmsg(20, bytes(56))[:16])
    bare_ack = nlmsg(NLMSG_ERROR, struct.pack("=i", 0))  # 20 bytes: the code alone
    odd = nlmsg(NLMSG_NOOP, b"\x07")  # nlmsg_len 17, then 3 bytes of padding
    short_diag = nlmsg(census.SOCK_DIAG_BY_FAMILY, bytes(24))  # 40 bytes: no inet_diag_msg
    found, said = fed(
        diag(LOW) + nlmsg(NLMSG_NOOP) + diag(LOW + 1) + ack + diag(LOW + 2) + odd
        + diag(LOW + 3) + short_diag + diag(LOW + 4),
        diag(LOW + 5) + bare_ack + nlmsg(NLMSG_NOOP),
        nlmsg(NLMSG_NOOP) + DONE,
    )  # fmt: skip
    assert said == [False, False, True]
    assert found.states["TIME_WAIT"] == found.total == 6
    assert [(g.remote_address, g.sockets, g.time_wait) for g in found.groups] == [
        ("192.0.2.9", 6, 6)
    ]


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (diag(LOW) + bytes(1), "malformed netlink message of 1 bytes"),
        (diag(LOW) + bytes(8), "malformed netlink message of 8 bytes"),
        (diag(LOW) + bytes(15), "malformed netlink message of 15 bytes"),
        (nlmsg(NLMSG_NOOP, length=12) + diag(LOW), "malformed netlink message of 12 bytes"),
        (nlmsg(NLMSG_ERROR, bytes(4), length=0), "malformed netlink message of 0 bytes"),
        (diag(LOW) + nlmsg(NLMSG_ERROR), "malformed netlink message of 16 bytes"),
        (nlmsg(NLMSG_ERROR, bytes(2)), "malformed netlink message of 18 bytes"),
        (struct.pack("=I", 200) + diag(LOW)[4:], "netlink message of 200 bytes cut short"),
        (bytes(6), "malformed netlink message of 6 bytes"),
        # an error message whose nlmsg_len has room for its code, but the buffer has not
        (
            diag(LOW) + struct.pack("=IHHII", 36, NLMSG_ERROR, 0, 1, 0) + bytes(2),
            "malformed netlink message of 36 bytes",
        ),
    ],
)
def test_a_reply_not_framed_as_netlink_frames_it_is_a_protocol_error(data, text) -> None:
    """NLMSG_OK: at least a header left, nlmsg_len at least a header and within the buffer; an
    error message holds its code. Anything else is EPROTO, saying what was found; none of it
    loops or reads past the buffer."""
    with pytest.raises(OSError) as raised:
        fed(data, DONE)
    assert (raised.value.errno, raised.value.strerror) == (errno.EPROTO, text)


def test_an_error_reply_is_the_kernels_errno() -> None:
    refused = nlmsg(NLMSG_ERROR, struct.pack("=i", -errno.EACCES) + diag(LOW)[:16])
    with pytest.raises(OSError) as raised:
        fed(diag(LOW) + refused)
    assert (raised.value.errno, raised.value.strerror) == (errno.EACCES, os.strerror(errno.EACCES))


@pytest.mark.parametrize(
    ("flags", "interrupted"),
    [
        (NLM_F_MULTI, False),
        (NLM_F_REQUEST | NLM_F_MULTI | NLM_F_ACK | NLM_F_ECHO, False),
        (0xFF & ~NLM_F_DUMP_INTR, False),
        (NLM_F_DUMP_INTR, True),
        (NLM_F_MULTI | NLM_F_DUMP_INTR, True),
    ],
)
def test_only_nlm_f_dump_intr_marks_a_dump_interrupted(flags: int, interrupted: bool) -> None:
    found, _ = fed(b"".join(diag(LOW + i, flags) for i in range(10)), DONE)
    assert (found.interrupted, found.total) == (interrupted, 10)


@pytest.mark.parametrize("length", [256, 512, 88 + 256])
def test_runs_of_messages_whose_length_has_a_zero_or_shared_low_byte(length: int) -> None:
    """Runs are told apart by the whole nlmsg_len: messages of 512 and of 768 bytes (the same
    low byte) or of 88 and 344 bytes, back to back, are each counted as what they are."""
    rng = random.Random(length)
    local, remote = bytes((10, 0, 0, 1)), bytes((192, 0, 2, 9))
    socks = [Sock(V4, census.TIME_WAIT, local, LOW + i, remote, 443, 0, 0, False)
             for i in range(40)]  # fmt: skip
    socks += [Sock(V4, census.ESTABLISHED, local, LOW + 100 + i, remote, 80, 9 + i, 0, True)
              for i in range(40)]  # fmt: skip
    data = b"".join(framed(message(s, rng)[16:88], length) for s in socks[:40])
    data += b"".join(framed(message(s, rng)[16:88], length + 256) for s in socks[40:])
    tally = census.Tally(census.NETLINK, LOW, HIGH)
    assert tally.netlink_feeder(V4)(data + DONE) is True
    assert counted(tally.finish()) == expected(socks, LOW, HIGH)


def noop_filled(run: bytes, size: int) -> bytes:
    """`run`, then a no-op message that brings the buffer to exactly `size` bytes."""
    return run + nlmsg(NLMSG_NOOP, bytes(size - len(run) - 16))[: size - len(run)]


@pytest.mark.parametrize(
    ("before", "size"),
    [((), 0x10400), ((0x10000,), 0x10400), ((0xFFFF,), 0x10400), ((0x8000,), 0x10000)],
)
def test_a_message_claiming_more_than_its_buffer_is_never_a_runs_member(before, size) -> None:
    """In a buffer of 64 KiB or more, a message whose nlmsg_len has bits above the low 16 set
    (here 0x10058, which reads as 88 in them) is not taken for one more member of a run of
    88-byte messages: it is cut short, whatever buffers of that run's length came before (none,
    or one of 32 KiB, of 0xFFFF bytes or of exactly 64 KiB): it does not fit in the buffer."""
    rng = random.Random(3)
    body = [framed(message(time_wait(LOW + i % 900), rng)[16:88], 88) for i in range(1600)]
    tally = census.Tally(census.NETLINK, LOW, HIGH)
    feed = tally.netlink_feeder(V4)
    for length in before:
        assert feed(noop_filled(b"".join(body[: length // 88 - 1]), length)) is False
    bad = struct.pack("=I", 0x10000 + 88) + body[20][4:]
    data = noop_filled(b"".join(body[:20]) + bad + b"".join(body[21 : size // 88 - 1]), size)
    assert len(data) == size
    with pytest.raises(OSError) as raised:
        feed(data + DONE)
    assert raised.value.strerror == f"netlink message of {0x10058} bytes cut short"


def pieces(tally: census.Tally, length: int) -> list[int]:
    """The sizes of what the tally holds, not yet counted, of messages of `length` bytes."""
    return [len(piece) for piece in tally._batches.get((V4, length), [0])[1:]]


@pytest.mark.parametrize("length", [88, 96, 124, 256, 512])
def test_equal_messages_are_taken_as_one_run(length: int) -> None:
    """Messages of one length back to back are gathered as one run, not one by one: the Python
    work of a buffer does not grow with its sockets (a run as short as the run minimum too, and
    one after a message of another kind)."""
    rng = random.Random(length)
    for count in (census._MIN_RUN, 200):
        run = b"".join(framed(message(time_wait(LOW + i), rng)[16:88], length)
                       for i in range(count))  # fmt: skip
        for head in (b"", nlmsg(NLMSG_NOOP)):
            tally = census.Tally(census.NETLINK, LOW, HIGH)
            assert tally.netlink_feeder(V4)(head + run) is False
            assert pieces(tally, length) == [len(run)]
            assert tally.netlink_feeder(V4)(DONE) is True
            assert tally.finish().states["TIME_WAIT"] == count


def test_a_message_of_a_runs_length_but_no_socket_ends_the_run() -> None:
    """A no-op message as long as the socket messages around it is no socket: the run stops
    before it and goes on after it."""
    rng = random.Random(8)
    messages = [framed(message(time_wait(LOW + i), rng)[16:88], 96) for i in range(30)]
    data = messages[0] + nlmsg(NLMSG_NOOP, bytes(80)) + b"".join(messages[1:])
    found, _ = fed(data, DONE)
    assert (found.states["TIME_WAIT"], found.total) == (30, 30)
    data = b"".join(messages[:10]) + nlmsg(NLMSG_NOOP, bytes(80)) + b"".join(messages[10:])
    found, _ = fed(data, DONE)
    assert (found.states["TIME_WAIT"], found.total) == (30, 30)


def test_messages_of_exactly_64_kib_are_counted() -> None:
    """nlmsg_len 0x10000 (attributes that long), nine back to back: each is one socket."""
    rng = random.Random(9)
    socks = [time_wait(LOW + i) for i in range(9)]
    data = b"".join(framed(message(s, rng)[16:88], 0x10000) for s in socks)
    found, said = fed(data, DONE)
    assert said == [False, True]
    assert counted(found) == expected(socks, LOW, HIGH)


def test_what_waits_to_be_counted_stays_bounded() -> None:
    """Messages gathered across buffers are counted once half a megabyte of them waits: memory
    holds at most that and one buffer, however many sockets the dump brings."""
    rng = random.Random(10)
    buffer = b"".join(framed(message(time_wait(LOW + i % 900), rng)[16:88], 96)
                      for i in range(340))  # fmt: skip
    tally = census.Tally(census.NETLINK, LOW, HIGH)
    feed = tally.netlink_feeder(V4)
    for _ in range(100):  # 3.2 MB of messages
        assert feed(buffer) is False
        assert sum(pieces(tally, 96)) < census._BATCH_BYTES + len(buffer)
    assert feed(DONE) is True
    assert tally.finish().states["TIME_WAIT"] == 34000


def test_a_run_whose_key_bytes_take_every_value() -> None:
    """Sockets towards 600 destinations whose two last address bytes take all 256 values each
    (the groups are told apart in 16-bit units, some in the surrogate range): each group is
    counted as one socket at a time counts it."""
    rng = random.Random(11)
    local = bytes((10, 0, 0, 1))
    socks = [Sock(V4, census.TIME_WAIT, local, LOW + i, bytes((10, 9, i % 256, i * 37 % 256)),
                  443, 0, 0, False) for i in range(600)]  # fmt: skip
    data = b"".join(framed(message(s, rng)[16:88], 96) for s in socks)
    found, _ = fed(data, DONE)
    assert counted(found) == expected(socks, LOW, HIGH)


def time_waits(ports) -> list[Sock]:
    return [time_wait(port) for port in ports]


def proc_counted(chunks, family: int = V4, low: int = LOW, high: int = HIGH) -> census.Census:
    tally = census.Tally(census.PROC, low, high)
    tally.feed_proc(family, chunks)
    return tally.finish()


def test_equal_rows_are_counted_without_parsing_one(monkeypatch) -> None:
    """/proc rows of one length in the kernel's layout are counted column by column: none is
    parsed on its own (the header line aside), down to a run of the run minimum."""
    parsed = []
    original = census.Tally._proc_row

    def spy(self, family, row, counted=False):
        parsed.append(row)
        return original(self, family, row, counted)

    monkeypatch.setattr(census.Tally, "_proc_row", spy)
    for count in (census._MIN_RUN, 300):
        parsed.clear()
        socks = time_waits(range(LOW, LOW + count))
        assert counted(proc_counted([proc_text(socks, V4)])) == expected(socks, LOW, HIGH)
        assert [row[:6] for row in parsed] == [b"  sl  "]


@pytest.mark.parametrize("where", [[0], [5], [7, 30], [0, 59]])
def test_rows_not_in_the_kernels_layout_inside_a_run_are_skipped(where) -> None:
    """A row of a run's length whose state or address is not hex is no socket; the rows around
    it count (first row, middle, several)."""
    socks = time_waits(range(LOW, LOW + 60))
    lines = proc_text(socks, V4).splitlines(keepends=True)
    for i in where:
        row = bytearray(lines[1 + i])
        at = row.index(b":", 6) - 8  # the local address's first hex digit
        row[at : at + 2] = b"ZZ" if i % 2 else b"G0"
        lines[1 + i] = bytes(row)
    kept = [s for i, s in enumerate(socks) if i not in where]
    assert counted(proc_counted([b"".join(lines)])) == expected(kept, LOW, HIGH)


def test_an_empty_line_where_a_chunk_begins() -> None:
    socks = time_waits(range(LOW, LOW + 40))
    text = proc_text(socks, V4)
    cut = text.index(b"\n", len(text) // 2) + 1
    found = proc_counted([text[:cut], b"\n" + text[cut:]])
    assert counted(found) == expected(socks, LOW, HIGH)


def test_proc_text_that_is_not_ascii_or_ends_without_a_newline() -> None:
    """Rows as str: a row holding a character that is not ASCII is no socket; the last row
    needs no newline."""
    socks = time_waits(range(LOW, LOW + 20))
    lines = proc_text(socks, V4).decode().splitlines(keepends=True)
    lines[3] = lines[3].replace(":", "\u00e9", 1)
    lines[-1] = lines[-1].rstrip("\n")
    kept = [s for i, s in enumerate(socks) if i != 2]
    assert counted(proc_counted(lines)) == expected(kept, LOW, HIGH)


@pytest.mark.parametrize("as_text", [False, True])
def test_proc_is_counted_a_chunk_at_a_time(monkeypatch, as_text: bool) -> None:
    """/proc/net/tcp is counted as it is read: what waits to be counted is at most half a
    megabyte of rows (str) or one chunk read (bytes), plus one row, whatever the table's size."""
    sizes = []
    original = census.Tally._proc_chunk

    def spy(self, family, data, end):
        sizes.append(end)
        return original(self, family, data, end)

    monkeypatch.setattr(census.Tally, "_proc_chunk", spy)
    socks = time_waits(LOW + i % 900 for i in range(12000))  # about 1.8 MB of rows
    text = proc_text(socks, V4)
    if as_text:
        parts, most = text.decode().splitlines(keepends=True), census._BATCH_BYTES
    else:
        parts, most = [text[i : i + 65536] for i in range(0, len(text), 65536)], 65536
    assert counted(proc_counted(parts)) == expected(socks, LOW, HIGH)
    assert len(sizes) >= len(text) // (most + 150) and max(sizes) <= most + 150


@pytest.mark.parametrize("source", [census.NETLINK, census.PROC])
def test_ports_around_the_ranges_top_in_one_run(source: str) -> None:
    """Local ports 60990 to 61009 (one high byte, 0xEE) against ip_local_port_range 32768 60999:
    ten are ephemeral, in one run as one at a time."""
    socks = time_waits(range(60990, 61010))
    if source == census.PROC:
        found = proc_counted([proc_text(socks, V4)], low=32768, high=60999)
    else:
        rng = random.Random(12)
        tally = census.Tally(census.NETLINK, 32768, 60999)
        data = b"".join(framed(message(s, rng)[16:88], 96) for s in socks)
        assert tally.netlink_feeder(V4)(data + DONE) is True
        found = tally.finish()
    assert found.ephemeral == 10
    assert counted(found) == expected(socks, 32768, 60999)


def test_proc_rows_as_str_past_a_batch() -> None:
    """Rows given as str are gathered and counted by the half megabyte: a table larger than
    that counts as the bytes would, and so does one whose last row has no newline and ends
    exactly where a batch is full."""
    socks = [s for s in table(6, 6000, 32768, 60999) if s.family == V4]
    lines = proc_text(socks, V4).decode().splitlines(keepends=True)
    assert sum(map(len, lines)) > census._BATCH_BYTES
    tally = census.Tally(census.PROC, 32768, 60999)
    tally.feed_proc(V4, lines)
    assert counted(tally.finish()) == expected(socks, 32768, 60999)
    total, last = 0, 0
    while total < census._BATCH_BYTES:
        total += len(lines[last])
        last += 1
    cut = lines[:last]
    cut[-1] = cut[-1].rstrip("\n")
    tally = census.Tally(census.PROC, 32768, 60999)
    tally.feed_proc(V4, cut)
    assert counted(tally.finish()) == expected(socks[: last - 1], 32768, 60999)


# --- who holds CLOSE_WAIT ------------------------------------------------------------------------


def owner(command: str | None, cmdline: str | None) -> census.Owner:
    return census.Owner(
        pid=1, command=command, cmdline=cmdline, uid=0, count=1, local=[], remote=[]
    )


# (command, cmdline, width) -> name shown: argv[0] left out when it is the command (or its path),
# absolute paths by their last part, the rest cut to the width with "…"
PROGRAM_NAMES = [
    (None, None, 40, "?"),
    ("python3", None, 40, "python3"),
    ("python3", "", 40, "python3"),
    ("python3", "python3", 40, "python3"),
    ("python3", "python3 app.py --port 8080", 40, "python3 (app.py --port 8080)"),
    ("python3", "/usr/bin/python3 /srv/app/app.py", 40, "python3 (app.py)"),
    ("python3", "/usr/bin/python3.11 -m http.server", 40, "python3 (-m http.server)"),
    ("python3", "env python3 x.py", 40, "python3 (env python3 x.py)"),
    ("sh", "bash -c run", 40, "sh (bash -c run)"),
    ("java", "java -jar /opt/app/orders.jar", 40, "java (-jar orders.jar)"),
    ("nginx", "nginx: worker process", 40, "nginx (worker process)"),
    ("cp", "cp / /tmp/x", 40, "cp (/ x)"),
    ("app", "app a/b/c", 40, "app (a/b/c)"),  # a relative path is kept whole
    (None, "/usr/sbin/sshd -D", 40, "? (sshd -D)"),
    # 40 wide: "python3 (" + 30 characters + ")" fits, 31 are cut to 29 and "…"
    ("python3", "python3 " + "a" * 30, 40, "python3 (" + "a" * 30 + ")"),
    ("python3", "python3 " + "a" * 31, 40, "python3 (" + "a" * 29 + "…)"),
    # never fewer than 8 characters of arguments
    ("python3", "python3 " + "b" * 9, 10, "python3 (" + "b" * 7 + "…)"),
    ("python3", "python3 " + "b" * 8, 10, "python3 (" + "b" * 8 + ")"),
]


@pytest.mark.parametrize(
    ("command", "cmdline", "width", "shown"),
    PROGRAM_NAMES,
    ids=[f"name{i}" for i in range(len(PROGRAM_NAMES))],
)
def test_program_names(command, cmdline, width, shown) -> None:
    assert census.program_name(owner(command, cmdline), width) == shown


def test_program_name_default_width_is_40() -> None:
    assert census.program_name(owner("python3", "python3 " + "a" * 31)) == (
        "python3 (" + "a" * 29 + "…)"
    )


def holders(by_inode=None, denied=0, privileged=True, commands=None) -> Holders:
    by_inode = by_inode or {}
    pids = {pid for found in by_inode.values() for pid in found}
    return Holders(
        by_inode=by_inode,
        commands=commands or {pid: f"prog{pid}" for pid in pids},
        cmdlines={pid: f"prog{pid} --serve" for pid in pids},
        scanned=len(pids),
        denied=denied,
        privileged=privileged,
    )


@pytest.mark.parametrize(
    ("denied", "privileged", "reason"),
    [
        (
            3,
            False,
            "not running as root: the open files of 3 processes of other users (/proc/<pid>/fd) "
            "cannot be read; run as root to name them",
        ),
        (1, True, "the open files of 1 processes (/proc/<pid>/fd) could not be read"),
        (
            0,
            False,
            "no process visible here holds them: they belong to a process in another PID "
            "namespace (a container), or were closed while tcptune looked",
        ),
        (
            0,
            True,
            "no process visible here holds them: they belong to a process in another PID "
            "namespace (a container), or were closed while tcptune looked",
        ),
    ],
)
def test_why_an_owner_is_unknown(denied: int, privileged: bool, reason: str) -> None:
    assert census.unknown_reason(holders(denied=denied, privileged=privileged)) == reason


def close_waits(*rows: tuple[int, int, str, str]) -> census.Census:
    """A census holding these CLOSE_WAIT sockets (inode, uid, local, remote)."""
    return census.Census(
        source=census.PROC,
        states={name: 0 for name in census.STATE_NAMES.values()},
        total=len(rows),
        orphans=0,
        fin_wait2_orphans=0,
        ephemeral=0,
        established_ephemeral=0,
        groups=[],
        close_wait=[census.CloseWait(inode=i, uid=u, local=lo, remote=r) for i, u, lo, r in rows],
        interrupted=False,
    )


def test_owners_largest_first_with_their_top_endpoints() -> None:
    rows = []
    # pid 7 holds 9 sockets on 7 local endpoints: 3 on :81, 2 on :86, one each on the others
    ports = [81, 81, 81, 86, 86, 85, 84, 83, 82]  # ties listed by name, not as they came
    rows += [
        (100 + i, 33, f"10.0.0.1:{p}", f"10.0.0.2:{5000 + i % 2}") for i, p in enumerate(ports)
    ]
    rows += [(200 + i, 0, "10.0.0.1:22", "10.0.0.3:6000") for i in range(2)]  # pid 3
    rows += [(300 + i, 0, "10.0.0.1:23", "10.0.0.3:6001") for i in range(2)]  # pid 2
    rows += [(400, 1000, "[::1]:9000", "[::1]:7000")]  # nobody visible: uid 1000
    rows += [(0, 1000, "[::1]:9001", "[::1]:7001")]  # inode 0: no file to match
    rows += [(500 + i, 65534, "10.0.0.1:24", "10.0.0.4:1") for i in range(2)]  # uid 65534
    found = holders({**{100 + i: [7] for i in range(9)}, 200: [3], 201: [3], 300: [2], 301: [2]})
    owners = census.close_wait_owners(close_waits(*rows), found)
    assert [(o.pid, o.uid, o.count) for o in owners] == [
        (7, 33, 9),
        (2, 0, 2),  # same count: a known pid first, the lower one first
        (3, 0, 2),
        (None, 1000, 2),
        (None, 65534, 2),
    ]
    assert owners[0].local == [
        ("10.0.0.1:81", 3),
        ("10.0.0.1:86", 2),
        ("10.0.0.1:82", 1),
        ("10.0.0.1:83", 1),
        ("10.0.0.1:84", 1),
    ]  # five at most, most first, then by name
    assert owners[0].remote == [("10.0.0.2:5000", 5), ("10.0.0.2:5001", 4)]
    assert (owners[0].command, owners[0].cmdline, owners[0].reason) == (
        "prog7",
        "prog7 --serve",
        "",
    )
    unknown = owners[3]
    assert (unknown.command, unknown.cmdline) == (None, None)
    assert unknown.reason.startswith("no process visible here holds them")
    assert unknown.local == [("[::1]:9000", 1), ("[::1]:9001", 1)]
    assert unknown.remote == [("[::1]:7000", 1), ("[::1]:7001", 1)]
    assert census.close_wait_owners(close_waits(*rows[:9]), found)[0].reason == ""


def test_close_wait_thresholds_and_wording() -> None:
    """info below 10, a warning from 10, an error from 1000 (docs/commands.md)."""
    for count, severity in [(1, INFO), (9, INFO), (10, WARNING), (999, WARNING), (1000, ERROR)]:
        rows = [(10 + i, 33, "10.0.0.1:80", f"10.0.0.2:{1 + i}") for i in range(count)]
        owners = census.close_wait_owners(
            close_waits(*rows), holders({10 + i: [4242] for i in range(count)})
        )
        (finding,) = census.findings(context(close_waits(*rows), owners))
        assert (finding.key, finding.severity) == ("CLOSE_WAIT", severity)
        assert finding.message == (
            f"program prog4242 (--serve) (pid 4242) holds {count} CLOSE_WAIT sockets (local "
            f"10.0.0.1:80 ({count})): the peer closed and the program has not called close(). No "
            "sysctl bounds CLOSE_WAIT and no profile helps. Fix the program: close the socket "
            "when recv() returns 0 (EOF) or on error."
        )
        assert finding.source == (
            "RFC 9293 section 3.3.2 (CLOSE-WAIT waits for the local close); /proc/<pid>/fd "
            "(socket:[inode])"
        )
    rows = [(0, 1000, "[::1]:9000", f"[::1]:{7000 + i}") for i in range(10)]
    owners = census.close_wait_owners(close_waits(*rows), holders(denied=2, privileged=False))
    (finding,) = census.findings(context(close_waits(*rows), owners))
    assert finding.severity == WARNING
    assert finding.message == (
        "10 CLOSE_WAIT sockets of uid 1000 (local [::1]:9000 (10)) whose program cannot be named: "
        "not running as root: the open files of 2 processes of other users (/proc/<pid>/fd) "
        "cannot be read; run as root to name them. Whichever program holds them has not called "
        "close(); no sysctl bounds CLOSE_WAIT."
    )


# --- findings on hand-made counts -----------------------------------------------------------------


def census_of(
    states: dict[str, int] | None = None,
    groups: list[census.Group] = (),
    fin_wait2_orphans: int = 0,
    established_ephemeral: int = 0,
    interrupted: bool = False,
) -> census.Census:
    full = {name: 0 for name in census.STATE_NAMES.values()}
    full.update(states or {})
    return census.Census(
        source=census.NETLINK,
        states=full,
        total=sum(full.values()),
        orphans=fin_wait2_orphans,
        fin_wait2_orphans=fin_wait2_orphans,
        ephemeral=sum(g.sockets for g in groups),
        established_ephemeral=established_ephemeral,
        groups=list(groups),
        close_wait=[],
        interrupted=interrupted,
    )


def context(
    counts: census.Census,
    owners=(),
    sysctl: dict[str, str | None] | None = None,
    port_range=(40000, 40999),
    usable: int | None = 1000,
    tw_live: int | None = 0,
    counters=None,
) -> census.CensusInput:
    values = {"tcp_max_tw_buckets": "262144", "tcp_tw_reuse": "2", "tcp_timestamps": "1"}
    return census.CensusInput(
        census=counts,
        owners=list(owners),
        sysctl={**values, **(sysctl or {})},
        counters=counters,
        tw_live=tw_live,
        port_range=port_range,
        usable=usable,
    )


def group(sockets: int, time_wait: int = 0, local="10.0.0.1", remote="10.0.0.9", port=443):
    family = "ipv6" if ":" in local else "ipv4"
    return census.Group(
        family=family,
        local_address=local,
        remote_address=remote,
        remote_port=port,
        sockets=sockets,
        time_wait=time_wait,
    )


PRESSURE_SOURCE = (
    "Documentation/networking/ip-sysctl.rst (ip_local_port_range, tcp_tw_reuse); "
    "include/net/tcp.h (TCP_TIMEWAIT_LEN)"
)
REUSE = "reuse connections (HTTP keep-alive, connection pools)"
CLIENT = (
    "apply client-profile (ip_local_port_range 10240 65535, tcp_tw_reuse=1; see 'tcptune check "
    "client-profile')"
)
PROXY = CLIENT.replace("client-profile", "proxy-profile")
SOURCES = "add source addresses: each local address has its own {usable} ports"
LOOPBACK = (
    "widen ip_local_port_range (now {low}-{high}; e.g. 10240 65535): tcp_tw_reuse = 2, the "
    "default, already reuses TIME_WAIT ports towards loopback, so tcp_tw_reuse = 1 would add "
    "nothing here"
)
TIMESTAMPS = "turn tcp_timestamps back on: tcp_tw_reuse does nothing without them"


def pressure(destination: str, held: int, usable: int, share: str, tw: int, remedies) -> str:
    return (
        f"{destination} holds {held} of the {usable} usable ephemeral ports ({share}; {tw} in "
        "TIME_WAIT, which holds a port for 60 s). When all are taken, connect() to this "
        "destination fails with EADDRNOTAVAIL. Remedies: " + "; ".join(remedies) + "."
    )


# (largest group, usable, sysctl, port range) -> (severity, message) or None: a warning from
# 50% of the usable ports, an error from 90%
PRESSURE_TABLE = [
    (group(499), 1000, {}, (40000, 40999), None),
    (
        group(500, 20),
        1000,
        {"tcp_tw_reuse": "0"},
        (40000, 40999),
        (
            WARNING,
            pressure(
                "10.0.0.1 -> 10.0.0.9:443",
                500,
                1000,
                "50%",
                20,
                [REUSE, CLIENT, SOURCES.format(usable=1000)],
            ),
        ),
    ),
    (
        group(899),
        1000,
        {"tcp_tw_reuse": "0"},
        (40000, 40999),
        (
            WARNING,
            pressure(
                "10.0.0.1 -> 10.0.0.9:443",
                899,
                1000,
                "90%",
                0,
                [REUSE, CLIENT, SOURCES.format(usable=1000)],
            ),
        ),
    ),
    (
        group(900),
        1000,
        {"tcp_tw_reuse": "0"},
        (40000, 40999),
        (
            ERROR,
            pressure(
                "10.0.0.1 -> 10.0.0.9:443",
                900,
                1000,
                "90%",
                0,
                [REUSE, CLIENT, SOURCES.format(usable=1000)],
            ),
        ),
    ),
    (
        group(1, 1),
        2,
        {"tcp_tw_reuse": "0"},
        (40000, 40001),
        (
            WARNING,
            pressure(
                "10.0.0.1 -> 10.0.0.9:443",
                1,
                2,
                "50%",
                1,
                [REUSE, CLIENT, SOURCES.format(usable=2)],
            ),
        ),
    ),
    # the profile's values live (tcp_tw_reuse 1, a range at least 10240-65535): no profile
    (
        group(600),
        1000,
        {"tcp_tw_reuse": "1"},
        (10240, 65535),
        (
            WARNING,
            pressure(
                "10.0.0.1 -> 10.0.0.9:443",
                600,
                1000,
                "60%",
                0,
                [REUSE, SOURCES.format(usable=1000)],
            ),
        ),
    ),
    (
        group(600),
        1000,
        {"tcp_tw_reuse": "1", "tcp_timestamps": "0"},
        (1024, 65535),
        (
            WARNING,
            pressure(
                "10.0.0.1 -> 10.0.0.9:443",
                600,
                1000,
                "60%",
                0,
                [REUSE, TIMESTAMPS, SOURCES.format(usable=1000)],
            ),
        ),
    ),
    (
        group(600),
        1000,
        {"tcp_tw_reuse": "1"},
        (10241, 65535),
        (
            WARNING,
            pressure(
                "10.0.0.1 -> 10.0.0.9:443",
                600,
                1000,
                "60%",
                0,
                [REUSE, CLIENT, SOURCES.format(usable=1000)],
            ),
        ),
    ),
    (
        group(600),
        1000,
        {"tcp_tw_reuse": "1"},
        (10240, 65534),
        (
            WARNING,
            pressure(
                "10.0.0.1 -> 10.0.0.9:443",
                600,
                1000,
                "60%",
                0,
                [REUSE, CLIENT, SOURCES.format(usable=1000)],
            ),
        ),
    ),
    (
        group(600),
        1000,
        {"tcp_tw_reuse": "2"},
        (10240, 65535),
        (
            WARNING,
            pressure(
                "10.0.0.1 -> 10.0.0.9:443",
                600,
                1000,
                "60%",
                0,
                [REUSE, CLIENT, SOURCES.format(usable=1000)],
            ),
        ),
    ),
    # towards loopback with tcp_tw_reuse = 2: a wider range is the remedy
    (
        group(600, 600, local="::1", remote="::1", port=5000),
        1000,
        {"tcp_tw_reuse": "2"},
        (40000, 40999),
        (
            WARNING,
            pressure(
                "::1 -> [::1]:5000",
                600,
                1000,
                "60%",
                600,
                [REUSE, LOOPBACK.format(low=40000, high=40999), SOURCES.format(usable=1000)],
            ),
        ),
    ),
    (
        group(600, local="10.0.0.1", remote="127.0.0.1", port=5000),
        1000,
        {"tcp_tw_reuse": "2"},
        (40000, 40999),
        (
            WARNING,
            pressure(
                "10.0.0.1 -> 127.0.0.1:5000",
                600,
                1000,
                "60%",
                0,
                [REUSE, LOOPBACK.format(low=40000, high=40999), SOURCES.format(usable=1000)],
            ),
        ),
    ),
    (
        group(600, local="127.0.0.5", remote="10.0.0.1", port=5000),
        1000,
        {"tcp_tw_reuse": "2"},
        (40000, 40999),
        (
            WARNING,
            pressure(
                "127.0.0.5 -> 10.0.0.1:5000",
                600,
                1000,
                "60%",
                0,
                [REUSE, LOOPBACK.format(low=40000, high=40999), SOURCES.format(usable=1000)],
            ),
        ),
    ),
    (
        group(600, local="::ffff:127.0.0.1", remote="::ffff:127.0.0.1", port=5000),
        1000,
        {"tcp_tw_reuse": "2"},
        (40000, 40999),
        (
            WARNING,
            pressure(
                "::ffff:127.0.0.1 -> [::ffff:127.0.0.1]:5000",
                600,
                1000,
                "60%",
                0,
                [REUSE, LOOPBACK.format(low=40000, high=40999), SOURCES.format(usable=1000)],
            ),
        ),
    ),
    # 2001:db8::1 is no loopback address, nor is 10.127.0.1
    (
        group(600, local="2001:db8::1", remote="2001:db8::2", port=5000),
        1000,
        {"tcp_tw_reuse": "2"},
        (40000, 40999),
        (
            WARNING,
            pressure(
                "2001:db8::1 -> [2001:db8::2]:5000",
                600,
                1000,
                "60%",
                0,
                [REUSE, CLIENT, SOURCES.format(usable=1000)],
            ),
        ),
    ),
    (
        group(600, local="10.127.0.1", remote="10.0.0.2", port=5000),
        1000,
        {"tcp_tw_reuse": "2"},
        (40000, 40999),
        (
            WARNING,
            pressure(
                "10.127.0.1 -> 10.0.0.2:5000",
                600,
                1000,
                "60%",
                0,
                [REUSE, CLIENT, SOURCES.format(usable=1000)],
            ),
        ),
    ),
    (group(600), 0, {}, (40000, 40999), None),  # no usable ports counted: nothing to compare
    (group(600), None, {}, None, None),
]


@pytest.mark.parametrize(("top", "usable", "sysctl", "port_range", "want"), PRESSURE_TABLE)
def test_port_pressure_findings(top, usable, sysctl, port_range, want) -> None:
    counts = census_of(groups=[top, group(1, local="10.0.0.2")])
    ctx = context(counts, sysctl=sysctl, port_range=port_range, usable=usable)
    found = [
        (f.severity, f.message)
        for f in census.findings(ctx)
        if f.key == "net.ipv4.ip_local_port_range"
    ]
    assert found == ([want] if want else [])
    for f in census.findings(ctx):
        if f.key == "net.ipv4.ip_local_port_range":
            assert f.source == PRESSURE_SOURCE
    suggested = census.suggest_profile(ctx)
    if want and (CLIENT in want[1] or PROXY in want[1]):
        assert suggested == (
            "client-profile",
            "outbound connections run short of ephemeral ports: a wider ip_local_port_range and "
            "tcp_tw_reuse=1",
        )
    else:
        assert suggested is None


def test_a_host_serving_100_inbound_connections_is_a_proxy() -> None:
    """ESTABLISHED sockets not on an ephemeral port are inbound; with a listener and 100 of them
    the host is a proxy."""
    top = group(600)
    for listeners, established, ephemeral, profile in [
        (1, 700, 600, "proxy-profile"),  # 100 inbound
        (1, 699, 600, "client-profile"),  # 99
        (0, 5000, 600, "client-profile"),  # no listener
        (3, 100, 0, "proxy-profile"),
    ]:
        counts = census_of(
            {"LISTEN": listeners, "ESTABLISHED": established},
            [top],
            established_ephemeral=ephemeral,
        )
        ctx = context(counts, sysctl={"tcp_tw_reuse": "0"})
        assert census.suggest_profile(ctx)[0] == profile
        (finding,) = census.findings(ctx)
        other = "client-profile" if profile == "proxy-profile" else "proxy-profile"
        assert f"apply {profile} " in finding.message and other not in finding.message


BUCKETS_AT_CAP = (
    "{used} TIME_WAIT sockets (with FIN_WAIT2 orphans in their last 60 s) have reached the cap of "
    "{cap}: past it, a closing socket skips TIME_WAIT and is destroyed at once "
    "(TCPTimeWaitOverflow rises, nothing is logged to dmesg): a delayed segment of the old "
    "connection can then land in a new one with the same addresses and ports. Find who closes "
    "first (the port pressure table), reuse connections, or raise the cap (each TIME_WAIT socket "
    "costs a few hundred bytes)."
)
BUCKETS_NEAR = (
    "{used} TIME_WAIT sockets (with FIN_WAIT2 orphans in their last 60 s), {percent}% of the cap "
    "of {cap}; past it, a closing socket skips TIME_WAIT and is destroyed at once "
    "(TCPTimeWaitOverflow rises, nothing is logged to dmesg): a delayed segment of the old "
    "connection can then land in a new one with the same addresses and ports."
)


@pytest.mark.parametrize(
    ("cap", "tw_live", "time_wait", "fin_wait2", "want"),
    [
        ("1000", 799, 0, 0, None),
        ("1000", 800, 0, 0, (WARNING, BUCKETS_NEAR.format(used=800, percent=80, cap=1000))),
        ("1000", 999, 0, 0, (WARNING, BUCKETS_NEAR.format(used=999, percent=99, cap=1000))),
        ("1000", 1000, 0, 0, (ERROR, BUCKETS_AT_CAP.format(used=1000, cap=1000))),
        # without sockstat: TIME_WAIT plus every orphaned FIN_WAIT2 socket
        ("1000", None, 700, 100, (WARNING, BUCKETS_NEAR.format(used=800, percent=80, cap=1000))),
        ("1000", None, 700, 99, None),
        ("1000", None, 999, 1, (ERROR, BUCKETS_AT_CAP.format(used=1000, cap=1000))),
        ("0", 0, 0, 0, (ERROR, BUCKETS_AT_CAP.format(used=0, cap=0))),
        (None, 5000, 0, 0, None),  # the cap not read
    ],
)
def test_time_wait_buckets_in_the_census(cap, tw_live, time_wait, fin_wait2, want) -> None:
    counts = census_of({"TIME_WAIT": time_wait}, fin_wait2_orphans=fin_wait2)
    ctx = context(counts, sysctl={"tcp_max_tw_buckets": cap}, tw_live=tw_live)
    found = [(f.severity, f.message) for f in census.findings(ctx) if f.key.endswith("tw_buckets")]
    assert found == ([want] if want else [])
    assert census.tw_buckets_used(ctx) == (
        tw_live if tw_live is not None else time_wait + fin_wait2
    )


def test_overflow_in_the_census_wording() -> None:
    ctx = context(census_of(), counters={"TCPTimeWaitOverflow": 3, "TW": 9})
    (finding,) = census.findings(ctx)
    assert (finding.severity, finding.message, finding.source) == (
        WARNING,
        "TCPTimeWaitOverflow = 3: that many sockets already skipped TIME_WAIT because the cap was "
        "reached, or because memory for the TIME_WAIT socket ran out (since boot, or since this "
        "network namespace was created).",
        "/proc/net/netstat (TcpExt)",
    )
    assert census.findings(context(census_of(), counters={"TCPTimeWaitOverflow": 0})) == []


@pytest.mark.parametrize(
    ("orphans", "timeout", "severity"),
    [(0, "60", None), (1, "60", INFO), (999, None, INFO), (1000, "30", WARNING)],
)
def test_fin_wait2_orphans(orphans: int, timeout: str | None, severity: str | None) -> None:
    ctx = context(census_of(fin_wait2_orphans=orphans), sysctl={"tcp_fin_timeout": timeout})
    found = [f for f in census.findings(ctx) if f.key == "net.ipv4.tcp_fin_timeout"]
    if severity is None:
        assert found == []
        return
    (finding,) = found
    assert finding.severity == severity
    assert finding.message == (
        f"{orphans} orphaned FIN_WAIT2 sockets: this host closed them and the peer has not sent "
        "its FIN (often a peer that leaks CLOSE_WAIT). tcp_fin_timeout "
        f"(now {timeout or '?'} s) is what bounds them, and that is all it governs: it does not "
        "shorten TIME_WAIT."
    )
    assert finding.source == (
        "Documentation/networking/ip-sysctl.rst (tcp_fin_timeout); include/net/tcp.h "
        "(TCP_TIMEWAIT_LEN)"
    )


@pytest.mark.parametrize(
    ("time_wait", "in_groups", "noted"),
    [(10000, 0, True), (9999, 0, False), (10500, 500, True), (10500, 501, False)],
)
def test_server_side_time_wait(time_wait: int, in_groups: int, noted: bool) -> None:
    """TIME_WAIT sockets outside the port-pressure groups (a local port outside the ephemeral
    range) are the server's: a note from 10,000."""
    groups = [group(in_groups, in_groups)] if in_groups else []
    ctx = context(census_of({"TIME_WAIT": time_wait}, groups), usable=100000)
    found = [f for f in census.findings(ctx) if f.key == "TIME_WAIT"]
    assert bool(found) == noted
    if noted:
        (finding,) = found
        assert finding.severity == INFO
        assert finding.message == (
            f"{time_wait - in_groups} TIME_WAIT sockets have a local port outside the ephemeral "
            "range: this host closed those connections first as a server. They cost a few "
            "hundred bytes each and harm nothing below tcp_max_tw_buckets; tcp_tw_reuse does not "
            "act on them (it only helps connect()). Fewer come with keep-alive, or when clients "
            "close first."
        )
        assert finding.source == (
            "Documentation/networking/ip-sysctl.rst (tcp_tw_reuse, tcp_max_tw_buckets); "
            "include/net/tcp.h (TCP_TIMEWAIT_LEN)"
        )


@pytest.mark.parametrize(("syn_recv", "warned"), [(127, False), (128, True), (5000, True)])
def test_half_open_connections(syn_recv: int, warned: bool) -> None:
    ctx = context(census_of({"SYN_RECV": syn_recv}))
    found = [f for f in census.findings(ctx) if f.key == "SYN_RECV"]
    if not warned:
        assert found == [] and census.suggest_profile(ctx) is None
        return
    (finding,) = found
    assert finding.severity == WARNING
    assert finding.message == (
        f"{syn_recv} half-open connections (SYN_RECV): listeners are under a SYN flood or "
        "accept too slowly. A listener's SYN and accept queues are both bounded by its listen() "
        "backlog, capped by net.core.somaxconn; server-profile raises that cap and keeps SYN "
        "cookies on (see 'tcptune check server-profile')."
    )
    assert finding.source == (
        "Documentation/networking/ip-sysctl.rst (somaxconn, tcp_syncookies); "
        "net/ipv4/tcp_input.c:tcp_conn_request (6.18)"
    )
    assert census.suggest_profile(ctx) == (
        "server-profile",
        "half-open connections pile up: a higher listen() backlog clamp (somaxconn), which "
        "bounds the SYN and accept queues, and SYN cookies",
    )


def test_an_interrupted_dump_is_said() -> None:
    (finding,) = census.findings(context(census_of(interrupted=True)))
    assert (finding.severity, finding.key) == (INFO, "sockets")
    assert finding.message == (
        "the kernel flagged the socket dump as interrupted (sockets changed while it was read): "
        "counts may be off by the sockets that came and went."
    )
    assert finding.source == "include/uapi/linux/netlink.h (NLM_F_DUMP_INTR)"
    assert census.findings(context(census_of())) == []


def test_a_close_wait_line_lists_its_local_endpoints() -> None:
    rows = [(10 + i, 33, f"10.0.0.1:{80 + i % 2}", f"10.0.0.2:{1 + i}") for i in range(3)]
    owners = census.close_wait_owners(close_waits(*rows), holders({10: [7], 11: [7], 12: [7]}))
    (finding,) = census.findings(context(close_waits(*rows), owners))
    assert "holds 3 CLOSE_WAIT sockets (local 10.0.0.1:80 (2), 10.0.0.1:81 (1)): " in (
        finding.message
    )
