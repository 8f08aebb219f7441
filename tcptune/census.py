"""The census behind `tcptune sockets`: pure counting, grouping and findings, no I/O.

A Tally is fed raw socket tables as the system layer reads them: netlink reply buffers
(inet_diag_msg, include/uapi/linux/inet_diag.h) or /proc/net/tcp{,6} lines. It counts while it
parses, without building an object per socket, because the machines that need this command may
hold hundreds of thousands of sockets. finish() turns the tally into a Census whose numbers do not
depend on which source was read.
"""

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


class Tally:
    """Counts sockets as the raw tables stream in."""

    def __init__(self, source: str, port_low: int, port_high: int) -> None:
        self.source = source
        self.port_low = port_low
        self.port_high = port_high
        self.states = [0] * 16
        self.orphans = 0
        self.fin_wait2_orphans = 0
        self.interrupted = False
        self._established = [0]  # ESTABLISHED with an ephemeral local port (a cell for closures)
        # family -> raw group keys, one per socket with an ephemeral local port (and again for
        # those in TIME_WAIT); finish() counts them in C (Counter) and decodes each group once.
        self._groups: dict[int, list] = {}
        self._tw_groups: dict[int, list] = {}
        # (inode, uid, local, remote) per CLOSE_WAIT socket; finish() makes them CloseWait records
        self._close_wait: list[tuple[int, int, str, str]] = []

    def _orphan(self, state: int) -> None:
        self.orphans += 1
        if state == FIN_WAIT2:
            self.fin_wait2_orphans += 1

    def netlink_feeder(self, family: int):
        """A callable for one family's dump: takes each received buffer, returns True at the
        end of the dump. Raises OSError for an error the kernel reports."""
        states = self.states
        group = self._groups.setdefault(family, []).append
        tw_group = self._tw_groups.setdefault(family, []).append
        low, high = self.port_low, self.port_high
        header = _NLMSG.unpack_from
        u32 = _U32.unpack_from
        slow_states = _SLOW_STATES
        established = self._established
        close_wait = self._close_wait.append
        width = 4 if family == socket.AF_INET else 16

        def feed(data: bytes) -> bool:
            offset = 0
            end = len(data)
            # The kernel flags every message of a batch built while the table changed; the first
            # message of each buffer is enough to notice.
            if end > 6 and data[6] & 0x10:  # NLM_F_DUMP_INTR in nlmsg_flags
                self.interrupted = True
            while offset < end:
                length, kind = header(data, offset)
                if kind != SOCK_DIAG_BY_FAMILY or length < _MESSAGE_MIN:
                    if kind == NLMSG_DONE:
                        return True
                    if kind == NLMSG_ERROR:
                        code = -_I32.unpack_from(data, offset + 16)[0]
                        if code:
                            raise OSError(code, os.strerror(code))
                    elif length < 16:
                        raise OSError(0, f"malformed netlink message of {length} bytes")
                    offset += (length + 3) & ~3
                    continue
                state = data[offset + _STATE]
                states[state] += 1
                if state != LISTEN:
                    port = data[offset + _SPORT] << 8 | data[offset + _SPORT + 1]
                    if low <= port <= high:
                        key = data[offset + 22 : offset + 56]
                        group(key)
                        if state == TIME_WAIT:
                            tw_group(key)
                        elif state == ESTABLISHED:
                            established[0] += 1
                    if state in slow_states:
                        inode = u32(data, offset + _INODE)[0]
                        if state == CLOSE_WAIT:
                            src = data[offset + 24 : offset + 24 + width]
                            dst = data[offset + 40 : offset + 40 + width]
                            dport = data[offset + 22] << 8 | data[offset + 23]
                            close_wait(
                                (
                                    inode,
                                    u32(data, offset + _UID)[0],
                                    endpoint(family, src, port),
                                    endpoint(family, dst, dport),
                                )
                            )
                        elif inode == 0:
                            self._orphan(state)
                offset += (length + 3) & ~3
            return False

        return feed

    def feed_proc(self, family: int, lines) -> None:
        """Rows of /proc/net/tcp or /proc/net/tcp6 (the header line included, or not)."""
        states = self.states
        group = self._groups.setdefault(family, []).append
        tw_group = self._tw_groups.setdefault(family, []).append
        low, high = self.port_low, self.port_high
        slow_states = _SLOW_STATES
        established = self._established
        close_wait = self._close_wait.append
        for line in lines:
            fields = line.split()
            # sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ...
            if len(fields) < 10 or fields[0] == "sl":
                continue
            state = int(fields[3], 16)
            states[state] += 1
            if state == LISTEN:
                continue
            local = fields[1]
            port = int(local[-4:], 16)
            if low <= port <= high:
                key = local[:-5] + fields[2]  # local address + remote address:port
                group(key)
                if state == TIME_WAIT:
                    tw_group(key)
                elif state == ESTABLISHED:
                    established[0] += 1
            if state == CLOSE_WAIT:
                remote = fields[2]
                close_wait(
                    (
                        int(fields[9]),
                        int(fields[7]),
                        endpoint(family, _proc_address(family, local[:-5]), port),
                        endpoint(family, _proc_address(family, remote[:-5]), int(remote[-4:], 16)),
                    )
                )
            elif state in slow_states and fields[9] == "0":
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
        counts = self.states[:]
        counts[SYN_RECV] += counts[NEW_SYN_RECV]
        states = {name: counts[code] for code, name in STATE_NAMES.items()}
        groups = []
        for family, keys in self._groups.items():
            raw = Counter(keys)
            tw = Counter(self._tw_groups.get(family, ()))
            label = "ipv4" if family == socket.AF_INET else "ipv6"
            for key, count in raw.items():
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
            established_ephemeral=self._established[0],
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
            who = f"program {owner.command or '?'} (pid {owner.pid})"
            message = (
                f"{who} holds {owner.count} CLOSE_WAIT sockets (local {local}): the peer "
                "closed and the program never called close(). It does not close(); no sysctl "
                "bounds CLOSE_WAIT, no profile helps. Fix the program: close the socket when "
                "recv() returns 0 (EOF) or on error."
            )
            source = f"{CLOSE_WAIT_SOURCE}; {OWNERS_SOURCE}"
        else:
            message = (
                f"{owner.count} CLOSE_WAIT sockets of uid {owner.uid} (local {local}) whose "
                f"program cannot be named: {owner.reason}. The program holding them does not "
                "close(); no sysctl bounds CLOSE_WAIT."
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
    if not _outbound_values_live(ctx):
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
