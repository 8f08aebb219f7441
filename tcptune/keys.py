"""What tcptune knows about each sysctl it watches.

Every fact here comes from docs/kernel-facts (our checked reference, built from the kernel's
Documentation/networking/ip-sysctl.rst, the commits named below, and probes in private network
namespaces). A fact that could not be established is not stated: the tool reads the running
kernel instead.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from tcptune.kernel import Version, format_version

IP_SYSCTL_DOC = "Documentation/networking/ip-sysctl.rst"
NET_CORE_DOC = "Documentation/admin-guide/sysctl/net.rst"
PROBE = "probe: Linux 6.18 in a private network namespace (unshare -n)"
K8S_NETNS = "Kubernetes pkg/util/kernel/constants.go (cites the kernel commits)"

# Types, as the issue tracker and the profile validator speak of them.
BOOL = "bool"
INT = "int"
ENUM = "enum"
INT_VECTOR = "int vector"
STRING = "string"
PORT_LIST = "port list"


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class KeySpec:
    """One watched sysctl, as docs/kernel-facts records it. There is one per key, in KEYS, so a
    spec is equal only to itself (eq=False: comparing twenty fields would never be needed)."""

    name: str  # dotted name, e.g. net.ipv4.tcp_tw_reuse
    type: str
    summary: str  # one line
    explanation: str  # one paragraph: what it really does
    sources: tuple[str, ...]
    # Defaults as (first kernel with this default, value); a None value means "depends on the
    # machine" and default_note says how. The first entry's kernel may be None: "any kernel".
    defaults: tuple[tuple[Version | None, str | None], ...]
    default_note: str = ""
    values: Mapping[str, str] = field(default_factory=dict)  # enum/bool value -> meaning
    minimum: int | None = None
    maximum: int | None = None
    length: int | None = None  # for int vectors
    added: Version | None = None
    added_source: str = ""
    removed: Version | None = None
    removed_source: str = ""
    per_netns: str = "yes"  # "yes", "no", or "since X.Y"
    netns_source: str = ""
    misconceptions: tuple[str, ...] = ()
    value_since: Mapping[str, Version] = field(default_factory=dict)  # value -> first kernel
    refused: Mapping[str, str] = field(default_factory=dict)  # value no profile may set -> why

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def proc_path(self) -> str:
        """Path below the root, e.g. proc/sys/net/ipv4/tcp_tw_reuse."""
        return "proc/sys/" + self.name.replace(".", "/")

    def default_for(self, version: Version | None) -> str | None:
        """The upstream default on this kernel; None when it depends on the machine or is
        unknown for this kernel."""
        chosen: str | None = None
        for since, value in self.defaults:
            if since is None or (version is not None and version[:2] >= since[:2]):
                chosen = value
            elif version is None:
                # Kernel unknown: only a default that never changed can be stated.
                return None
        return chosen

    def exists_on(self, version: Version | None) -> bool | None:
        """Should this key exist on that kernel? None when we cannot tell."""
        if version is None:
            return None
        if self.added is not None and version[:2] < self.added[:2]:
            return False
        return not (self.removed is not None and version[:2] >= self.removed[:2])

    def history(self) -> str:
        parts = []
        if self.added:
            parts.append(f"added in {format_version(self.added)}" + _ref(self.added_source))
        else:
            parts.append("long-standing (present in every kernel tcptune supports)")
        if self.removed:
            parts.append(f"removed in {format_version(self.removed)}" + _ref(self.removed_source))
        return "; ".join(parts)


def _ref(source: str) -> str:
    return f" ({source})" if source else ""


_KEYS: tuple[KeySpec, ...] = (
    KeySpec(
        name="net.ipv4.tcp_tw_recycle",
        type=BOOL,
        summary="Fast TIME_WAIT recycling keyed on per-peer timestamps (removed in 4.12).",
        explanation=(
            "When set, the kernel remembered the last TCP timestamp seen from each peer address "
            "and dropped SYNs whose timestamp was older, so TIME_WAIT sockets could be recycled "
            "quickly. Clients behind one NAT address have unrelated timestamp clocks, so their "
            "SYNs were silently dropped: connections from NATed users failed at random. From "
            "4.10 timestamps carry a random per-connection offset, which made the feature useless "
            "for everyone, and 4.12 removed the key. On 4.12 and later the file does not exist "
            "and any sysctl.d line setting it fails at boot."
        ),
        sources=(
            IP_SYSCTL_DOC,
            'commit 4396e46187ca "tcp: remove tcp_tw_recycle" (4.12)',
            "commit 95a22caee396 (4.10: random per-connection timestamp offsets)",
        ),
        defaults=((None, "0"),),
        values={"0": "off (the only safe value)", "1": "on: breaks clients behind NAT"},
        refused={"1": "it drops SYNs from clients behind NAT and the key is gone since 4.12"},
        removed=(4, 12, 0),
        removed_source='commit 4396e46187ca "tcp: remove tcp_tw_recycle"',
        per_netns="4.11 only",
        netns_source="docs/kernel-facts",
        misconceptions=(
            '"Set tcp_tw_recycle=1 to fix TIME_WAIT" (common in blog posts): it drops SYNs '
            "from clients behind NAT, has been useless since 4.10 and does not exist since 4.12.",
        ),
    ),
    KeySpec(
        name="net.ipv4.tcp_tw_reuse",
        type=ENUM,
        summary="Let connect() take over a TIME_WAIT 4-tuple when timestamps prove it safe.",
        explanation=(
            "Acts only on the connecting (client) side: when connect() needs a local port whose "
            "4-tuple is held by a TIME_WAIT socket, the kernel may reuse it if TCP timestamps "
            "show the new connection's segments cannot be confused with the old one's. It needs "
            "tcp_timestamps != 0 on this host; it does nothing for a server accepting "
            "connections. 0 is off, 1 is on for every connection, 2 (the default since 4.18) is "
            "on only for loopback traffic: 127/8, ::1, or sockets bound to lo."
        ),
        sources=(
            IP_SYSCTL_DOC,
            "commit 79e9fed46038 (value 2, loopback only; 4.18, inferred from merge date)",
            PROBE,
        ),
        defaults=((None, "0"), ((4, 18, 0), "2")),
        values={
            "0": "off",
            "1": "on for all outgoing connections (needs tcp_timestamps)",
            "2": "on for loopback connections only (127/8, ::1, bound to lo; since 4.18)",
        },
        value_since={"2": (4, 18, 0)},
        minimum=0,
        maximum=2,
        per_netns="since 4.11 (inferred)",
        netns_source="docs/kernel-facts",
        misconceptions=(
            "tcp_tw_reuse does not help a server with many TIME_WAIT sockets from accepted "
            "connections: it acts only when this host calls connect().",
            "With tcp_timestamps=0 it has no effect at all.",
            "Value 2 covers only 127/8, ::1 and sockets bound to lo; another local address that "
            "merely routes over lo does not qualify (probe).",
        ),
    ),
    KeySpec(
        name="net.ipv4.tcp_tw_reuse_delay",
        type=INT,
        summary="Milliseconds after the peer's last timestamp before a TIME_WAIT may be reused.",
        explanation=(
            "With tcp_tw_reuse enabled, a TIME_WAIT socket may be taken over only once this many "
            "milliseconds have passed since the last timestamp received from the peer. Before "
            "6.14 the delay was fixed at one second."
        ),
        sources=(IP_SYSCTL_DOC, "commit ca6a6f93867a (6.14)"),
        defaults=((None, "1000"),),
        minimum=1,
        maximum=60000,
        added=(6, 14, 0),
        added_source="commit ca6a6f93867a",
    ),
    KeySpec(
        name="net.ipv4.tcp_fin_timeout",
        type=INT,
        summary="Lifetime (s) of an ORPHANED FIN_WAIT2 socket. Does not touch TIME_WAIT.",
        explanation=(
            "How long a socket that this host closed, and whose owner has gone away (an orphan), "
            "waits in FIN_WAIT2 for the peer's FIN before the kernel drops it. TIME_WAIT lasts "
            "TCP_TIMEWAIT_LEN, 60 seconds fixed at compile time, whatever this key says: "
            "lowering it does not shorten TIME_WAIT. The kernel does not range-check it."
        ),
        sources=(IP_SYSCTL_DOC, "include/net/tcp.h (TCP_TIMEWAIT_LEN)", PROBE),
        defaults=((None, "60"),),
        minimum=0,
        per_netns="since 4.6",
        netns_source=f"commit 1e579caa18b9; {K8S_NETNS}",
        misconceptions=(
            '"Lower tcp_fin_timeout to fix TIME_WAIT": measured with tcp_fin_timeout=3, a '
            "TIME_WAIT socket still had a 59 s timer; only orphaned FIN_WAIT2 sockets died "
            "after about 3 s.",
            "No setting bounds CLOSE_WAIT: that state waits for the application to call close().",
        ),
    ),
    KeySpec(
        name="net.ipv4.tcp_max_tw_buckets",
        type=INT,
        summary="Cap on TIME_WAIT + orphaned FIN_WAIT2 sockets; past it they are closed at once.",
        explanation=(
            "The most TIME_WAIT sockets (counted together with orphaned FIN_WAIT2 sockets) the "
            "kernel keeps. Past the cap a closing socket skips TIME_WAIT and is destroyed at "
            "once, losing the protection TIME_WAIT exists for; only the TcpExt counter "
            "TCPTimeWaitOverflow records it (on 6.18 nothing is logged to dmesg)."
        ),
        sources=(IP_SYSCTL_DOC, "net/ipv4/tcp_minisocks.c", PROBE),
        defaults=((None, None),),
        default_note="half the TCP established hash size, so it depends on memory "
        "(131072 on a 2-core 24 GiB machine)",
        minimum=0,
        misconceptions=(
            "Lowering it does not make TIME_WAIT cheaper; it throws away TIME_WAIT protection "
            "for the sockets past the cap.",
        ),
    ),
    KeySpec(
        name="net.ipv4.ip_local_port_range",
        type=INT_VECTOR,
        summary="Ephemeral ports used by connect() and autobind: 'low high'.",
        explanation=(
            "The local ports the kernel picks from when a socket connects without binding a "
            "port. Each (local address, remote address, remote port) destination can have at "
            "most this many connections, including those in TIME_WAIT, so a narrow range is the "
            "usual cause of 'Cannot assign requested address' on busy clients. The kernel "
            "requires low <= high and low >= ip_unprivileged_port_start; when low and high "
            "have the same parity it logs a warning, because connect() prefers one parity and "
            "bind() the other."
        ),
        sources=(IP_SYSCTL_DOC, PROBE),
        defaults=((None, "32768 60999"),),
        minimum=1,
        maximum=65535,
        length=2,
        misconceptions=(
            "The limit is per destination, not per host: 28232 ports (the default range) "
            "allow 28232 concurrent connections to each distinct remote address and port.",
        ),
    ),
    KeySpec(
        name="net.ipv4.ip_local_reserved_ports",
        type=PORT_LIST,
        summary="Ports excluded from automatic (ephemeral) selection.",
        explanation=(
            "A comma-separated list of ports and port ranges (e.g. '8080,9000-9100') that the "
            "kernel never hands out as ephemeral ports, so services can bind them later. Reserved "
            "ports inside ip_local_port_range shrink the usable range."
        ),
        sources=(IP_SYSCTL_DOC,),
        defaults=((None, ""),),
        per_netns="since 3.16",
        netns_source=f"commit 122ff243f5f1; {K8S_NETNS}",
    ),
    KeySpec(
        name="net.ipv4.tcp_timestamps",
        type=ENUM,
        summary="RFC 7323 timestamps: needed by PAWS and by tcp_tw_reuse.",
        explanation=(
            "TCP timestamps let the stack measure round-trip times and reject old duplicate "
            "segments (PAWS). tcp_tw_reuse relies on them to reuse TIME_WAIT sockets safely. "
            "1 enables them with a random per-connection offset, 2 enables them without the "
            "offset, 0 disables them."
        ),
        sources=(IP_SYSCTL_DOC,),
        defaults=((None, "1"),),
        values={
            "0": "off (disables PAWS; tcp_tw_reuse stops working)",
            "1": "on, with random per-connection offsets",
            "2": "on, without random offsets",
        },
        minimum=0,
        maximum=2,
    ),
    KeySpec(
        name="net.ipv4.tcp_max_orphans",
        type=INT,
        summary="Cap on sockets no process holds any more (global, not per network namespace).",
        explanation=(
            "The most orphaned sockets (closed by their program but still finishing the TCP "
            "close) the system keeps; past it orphans are reset at once with a kernel warning. "
            "The key is global: it is absent inside a network namespace such as a container's."
        ),
        sources=(IP_SYSCTL_DOC, PROBE),
        defaults=((None, None),),
        default_note="half the TCP established hash size, so it depends on memory",
        minimum=0,
        per_netns="no",
        netns_source=PROBE,
    ),
    KeySpec(
        name="net.ipv4.tcp_orphan_retries",
        type=INT,
        summary="Retransmissions before an orphaned socket is killed.",
        explanation=(
            "How many times the kernel retransmits on a socket no process holds before giving "
            "up. The default 0 is treated as 8 when the peer was recently alive."
        ),
        sources=(IP_SYSCTL_DOC,),
        defaults=((None, "0"),),
        minimum=0,
        maximum=255,
    ),
    KeySpec(
        name="net.ipv4.tcp_keepalive_time",
        type=INT,
        summary="Idle seconds before the first keepalive probe (on sockets with SO_KEEPALIVE).",
        explanation=(
            "How long a connection with SO_KEEPALIVE enabled may be idle before the kernel "
            "starts probing the peer. Only programs that enable SO_KEEPALIVE are affected. The "
            "kernel does not range-check it."
        ),
        sources=(IP_SYSCTL_DOC,),
        defaults=((None, "7200"),),
        minimum=1,
        per_netns="since 4.5",
        netns_source=f"commit 13b287e8d1ca; {K8S_NETNS}",
    ),
    KeySpec(
        name="net.ipv4.tcp_keepalive_intvl",
        type=INT,
        summary="Seconds between keepalive probes.",
        explanation=(
            "After the first unanswered keepalive probe, the interval between further probes. "
            "A dead peer is declared after tcp_keepalive_time + tcp_keepalive_probes * "
            "tcp_keepalive_intvl seconds (2 h 11 min 15 s with the defaults)."
        ),
        sources=(IP_SYSCTL_DOC,),
        defaults=((None, "75"),),
        minimum=1,
        per_netns="since 4.5",
        netns_source=f"commit b840d15d3912; {K8S_NETNS}",
    ),
    KeySpec(
        name="net.ipv4.tcp_keepalive_probes",
        type=INT,
        summary="Unanswered keepalive probes before the connection is declared dead.",
        explanation="How many keepalive probes may go unanswered before the connection is reset.",
        sources=(IP_SYSCTL_DOC,),
        defaults=((None, "9"),),
        minimum=0,
        maximum=255,
        per_netns="since 4.5",
        netns_source=f"commit 9bd6861bd432; {K8S_NETNS}",
    ),
    KeySpec(
        name="net.ipv4.tcp_syncookies",
        type=ENUM,
        summary="SYN cookies: answer SYNs without queue state when the backlog overflows.",
        explanation=(
            "With SYN cookies a listener whose SYN queue is full still answers SYNs, encoding "
            "the connection state in the sequence number, which defends against SYN floods. "
            "0 is off, 1 uses cookies only when the queue overflows, 2 always uses them."
        ),
        sources=(IP_SYSCTL_DOC,),
        defaults=((None, "1"),),
        values={
            "0": "off (no SYN flood protection)",
            "1": "on when the SYN queue overflows",
            "2": "always",
        },
        minimum=0,
        maximum=2,
    ),
    KeySpec(
        name="net.ipv4.tcp_max_syn_backlog",
        type=INT,
        summary="Per-listener limit of half-open (SYN_RECV) connections.",
        explanation=(
            "How many connection requests that have not completed the handshake a listener may "
            "hold. Past it, new SYNs are dropped unless SYN cookies are on."
        ),
        sources=(IP_SYSCTL_DOC,),
        defaults=((None, None),),
        default_note="max(128, TCP established hash size / 128), so it depends on memory",
        minimum=0,
    ),
    KeySpec(
        name="net.core.somaxconn",
        type=INT,
        summary="Upper clamp on the backlog a program passes to listen().",
        explanation=(
            "listen(fd, backlog) is silently clamped to this value, so a busy server whose "
            "accept queue overflows may be limited here rather than by its own configuration."
        ),
        sources=(NET_CORE_DOC,),
        defaults=((None, "128"), ((5, 4, 0), "4096")),
        minimum=0,
        maximum=2147483647,
    ),
    KeySpec(
        name="net.ipv4.tcp_fastopen",
        type=INT,
        summary="TCP Fast Open bitmap: 0x1 client, 0x2 server, 0x4, 0x200, 0x400.",
        explanation=(
            "Enables sending data in the SYN. Bit 0x1 enables it for clients, 0x2 for servers; "
            "0x4, 0x200 and 0x400 relax the cookie requirements (see the kernel documentation)."
        ),
        sources=(IP_SYSCTL_DOC,),
        defaults=((None, "1"),),
        minimum=0,
        added=(3, 7, 0),
        added_source=IP_SYSCTL_DOC,
    ),
    KeySpec(
        name="net.ipv4.tcp_rmem",
        type=INT_VECTOR,
        summary="Receive buffer sizes in bytes: 'min default max'.",
        explanation=(
            "The minimum, initial and maximum receive buffer of a TCP socket when autotuning is "
            "in charge. Each must be at least 1; the kernel does not check that they are in "
            "order."
        ),
        sources=(IP_SYSCTL_DOC,),
        defaults=((None, None), ((6, 16, 0), "4096 131072 33554432")),
        default_note="max raised to 32 MB in 6.16; older defaults are not recorded here",
        minimum=1,
        length=3,
        per_netns="since 4.15",
        netns_source="docs/kernel-facts",
    ),
    KeySpec(
        name="net.ipv4.tcp_wmem",
        type=INT_VECTOR,
        summary="Send buffer sizes in bytes: 'min default max'.",
        explanation=(
            "The minimum, initial and maximum send buffer of a TCP socket under autotuning. "
            "Each must be at least 1; the kernel does not check that they are in order."
        ),
        sources=(IP_SYSCTL_DOC,),
        defaults=((None, "4096 16384 4194304"),),
        minimum=1,
        length=3,
        per_netns="since 4.15",
        netns_source="docs/kernel-facts",
    ),
    KeySpec(
        name="net.ipv4.tcp_congestion_control",
        type=STRING,
        summary="Default congestion control algorithm for new sockets.",
        explanation=(
            "The algorithm new TCP sockets use unless the program picks one. It must be loaded; "
            "inside a non-initial network namespace only the names in "
            "tcp_allowed_congestion_control may be set (others fail with EPERM)."
        ),
        sources=(IP_SYSCTL_DOC, PROBE),
        defaults=((None, None),),
        default_note="chosen when the kernel is built (CONFIG_DEFAULT_TCP_CONG)",
    ),
    KeySpec(
        name="net.ipv4.tcp_slow_start_after_idle",
        type=BOOL,
        summary="Reset the congestion window after an idle period.",
        explanation=(
            "When 1, a connection idle for longer than its retransmission timeout starts again "
            "from the initial congestion window. Long-lived connections with bursty traffic "
            "(keep-alive HTTP, RPC) often do better with 0."
        ),
        sources=(IP_SYSCTL_DOC,),
        defaults=((None, "1"),),
        values={"0": "keep the congestion window across idle periods", "1": "reset it"},
    ),
    KeySpec(
        name="net.ipv4.tcp_mtu_probing",
        type=ENUM,
        summary="Packetization-layer path MTU discovery.",
        explanation=(
            "0 off, 1 on once an ICMP black hole is detected, 2 always. Helps connections that "
            "stall because ICMP 'fragmentation needed' messages are filtered on the path."
        ),
        sources=(IP_SYSCTL_DOC,),
        defaults=((None, "0"),),
        values={"0": "off", "1": "on after an ICMP black hole is detected", "2": "always on"},
        minimum=0,
        maximum=2,
    ),
    KeySpec(
        name="net.ipv4.tcp_rfc1337",
        type=BOOL,
        summary="Whether an RST may kill a TIME_WAIT socket (RFC 1337 'TIME-WAIT assassination').",
        explanation=(
            "At 0 (the default) an in-window RST received in TIME_WAIT destroys the socket at "
            "once: TIME-WAIT assassination. At 1 such RSTs are ignored and TIME_WAIT runs its "
            "full 60 seconds. The kernel documentation's wording reads as if it were the other "
            "way round."
        ),
        sources=(IP_SYSCTL_DOC, "net/ipv4/tcp_minisocks.c"),
        defaults=((None, "0"),),
        values={"0": "an RST kills a TIME_WAIT socket", "1": "RSTs in TIME_WAIT are ignored"},
        misconceptions=(
            "The documentation wording suggests 0 protects TIME_WAIT; it is 1 that does.",
        ),
    ),
)

KEYS: dict[str, KeySpec] = {spec.name: spec for spec in _KEYS}
_BY_SHORT: dict[str, KeySpec] = {spec.short_name: spec for spec in _KEYS}

# A sysctl key as a user may type it: dotted or slashed, optionally as a /proc/sys path.
_KEY_SHAPE = r"[A-Za-z0-9_\-]+(?:[./][A-Za-z0-9_\-]+)*"


def canonical_name(text: str) -> str:
    """'/proc/sys/net/ipv4/tcp_tw_reuse' or 'net/ipv4/tcp_tw_reuse' -> 'net.ipv4.tcp_tw_reuse'."""
    name = text.strip()
    for prefix in ("/proc/sys/", "proc/sys/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name.strip("/").replace("/", ".")


def lookup(text: str) -> KeySpec | None:
    """Find a key by dotted name, bare name (tcp_tw_reuse) or /proc/sys path."""
    name = canonical_name(text)
    return KEYS.get(name) or _BY_SHORT.get(name)


def close_matches(text: str, limit: int = 3) -> list[str]:
    import difflib

    name = canonical_name(text)
    candidates = list(KEYS) + list(_BY_SHORT)
    found = difflib.get_close_matches(name, candidates, n=limit * 2, cutoff=0.6)
    full = []
    for match in found:
        full_name = (KEYS.get(match) or _BY_SHORT[match]).name
        if full_name not in full:
            full.append(full_name)
    return full[:limit]


def is_key_shaped(text: str) -> bool:
    return bool(re.fullmatch(_KEY_SHAPE, canonical_name(text))) and ".." not in text
