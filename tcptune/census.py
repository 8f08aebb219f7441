"""The census behind `tcptune sockets`: pure counting, grouping and findings, no I/O.

A Tally is fed raw socket tables as the system layer reads them: netlink reply buffers
(inet_diag_msg, include/uapi/linux/inet_diag.h) or /proc/net/tcp{,6} lines. It counts while it
parses, without building an object per socket, because the machines that need this command may
hold hundreds of thousands of sockets. finish() turns the tally into a Census whose numbers do not
depend on which source was read.
"""

import errno
import os
import socket
import struct
import sys
from collections import Counter
from dataclasses import dataclass

from tcptune.keys import IP_SYSCTL_DOC
from tcptune.model import ERROR, INFO, WARNING, Finding, Holders, parse_int
from tcptune.rules import TIME_WAIT_SECONDS, tw_cap_findings

# include/net/tcp_states.h
STATE_NAMES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
}
ESTABLISHED, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT = 1, 3, 4, 5, 6
CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING, NEW_SYN_RECV = 8, 9, 10, 11, 12
# Every state bit of STATE_NAMES; the kernel adds NEW_SYN_RECV (request sockets) to SYN_RECV.
ALL_STATES = sum(1 << code for code in STATE_NAMES)
# A socket in one of these states with no file (inode 0) was closed by its program: an orphan the
# kernel finishes on its own (the sockets tcp_max_orphans counts).
ORPHAN_STATES = frozenset((FIN_WAIT1, FIN_WAIT2, LAST_ACK, CLOSING))
_SLOW_STATES = ORPHAN_STATES | {CLOSE_WAIT}

NETLINK = "netlink"
PROC = "proc"
SOURCE_TEXT = {
    NETLINK: "NETLINK_SOCK_DIAG (inet_diag dump, as ss does)",
    PROC: "/proc/net/tcp and /proc/net/tcp6",
}

# netlink framing (include/uapi/linux/netlink.h)
NLMSG_ERROR = 2
NLMSG_DONE = 3
SOCK_DIAG_BY_FAMILY = 20
_NLMSG = struct.Struct("=IH")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")
_UID_INODE = struct.Struct("=II")
# Offsets into one message: nlmsghdr (16 bytes), then inet_diag_msg: family, state, timer, retrans,
# id {sport, dport (big-endian), src[16], dst[16], if, cookie[2]}, expires, rqueue, wqueue, uid,
# inode.
_STATE = 17
_SPORT = 20
_GROUP = slice(22, 56)  # dport + src + dst: one contiguous slice is the group key
_UID = 80
_INODE = 84
_MESSAGE_MIN = 88

# Findings thresholds
CLOSE_WAIT_WARNING = 10  # a few come and go as programs read the last data; tens stay: a leak
CLOSE_WAIT_ERROR = 1000
PRESSURE_WARNING = 0.5  # share of the usable ephemeral ports held towards one destination
PRESSURE_ERROR = 0.9
FIN_WAIT2_WARNING = 1000
SYN_RECV_WARNING = 128
SERVER_TIME_WAIT_NOTE = 10000
PROXY_INBOUND = 100  # established connections to local listeners that make a host a proxy

TIMEWAIT_LEN = "include/net/tcp.h (TCP_TIMEWAIT_LEN)"
CLOSE_WAIT_SOURCE = "RFC 9293 section 3.3.2 (CLOSE-WAIT waits for the local close)"
OWNERS_SOURCE = "/proc/<pid>/fd (socket:[inode])"
COUNTERS = ("TW", "TWKilled", "TWRecycled", "TCPTimeWaitOverflow")


def endpoint(family: int, address: bytes, port: int) -> str:
    text = socket.inet_ntop(family, address)
    return f"[{text}]:{port}" if family == socket.AF_INET6 else f"{text}:{port}"


def _proc_address(family: int, text: str) -> bytes:
    """/proc/net/tcp prints each 32-bit word of the network-order address as a host integer."""
    return b"".join(
        int(text[i : i + 8], 16).to_bytes(4, sys.byteorder) for i in range(0, len(text), 8)
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class CloseWait:
    """One CLOSE_WAIT socket: the peer closed, the program holding it has not."""

    inode: int
    uid: int
    local: str
    remote: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Group:
    """Sockets with an ephemeral local port towards one destination."""

    family: str  # "ipv4" or "ipv6"
    local_address: str
    remote_address: str
    remote_port: int
    sockets: int
    time_wait: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Census:
    """The counts of one look at the socket tables, whichever source was read."""

    source: str
    states: dict[str, int]  # every name of STATE_NAMES, in kernel order
    total: int
    orphans: int
    fin_wait2_orphans: int
    ephemeral: int  # sockets (not listening) whose local port is in ip_local_port_range
    established_ephemeral: int  # ESTABLISHED among them (outbound connections)
    groups: list[Group]  # by (local address, remote address, remote port), largest first
    close_wait: list[CloseWait]
    interrupted: bool  # the kernel flagged a dump as inconsistent (sockets changed meanwhile)


# --- counting in bulk ----------------------------------------------------------------------------
#
# A socket table arrives as runs of records of one size: inet_diag messages of equal length (every
# TIME_WAIT socket's is the same) or /proc rows of equal length. A run is counted column by column:
# the bytes at one offset of every record form one `bytes` object (an extended slice), which
# `count`, `translate`, `lstrip` and int.from_bytes handle in C. Netlink messages are gathered by
# size across buffers and counted a batch at a time; /proc rows a chunk at a time. Only CLOSE_WAIT
# sockets (their owners are wanted), /proc's orphan candidates (their inode is not at a fixed
# place) and rows not in the kernel's layout are parsed one by one. Nothing is kept per socket:
# counters, one Counter entry per port-pressure group, and the CLOSE_WAIT sockets.

_MIN_RUN = 8  # fewer alike records are not worth a run: netlink batches them singly, /proc parses
_VIEW_BYTES = 8 * 1024  # runs this long are kept as views of their buffer, shorter ones copied
_BATCH_BYTES = 512 * 1024  # netlink records of one size gathered before they are counted at once
_DISTINCT_LOOP = 12  # distinct values counted with count()/replace() before a Counter takes over
_SPORT_HI = 20  # offsets in a netlink message (nlmsghdr included)
_KEY, _KEY_LEN = 22, 34  # the group key: dport, src[16], dst[16]
# AF_INET fills src[0:4] and dst[0:4] only: its keys are those bytes, the rest zero
_V4_KEY = (22, 23, 24, 25, 26, 27, 40, 41, 42, 43)
_V4_PAD = bytes(12)
_TYPE = bytes((SOCK_DIAG_BY_FAMILY,))
_ZERO = b"\0"
# beyond nlmsg_len's two low bytes: nlmsg_type's low byte; past 64 KiB of buffer also the
# length's high bytes and the type's (within 64 KiB they cannot be set: the message would not fit,
# and only the kernel's datagrams reach the count)
_RUN_CHECKS = ((4, _TYPE),)
_RUN_CHECKS_LONG = ((4, _TYPE), (2, _ZERO), (3, _ZERO), (5, _ZERO))


def _table(test) -> bytes:
    """A bytes.translate table: 1 where test(byte) holds, else 0."""
    return bytes(1 if test(value) else 0 for value in range(256))


def _lanes(column) -> int:
    """A column of 0/1 bytes as an int whose bytes are those lanes: & and | act per record."""
    return int.from_bytes(column, "little")


def _distinct_bytes(column) -> list[tuple[int, int]]:
    """(value, count) of each distinct byte of `column`."""
    found = []
    while column and len(found) < _DISTINCT_LOOP:  # at most 256 rounds: each removes one value
        value = column[0]
        found.append((value, column.count(value)))
        column = column.translate(None, bytes((value,)))
    if column:
        found += Counter(column).items()
    return found


def _distinct_units(units: list, size: int) -> list[tuple[bytes, int]]:
    """(unit, count) of each distinct record of `units`: equal-length byte columns that side by
    side make one unit per record."""
    if len(units) == 1:
        return [(bytes((value,)), count) for value, count in _distinct_bytes(units[0])]
    # Each column's distinct values are numbered, and a record's unit becomes one number in mixed
    # radix: the sum of its columns' numbers times their place values, added for every record at
    # once in the 8- or 16-bit lanes of one int. While the distinct counts multiply to at most
    # 256 the numbers are one byte per record; to at most 65536, one character of a str.
    places = []
    radix = 1
    for column in units:
        seen = [value for value, _ in _distinct_bytes(column)]
        places.append((radix, seen, column))
        radix *= len(seen)
    if radix > 0x10000:
        width = len(units)
        packed = bytearray(width * size)
        for i, column in enumerate(units):
            packed[i::width] = column
        counted = Counter(packed.hex(" ", width).split())
        return [(bytes.fromhex(text), count) for text, count in counted.items()]
    lane = 1 if radix <= 0x100 else 2
    code = 0
    for place, seen, column in places:
        tables = [bytearray(256) for _ in range(lane)]
        for index, value in enumerate(seen):
            for i, byte in enumerate((index * place).to_bytes(lane, "little")):
                tables[i][value] = byte
        lanes = bytearray(lane * size)
        for i, table in enumerate(tables):
            lanes[i::lane] = column.translate(table)
        code += int.from_bytes(lanes, "little")
    if lane == 1:
        found = _distinct_bytes(code.to_bytes(size, "little"))
    else:
        packed = code.to_bytes(2 * size, "little")
        wide = bytearray(4 * size)
        wide[0::4] = packed[0::2]
        wide[1::4] = packed[1::2]
        text = wide.decode("utf-32-le", "surrogatepass")  # one code point <= 0xFFFF per record
        found = []
        while text and len(found) < _DISTINCT_LOOP:  # each round removes one value
            char = text[0]
            found.append((ord(char), text.count(char)))
            text = text.replace(char, "")
        found += ((ord(char), count) for char, count in Counter(text).items())
    return [
        (bytes(seen[value // place % len(seen)] for place, seen, _ in places), count)
        for value, count in found
    ]


def _compare_lanes(columns: list, beyond: list, equal: list) -> int:
    """Lanes of the records whose columns, read as one big-endian number, are beyond a bound or
    equal to it, given per column the tables of the digits beyond and equal to the bound's."""
    result = _lanes(columns[-1].translate(beyond[-1])) | _lanes(columns[-1].translate(equal[-1]))
    for i in range(len(columns) - 2, -1, -1):
        result = _lanes(columns[i].translate(beyond[i])) | (
            _lanes(columns[i].translate(equal[i])) & result
        )
    return result


class _Range:
    """The ephemeral port range as byte tests over the columns that spell a port (two binary
    bytes for netlink, four hex digits for /proc)."""

    def __init__(self, low_digits: bytes, high_digits: bytes, empty: bool) -> None:
        self.empty = empty
        first_low, first_high = low_digits[0], high_digits[0]
        # a first digit strictly between the bounds' first digits: in range whatever follows
        self.inside = bytes(v for v in range(256) if first_low < v < first_high)
        self.low_gt = [_table(lambda v, b=b: v > b) for b in low_digits]
        self.low_eq = [_table(lambda v, b=b: v == b) for b in low_digits]
        self.high_lt = [_table(lambda v, b=b: v < b) for b in high_digits]
        self.high_eq = [_table(lambda v, b=b: v == b) for b in high_digits]

    def all_inside(self, first_column) -> bool:
        return not self.empty and not first_column.translate(None, self.inside)

    def lanes(self, columns: list) -> int:
        if self.empty:
            return 0
        return _compare_lanes(columns, self.low_gt, self.low_eq) & _compare_lanes(
            columns, self.high_lt, self.high_eq
        )


_NOT_LISTEN = _table(lambda v: v != LISTEN)
_IS_TIME_WAIT = _table(lambda v: v == TIME_WAIT)
_IS_ESTABLISHED = _table(lambda v: v == ESTABLISHED)
_IS_ORPHAN_STATE = _table(lambda v: v in ORPHAN_STATES)
_IS_FIN_WAIT2 = _table(lambda v: v == FIN_WAIT2)
_IS_ZERO = _table(lambda v: v == 0)
# /proc: the state's two hex digits; the first is always 0 for the states the kernel prints
_HEX = b"0123456789ABCDEF"  # as the kernel prints (%X); anything else is parsed row by row
_HEX_VALUE = bytes(_HEX.find(v) if v in _HEX else 0 for v in range(256))
_NOT_STATE_DIGIT = _table(lambda v: v not in b"123456789ABC")
_NOT_HEX = _table(lambda v: v not in _HEX)
# /proc columns after the sl field's colon (at W): local address, local port, remote
# address:port, state; the separators that must stand where the format puts them.
_PROC_LAYOUT = {
    socket.AF_INET: (2, 8, 11, 16, 13, 30, b":", (10, 24), b" ", (1, 15, 29, 32)),
    socket.AF_INET6: (2, 32, 35, 40, 37, 78, b":", (34, 72), b" ", (1, 39, 77, 80)),
}


class Tally:
    """Counts sockets as the raw tables stream in."""

    def __init__(self, source: str, port_low: int, port_high: int) -> None:
        self.source = source
        self.port_low = port_low
        self.port_high = port_high
        self.states = [0] * 256
        self.orphans = 0
        self.fin_wait2_orphans = 0
        self.interrupted = False
        self.established_ephemeral = 0  # ESTABLISHED with an ephemeral local port
        # family -> raw group key -> sockets with an ephemeral local port (and those in TIME_WAIT)
        self._groups: dict[int, Counter] = {}
        self._tw_groups: dict[int, Counter] = {}
        # (inode, uid, local, remote) per CLOSE_WAIT socket; finish() makes them CloseWait records
        self._close_wait: list[tuple[int, int, str, str]] = []
        self._endpoints: dict[bytes, str] = {}  # local endpoints of CLOSE_WAIT sockets, as text
        self._batches: dict[tuple[int, int], list] = {}  # (family, length) -> [bytes, pieces]
        low, high = max(port_low, 0), min(port_high, 0xFFFF)
        empty = low > high
        if empty:
            low = high = 0
        self._binary_range = _Range(low.to_bytes(2, "big"), high.to_bytes(2, "big"), empty)
        self._text_range = _Range(b"%04X" % low, b"%04X" % high, empty)

    def _orphan(self, state: int) -> None:
        self.orphans += 1
        if state == FIN_WAIT2:
            self.fin_wait2_orphans += 1

    def _group(self, family: int, key, state: int) -> None:
        self._groups.setdefault(family, Counter())[key] += 1
        if state == TIME_WAIT:
            self._tw_groups.setdefault(family, Counter())[key] += 1
        elif state == ESTABLISHED:
            self.established_ephemeral += 1

    # --- netlink ---

    def netlink_feeder(self, family: int):
        """A callable for one family's dump: takes each received buffer, returns True at the
        end of the dump. Raises OSError for an error the kernel reports, and OSError(EPROTO) for
        a reply not framed as include/uapi/linux/netlink.h lays messages out."""
        header = _NLMSG.unpack_from
        message = self._message
        batches = self._batches
        run_bytes: dict[tuple, tuple] = {}  # (length, long buffer) -> what its columns hold

        def feed(data: bytes) -> bool:
            offset = 0
            end = len(data)
            # The kernel flags every message of a batch built while the table changed; the first
            # message of each buffer is enough to notice.
            if end > 6 and data[6] & 0x10:  # NLM_F_DUMP_INTR in nlmsg_flags
                self.interrupted = True
            while offset < end:  # each round moves on by at least one message
                if end - offset < 16:
                    raise OSError(
                        errno.EPROTO, f"malformed netlink message of {end - offset} bytes"
                    )
                length, kind = header(data, offset)
                if kind != SOCK_DIAG_BY_FAMILY or length < _MESSAGE_MIN:
                    # NLMSG_OK: a message holds at least its header, and an error its code too
                    if length < 16 or (kind == NLMSG_ERROR and min(length, end - offset) < 20):
                        raise OSError(errno.EPROTO, f"malformed netlink message of {length} bytes")
                    if kind == NLMSG_DONE:
                        self._flush(family)
                        return True
                    if kind == NLMSG_ERROR:
                        code = -_I32.unpack_from(data, offset + 16)[0]
                        if code:
                            raise OSError(code, os.strerror(code))
                    offset += (length + 3) & ~3
                    continue
                following = offset + length
                if following > end:
                    raise OSError(errno.EPROTO, f"netlink message of {length} bytes cut short")
                if length & 3 or length > 0xFFFF:
                    message(family, data, offset)  # not as the kernel aligns them: on its own
                    offset += (length + 3) & ~3  # the next one starts aligned (NLMSG_NEXT)
                    continue
                # A run: messages of this length back to back, as far as the length and type
                # columns say (one lstrip each); the next message having this length is the hint.
                stop = following
                count = (end - offset) // length
                if count >= _MIN_RUN and header(data, following)[0] == length:
                    expected = run_bytes.get((length, end > 0xFFFF))
                    if expected is None:
                        expected = run_bytes[length, end > 0xFFFF] = (
                            (0, bytes((length & 0xFF,))),
                            (1, bytes((length >> 8,))),
                            *(_RUN_CHECKS_LONG if end > 0xFFFF else _RUN_CHECKS),
                        )
                    stop = offset + count * length
                    for at, value in expected:
                        column = data[offset + at : stop : length]
                        kept = len(column) - len(column.lstrip(value))
                        if kept < count:
                            count = kept
                            stop = offset + count * length
                            if count <= 1:
                                stop = following
                                break
                # kept with the other messages of this length, counted together
                batch = batches.get((family, length))
                if batch is None:
                    batch = batches[family, length] = [0]  # bytes held, then the pieces
                # a view of a long run; a copy of a short one, which would otherwise keep its
                # whole buffer alive while the batch waits
                if stop - offset >= _VIEW_BYTES:
                    batch.append(memoryview(data)[offset:stop])
                else:
                    batch.append(data[offset:stop])
                batch[0] += stop - offset
                if batch[0] >= _BATCH_BYTES:
                    self._netlink_run(family, b"".join(batch[1:]), length)
                    del batch[1:]
                    batch[0] = 0
                offset = stop
            return False

        return feed

    def _flush(self, family: int | None = None) -> None:
        for (batch_family, length), batch in self._batches.items():
            if batch[0] and family in (None, batch_family):
                self._netlink_run(batch_family, b"".join(batch[1:]), length)
                del batch[1:]
                batch[0] = 0

    def _message(self, family: int, data, offset: int) -> None:
        """One inet_diag_msg, parsed on its own."""
        state = data[offset + _STATE]
        self.states[state] += 1
        if state == LISTEN:
            return
        port = data[offset + _SPORT] << 8 | data[offset + _SPORT + 1]
        if self.port_low <= port <= self.port_high:
            if family == socket.AF_INET:
                key = data[offset + 22 : offset + 28] + _V4_PAD + data[offset + 40 : offset + 44]
                key = bytes(key + _V4_PAD)
            else:
                key = bytes(data[offset + _KEY : offset + _KEY + _KEY_LEN])
            self._group(family, key, state)
        if state in _SLOW_STATES:
            if state == CLOSE_WAIT:
                self._close_wait_message(family, data, offset)
            elif _U32.unpack_from(data, offset + _INODE)[0] == 0:
                self._orphan(state)

    def _close_wait_message(self, family: int, data, offset: int) -> None:
        width = 4 if family == socket.AF_INET else 16
        # the local endpoint is mostly one listener's: made once
        local = bytes(data[offset + _SPORT : offset + 24 + width])
        text = self._endpoints.get(local)
        if text is None:
            text = self._endpoints[local] = endpoint(family, local[4:], local[0] << 8 | local[1])
        uid, inode = _UID_INODE.unpack_from(data, offset + _UID)
        dst = bytes(data[offset + 40 : offset + 40 + width])
        remote = endpoint(family, dst, data[offset + 22] << 8 | data[offset + 23])
        self._close_wait.append((inode, uid, text, remote))

    def _netlink_run(self, family: int, data, length: int) -> None:
        """Messages of one length back to back from offset 0, counted column by column."""
        count = len(data) // length
        states = data[_STATE::length]
        present = self._count_states(states)
        if not present.isdisjoint(_SLOW_STATES):
            if not present.isdisjoint(ORPHAN_STATES):
                zero = -1
                for i in range(4):
                    zero &= _lanes(data[_INODE + i :: length].translate(_IS_ZERO))
                self.orphans += (zero & _lanes(states.translate(_IS_ORPHAN_STATE))).bit_count()
                fin_wait2 = zero & _lanes(states.translate(_IS_FIN_WAIT2))
                self.fin_wait2_orphans += fin_wait2.bit_count()
            if CLOSE_WAIT in present:
                at = states.find(CLOSE_WAIT)
                while at >= 0:
                    self._close_wait_message(family, data, at * length)
                    at = states.find(CLOSE_WAIT, at + 1)
        ports = [data[_SPORT_HI::length], data[_SPORT_HI + 1 :: length]]
        if family == socket.AF_INET:
            offsets = _V4_KEY
            template = data[22:28] + _V4_PAD + data[40:44] + _V4_PAD
        else:
            offsets = range(_KEY, _KEY + _KEY_LEN)
            template = data[_KEY : _KEY + _KEY_LEN]
        varying = []
        for at in offsets:
            column = data[at::length]
            if column.count(column[0]) != count:
                varying.append((at - _KEY, column))
        self._count_groups(family, states, present, ports, self._binary_range, template,
                           varying, False)  # fmt: skip

    def _count_states(self, states) -> set[int]:
        present = set()
        for state, count in _distinct_bytes(states):
            self.states[state] += count
            present.add(state)
        return present

    def _count_groups(self, family, states, present, ports, port_range, template, varying,
                      text) -> None:  # fmt: skip
        """Port-pressure groups of a run: every socket not listening whose local port is in the
        range counts for its group. `template` is the group key of the first record, `varying`
        (index in the key, column) the key's bytes that are not the same in every record."""
        count = len(states)
        selected = None  # None: every record
        if LISTEN in present or not port_range.all_inside(ports[0]):
            selected = port_range.lanes(ports)
            if LISTEN in present:
                selected &= _lanes(states.translate(_NOT_LISTEN))
            if not selected:
                return
        if ESTABLISHED in present:
            established = _lanes(states.translate(_IS_ESTABLISHED))
            if selected is not None:
                established &= selected
            self.established_ephemeral += established.bit_count()
        units = [column for _, column in varying]
        # flag bits per record: 1 counts for its group, 2 is in TIME_WAIT as well
        fixed = 3 if present == {TIME_WAIT} else 1 if TIME_WAIT not in present else None
        # A few records in other states among TIME_WAIT ones (orphaned FIN_WAIT2 among them):
        # all are counted as TIME_WAIT, and those few taken off one by one, which spares the
        # flag column (fewer distinct units, counted faster).
        others = []
        if fixed is None and selected is None and (count - states.count(TIME_WAIT)) * 16 <= count:
            fixed = 3
            for state in present - {TIME_WAIT}:
                at = states.find(state)
                while at >= 0:
                    others.append(at)
                    at = states.find(state, at + 1)
        if selected is not None or fixed is None:
            lanes = selected if selected is not None else _lanes(b"\1" * count)
            if fixed is None:
                lanes |= (_lanes(states.translate(_IS_TIME_WAIT)) & lanes) << 1
            elif fixed == 3:
                lanes |= lanes << 1
            units.append(lanes.to_bytes(count, "little"))
        groups = self._groups.setdefault(family, Counter())
        time_wait = self._tw_groups.setdefault(family, Counter())
        key = bytearray(template)
        for unit, n in _distinct_units(units, count) if units else [(b"", count)]:
            for i, (position, _) in enumerate(varying):
                key[position] = unit[i]
            flags = unit[-1] if len(unit) > len(varying) else fixed
            if not flags & 1:
                continue
            group = key.decode("ascii") if text else bytes(key)
            groups[group] += n
            if flags & 2:
                time_wait[group] += n
        for at in others:
            for position, column in varying:
                key[position] = column[at]
            group = key.decode("ascii") if text else bytes(key)
            time_wait[group] -= 1

    # --- /proc/net/tcp ---

    def feed_proc(self, family: int, lines) -> None:
        """/proc/net/tcp or /proc/net/tcp6 (the header line included, or not): an iterable of
        its lines (str), or of its bytes in chunks of any size."""
        pending = b""
        text: list[str] = []
        size = 0
        for part in lines:
            if isinstance(part, str):
                text.append(part)
                size += len(part)
                if size < _BATCH_BYTES:
                    continue
                part = "".join(text).encode("ascii", "replace")
                text, size = [], 0
                if not part.endswith(b"\n"):
                    part += b"\n"
            data = pending + part if pending else part
            cut = data.rfind(b"\n") + 1
            pending = data[cut:]
            if cut:
                self._proc_chunk(family, data, cut)
        if text:
            data = "".join(text).encode("ascii", "replace")
            pending += data if data.endswith(b"\n") else data + b"\n"
        if pending:
            self._proc_chunk(family, pending, len(pending))

    def _proc_chunk(self, family: int, data: bytes, end: int) -> None:
        """Whole rows in data[:end]: runs of rows of one length counted column by column."""
        offset = 0
        layout = _PROC_LAYOUT.get(family)
        while offset < end:
            newline = data.find(b"\n", offset, end)
            stop = end if newline < 0 else newline + 1
            length = stop - offset
            run = 1
            colon = data.find(b":", offset, stop) - offset
            if layout and colon > 0 and (end - offset) // length >= _MIN_RUN:
                run = self._proc_run(family, data, offset, length, colon, end, layout)
            if run >= _MIN_RUN:
                offset += run * length
            else:
                self._proc_row(family, data[offset:stop])
                offset = stop

    def _proc_run(self, family, data, offset, length, colon, end, layout) -> int:
        """Counts the run of rows like the one at `offset`: same length, same sl width, every
        column the format fixes where it puts it. Returns how many rows it counted, or 1 when
        too few are alike (the caller then parses the row on its own)."""
        local, width, port, remote, remote_width, state, colon_char, colons, space, spaces = layout
        if colon + spaces[-1] >= length:
            return 1
        base = offset + colon  # every column below is at base + a fixed offset
        key_offsets = [*range(local, local + width), *range(remote, remote + remote_width)]
        port_offsets = range(port, port + 4)
        # (offset, the one byte it holds) or (offset, table of the bytes it may not hold)
        checks = [
            (length - 1 - colon, b"\n"),
            (0, b":"),
            *((at, colon_char) for at in colons),
            *((at, space) for at in spaces),
            (state, b"0"),
            (state + 1, _NOT_STATE_DIGIT),
            *((at, _NOT_HEX) for at in port_offsets),
            *((at, _NOT_HEX) for at in key_offsets if at != remote + width),
        ]
        count = (end - offset) // length
        for at, test in checks:  # the run ends before the first row that fails a check
            column = data[base + at : offset + count * length : length]
            if len(test) == 1:
                kept = len(column) - len(column.lstrip(test))
            else:
                kept = column.translate(test).find(1)
            if 0 <= kept < count:
                count = kept
                if count < _MIN_RUN:
                    return 1
        stop = offset + count * length

        def column(at: int):
            return data[base + at : stop : length]

        digit = column(state + 1)
        ports = [column(at) for at in port_offsets]
        states = digit.translate(_HEX_VALUE)
        present = self._count_states(states)
        if not present.isdisjoint(_SLOW_STATES):
            for slow in present & _SLOW_STATES:
                at = states.find(slow)
                while at >= 0:
                    start = offset + at * length
                    self._proc_row(family, data[start : start + length], counted=True)
                    at = states.find(slow, at + 1)
        template = bytes(data[base + at] for at in key_offsets)
        varying = []
        for i, at in enumerate(key_offsets):
            hex_column = column(at)
            if hex_column.count(hex_column[0]) != count:
                varying.append((i, hex_column))
        self._count_groups(family, states, present, ports, self._text_range, template, varying,
                           True)  # fmt: skip
        return count

    def _proc_row(self, family: int, row: bytes, counted: bool = False) -> None:
        """One row, parsed on its own; `counted`: its state and group are counted already, only
        the CLOSE_WAIT record or orphan is wanted. Rows not in the kernel's format are skipped."""
        fields = row.split()
        # sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ...
        if len(fields) < 10 or fields[0] == b"sl":
            return
        digits = 8 if family == socket.AF_INET else 32
        try:
            local, remote = fields[1].decode("ascii"), fields[2].decode("ascii")
            if (
                len(local) != digits + 5
                or len(remote) != digits + 5
                or local[-5] != ":"
                or remote[-5] != ":"
                or not fields[0].endswith(b":")
            ):
                return
            state = int(fields[3], 16)
            port, remote_port = int(local[-4:], 16), int(remote[-4:], 16)
            uid, inode = int(fields[7]), int(fields[9])
            local_address = _proc_address(family, local[:-5])
            remote_address = _proc_address(family, remote[:-5])
        except (ValueError, OverflowError, UnicodeDecodeError):
            return
        if not 0 < state < 256:
            return
        if not counted:
            self.states[state] += 1
            if state != LISTEN and self.port_low <= port <= self.port_high:
                self._group(family, local[:-5] + remote, state)
        if state == CLOSE_WAIT:
            self._close_wait.append(
                (
                    inode,
                    uid,
                    endpoint(family, local_address, port),
                    endpoint(family, remote_address, remote_port),
                )
            )
        elif state in ORPHAN_STATES and inode == 0:
            self._orphan(state)

    def _decode(self, family: int, key: bytes | str) -> tuple[str, str, int]:
        if isinstance(key, bytes):  # netlink: dport (big-endian), src[16], dst[16]
            width = 4 if family == socket.AF_INET else 16
            return (
                socket.inet_ntop(family, key[2 : 2 + width]),
                socket.inet_ntop(family, key[18 : 18 + width]),
                int.from_bytes(key[0:2], "big"),
            )
        digits = 8 if family == socket.AF_INET else 32  # /proc: local hex + remote hex:port
        return (
            socket.inet_ntop(family, _proc_address(family, key[:digits])),
            socket.inet_ntop(family, _proc_address(family, key[digits : 2 * digits])),
            int(key[-4:], 16),
        )

    def finish(self) -> Census:
        self._flush()
        counts = self.states[:]
        counts[SYN_RECV] += counts[NEW_SYN_RECV]
        states = {name: counts[code] for code, name in STATE_NAMES.items()}
        groups = []
        for family, counted in self._groups.items():
            tw = self._tw_groups.get(family, {})
            label = "ipv4" if family == socket.AF_INET else "ipv6"
            for key, count in counted.items():
                local, remote, port = self._decode(family, key)
                groups.append(
                    Group(
                        family=label,
                        local_address=local,
                        remote_address=remote,
                        remote_port=port,
                        sockets=count,
                        time_wait=tw.get(key, 0),
                    )
                )
        groups.sort(key=lambda g: (-g.sockets, g.family, g.local_address, g.remote_address))
        return Census(
            source=self.source,
            states=states,
            total=sum(states.values()),
            orphans=self.orphans,
            fin_wait2_orphans=self.fin_wait2_orphans,
            ephemeral=sum(g.sockets for g in groups),
            established_ephemeral=self.established_ephemeral,
            groups=groups,
            close_wait=[
                CloseWait(inode=inode, uid=uid, local=local, remote=remote)
                for inode, uid, local, remote in sorted(self._close_wait)
            ],
            interrupted=self.interrupted,
        )


# --- owners of ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Owner:
    """CLOSE_WAIT sockets of one process, or of one uid when no visible process holds them."""

    pid: int | None  # None: no visible process holds these sockets
    command: str | None
    cmdline: str | None
    uid: int  # the sockets' owner uid, from the socket table
    count: int
    local: list[tuple[str, int]]  # top local endpoints (endpoint, count)
    remote: list[tuple[str, int]]
    reason: str = ""  # why the owner is unknown


ENDPOINTS_SHOWN = 5


PROGRAM_NAME_WIDTH = 40


def program_name(owner: Owner, width: int = PROGRAM_NAME_WIDTH) -> str:
    """The command, and enough of its command line to tell two of them apart: "python3 (app.py
    --port 8080)", "java (-jar orders.jar)". The program's own path in argv[0] is left out,
    absolute paths are shown by their last part, and the rest is cut to `width` characters with
    "…"."""
    command = owner.command or "?"
    argv = (owner.cmdline or "").split()
    if argv and (argv[0] == command or argv[0].rsplit("/", 1)[-1].startswith(command)):
        argv = argv[1:]
    # an absolute path is shown by its last part: the script or jar is what tells programs apart
    args = " ".join(a.rsplit("/", 1)[-1] if a.startswith("/") and a != "/" else a for a in argv)
    if not args:
        return command
    room = max(width - len(command) - 3, 8)
    if len(args) > room:
        args = args[: room - 1] + "…"
    return f"{command} ({args})"


def unknown_reason(holders: Holders) -> str:
    if holders.denied and not holders.privileged:
        return (
            f"not running as root: the open files of {holders.denied} processes of other users "
            "(/proc/<pid>/fd) cannot be read; run as root to name them"
        )
    if holders.denied:
        return f"the open files of {holders.denied} processes (/proc/<pid>/fd) could not be read"
    return (
        "no process visible here holds them: they belong to a process in another PID namespace "
        "(a container), or were closed while tcptune looked"
    )


def close_wait_owners(census: Census, holders: Holders) -> list[Owner]:
    """CLOSE_WAIT sockets per holding process, largest first; sockets no visible process holds
    are grouped per socket uid with the reason. A socket shared by several processes (inherited
    over fork) counts for each of them."""
    per_pid: dict[int, list[CloseWait]] = {}
    unknown: dict[int, list[CloseWait]] = {}
    for sock in census.close_wait:
        pids = holders.by_inode.get(sock.inode) if sock.inode else None
        if pids:
            for pid in pids:
                per_pid.setdefault(pid, []).append(sock)
        else:
            unknown.setdefault(sock.uid, []).append(sock)
    owners = [
        Owner(
            pid=pid,
            command=holders.commands.get(pid),
            cmdline=holders.cmdlines.get(pid),
            uid=socks[0].uid,
            count=len(socks),
            local=_top(s.local for s in socks),
            remote=_top(s.remote for s in socks),
        )
        for pid, socks in per_pid.items()
    ]
    reason = unknown_reason(holders) if unknown else ""
    owners += [
        Owner(
            pid=None,
            command=None,
            cmdline=None,
            uid=uid,
            count=len(socks),
            local=_top(s.local for s in socks),
            remote=_top(s.remote for s in socks),
            reason=reason,
        )
        for uid, socks in unknown.items()
    ]
    owners.sort(key=lambda o: (-o.count, o.pid is None, o.pid or 0, o.uid))
    return owners


def _top(endpoints) -> list[tuple[str, int]]:
    counts = Counter(endpoints)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:ENDPOINTS_SHOWN]


# --- findings -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class CensusInput:
    """Everything the findings look at, gathered by the command."""

    census: Census
    owners: list[Owner]
    sysctl: dict[str, str | None]  # short key -> live value (None: missing or unreadable)
    counters: dict[str, int] | None  # TcpExt, None when /proc/net/netstat is unreadable
    tw_live: int | None  # sockstat "tw": what the cap counts (rules.TW_COUNTED)
    port_range: tuple[int, int] | None
    usable: int | None


def tw_buckets_used(ctx: CensusInput) -> int:
    """The count tcp_max_tw_buckets caps: sockstat's tw when readable, else an estimate (every
    orphaned FIN_WAIT2 socket, although the cap counts only those in their last 60 s)."""
    if ctx.tw_live is not None:
        return ctx.tw_live
    return ctx.census.states["TIME_WAIT"] + ctx.census.fin_wait2_orphans


def findings(ctx: CensusInput) -> list[Finding]:
    found: list[Finding] = []
    found += _close_wait_findings(ctx)
    found += _pressure_findings(ctx)
    found += tw_cap_findings(
        parse_int(ctx.sysctl.get("tcp_max_tw_buckets")),
        tw_buckets_used(ctx),
        (ctx.counters or {}).get("TCPTimeWaitOverflow"),
        census=True,
    )
    found += _fin_wait2_findings(ctx)
    found += _server_findings(ctx)
    if ctx.census.interrupted:
        found.append(
            Finding(
                severity=INFO,
                key="sockets",
                message="the kernel flagged the socket dump as interrupted (sockets changed while "
                "it was read): counts may be off by the sockets that came and went.",
                source="include/uapi/linux/netlink.h (NLM_F_DUMP_INTR)",
            )
        )
    return found


def _close_wait_findings(ctx: CensusInput) -> list[Finding]:
    found = []
    for owner in ctx.owners:
        if owner.count >= CLOSE_WAIT_ERROR:
            severity = ERROR
        elif owner.count >= CLOSE_WAIT_WARNING:
            severity = WARNING
        else:
            severity = INFO
        local = ", ".join(f"{e} ({n})" for e, n in owner.local)
        if owner.pid is not None:
            who = f"program {program_name(owner)} (pid {owner.pid})"
            message = (
                f"{who} holds {owner.count} CLOSE_WAIT sockets (local {local}): the peer "
                "closed and the program has not called close(). No sysctl bounds CLOSE_WAIT and "
                "no profile helps. Fix the program: close the socket when recv() returns 0 "
                "(EOF) or on error."
            )
            source = f"{CLOSE_WAIT_SOURCE}; {OWNERS_SOURCE}"
        else:
            message = (
                f"{owner.count} CLOSE_WAIT sockets of uid {owner.uid} (local {local}) whose "
                f"program cannot be named: {owner.reason}. Whichever program holds them has not "
                "called close(); no sysctl bounds CLOSE_WAIT."
            )
            source = f"{CLOSE_WAIT_SOURCE}; {OWNERS_SOURCE}"
        found.append(Finding(severity=severity, key="CLOSE_WAIT", message=message, source=source))
    return found


def _outbound_profile(ctx: CensusInput) -> str:
    """The shipped profile for a host whose outbound connections run short of ports: a proxy
    when it also serves many inbound connections, else a client."""
    inbound = ctx.census.states["ESTABLISHED"] - ctx.census.established_ephemeral
    serving = ctx.census.states["LISTEN"] > 0 and inbound >= PROXY_INBOUND
    return "proxy-profile" if serving else "client-profile"


def _pressure_findings(ctx: CensusInput) -> list[Finding]:
    if not ctx.census.groups or not ctx.usable:
        return []
    top = ctx.census.groups[0]
    share = top.sockets / ctx.usable
    if share < PRESSURE_WARNING:
        return []
    severity = ERROR if share >= PRESSURE_ERROR else WARNING
    key = "net.ipv4.ip_local_port_range"
    destination = _destination(top)
    remedies = ["reuse connections (HTTP keep-alive, connection pools)"]
    if _loopback_reuse_covers(ctx, top):
        low, high = ctx.port_range or (0, 0)
        remedies.append(
            "widen ip_local_port_range (now "
            f"{low}-{high}; e.g. 10240 65535): tcp_tw_reuse = 2, the default, already reuses "
            "TIME_WAIT ports towards loopback, so tcp_tw_reuse = 1 would add nothing here"
        )
    elif not _outbound_values_live(ctx):
        profile = _outbound_profile(ctx)
        remedies.append(
            f"apply {profile} (ip_local_port_range 10240 65535, tcp_tw_reuse=1; "
            f"see 'tcptune check {profile}')"
        )
    elif ctx.sysctl.get("tcp_timestamps") == "0":
        remedies.append("turn tcp_timestamps back on: tcp_tw_reuse does nothing without them")
    remedies.append(f"add source addresses: each local address has its own {ctx.usable} ports")
    message = (
        f"{destination} holds {top.sockets} of the {ctx.usable} usable ephemeral ports "
        f"({share:.0%}; {top.time_wait} in TIME_WAIT, which holds a port for {TIME_WAIT_SECONDS} "
        "s). When all are taken, connect() to this destination fails with EADDRNOTAVAIL. Remedies: "
        + "; ".join(remedies)
        + "."
    )
    return [
        Finding(
            severity=severity,
            key=key,
            message=message,
            source=f"{IP_SYSCTL_DOC} (ip_local_port_range, tcp_tw_reuse); {TIMEWAIT_LEN}",
        )
    ]


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4-mapped 127.x address (::ffff:127.0.0.1)."""
    plain = address.removeprefix("::ffff:")
    return plain.startswith("127.") or address == "::1"


def _loopback_reuse_covers(ctx: CensusInput, group: Group) -> bool:
    """tcp_tw_reuse = 2 (the default since 4.18) lets connect() reuse a TIME_WAIT port when
    either address of the old connection is loopback (tcp_twsk_unique), so towards loopback it
    does what 1 would."""
    loopback = is_loopback(group.remote_address) or is_loopback(group.local_address)
    return loopback and ctx.sysctl.get("tcp_tw_reuse") == "2"


def _outbound_values_live(ctx: CensusInput) -> bool:
    """Are client-profile's outbound values (or wider) already in effect?"""
    low, high = ctx.port_range or (65535, 0)
    return ctx.sysctl.get("tcp_tw_reuse") == "1" and low <= 10240 and high >= 65535


def suggest_profile(ctx: CensusInput) -> tuple[str, str] | None:
    """The shipped profile that fits what the census shows, with why; None when none does
    (CLOSE_WAIT, for one, is fixed in the program, not by any profile)."""
    groups = ctx.census.groups
    if (
        groups
        and ctx.usable
        and groups[0].sockets / ctx.usable >= PRESSURE_WARNING
        and not _outbound_values_live(ctx)
        and not _loopback_reuse_covers(ctx, groups[0])  # a wider port range alone is the fix
    ):
        return (
            _outbound_profile(ctx),
            "outbound connections run short of ephemeral ports: a wider ip_local_port_range "
            "and tcp_tw_reuse=1",
        )
    if ctx.census.states["SYN_RECV"] >= SYN_RECV_WARNING:
        return (
            "server-profile",
            "half-open connections pile up: a higher listen() backlog clamp (somaxconn), which "
            "bounds the SYN and accept queues, and SYN cookies",
        )
    return None


def _destination(group: Group) -> str:
    if group.family == "ipv6":
        return f"{group.local_address} -> [{group.remote_address}]:{group.remote_port}"
    return f"{group.local_address} -> {group.remote_address}:{group.remote_port}"


def _fin_wait2_findings(ctx: CensusInput) -> list[Finding]:
    orphans = ctx.census.fin_wait2_orphans
    if not orphans:
        return []
    timeout = ctx.sysctl.get("tcp_fin_timeout")
    severity = WARNING if orphans >= FIN_WAIT2_WARNING else INFO
    return [
        Finding(
            severity=severity,
            key="net.ipv4.tcp_fin_timeout",
            message=f"{orphans} orphaned FIN_WAIT2 sockets: this host closed them and the peer has "
            "not sent its FIN (often a peer that leaks CLOSE_WAIT). tcp_fin_timeout "
            f"(now {timeout or '?'} s) is what bounds them, and that is all it governs: it does "
            "not shorten TIME_WAIT.",
            source=f"{IP_SYSCTL_DOC} (tcp_fin_timeout); {TIMEWAIT_LEN}",
        )
    ]


def _server_findings(ctx: CensusInput) -> list[Finding]:
    found = []
    states = ctx.census.states
    server_tw = states["TIME_WAIT"] - sum(g.time_wait for g in ctx.census.groups)
    if server_tw >= SERVER_TIME_WAIT_NOTE:
        found.append(
            Finding(
                severity=INFO,
                key="TIME_WAIT",
                message=f"{server_tw} TIME_WAIT sockets have a local port outside the ephemeral "
                "range: this host closed those connections first as a server. They cost a few "
                "hundred bytes each and harm nothing below tcp_max_tw_buckets; tcp_tw_reuse does "
                "not act on them (it only helps connect()). Fewer come with keep-alive, or when "
                "clients close first.",
                source=f"{IP_SYSCTL_DOC} (tcp_tw_reuse, tcp_max_tw_buckets); {TIMEWAIT_LEN}",
            )
        )
    if states["SYN_RECV"] >= SYN_RECV_WARNING:
        found.append(
            Finding(
                severity=WARNING,
                key="SYN_RECV",
                message=f"{states['SYN_RECV']} half-open connections (SYN_RECV): listeners are "
                "under a SYN flood or accept too slowly. A listener's SYN and accept queues are "
                "both bounded by its listen() backlog, capped by net.core.somaxconn; "
                "server-profile raises that cap and keeps SYN cookies on (see 'tcptune check "
                "server-profile').",
                source=f"{IP_SYSCTL_DOC} (somaxconn, tcp_syncookies); "
                "net/ipv4/tcp_input.c:tcp_conn_request (6.18)",
            )
        )
    return found
