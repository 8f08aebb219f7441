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
PROBE = "probe: Linux 6.18.44 in a private network namespace (unshare -n)"
K8S_NETNS = "Kubernetes pkg/util/kernel/constants.go (cites the kernel commits)"
# Versions marked "inferred" come from the commit date and the merge window it fell in, not a tag.

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
    per_netns: str = "yes"  # "yes" (one value per network namespace) or "no" (global)
    # The first kernel where the key is per network namespace (None: every kernel tcptune covers).
    # Before it the key is global and absent inside a network namespace such as a container's.
    netns_since: Version | None = None
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
            if since is None or (version is not None and version >= since):
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

    def namespaced_on(self, version: Version | None) -> bool | None:
        """Is the key per network namespace on that kernel? None when that depends on a kernel
        version that is not known."""
        if self.per_netns == "no":
            return False
        if self.netns_since is None:
            return True
        if version is None:
            return None
        return version[:2] >= self.netns_since[:2]

    def netns_text(self) -> str:
        """'yes', 'yes, since 4.11 (...)' or 'no: ...', with the source."""
        if self.per_netns == "no":
            text = "no: global, absent inside a network namespace"
        elif self.netns_since is None:
            text = "yes"
        else:
            text = f"yes, since {format_version(self.netns_since)}"
            if self.removed is not None:
                text += f" (until its removal in {format_version(self.removed)})"
            text += "; before that global, and absent inside a network namespace"
        return f"{text}. Source: {self.netns_source}" if self.netns_source else text

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


# Commits named more than once below.
TS_PER_CONNECTION = 'commit 95a22caee396 "tcp: randomize tcp timestamp offsets for each connection"'
TS_PER_ADDRESS_PAIR = 'commit 28ee1b746f49 "secure_seq: downgrade to per-host timestamp offsets"'
TS_PORTS_BACK = 'commit 165573e41f2f "tcp: secure_seq: add back ports to TS offset"'
TW_UNIQUE = "net/ipv4/tcp_ipv4.c:tcp_twsk_unique (6.18)"
NETNS_TW = 'commit 1946e672c173 "ipv4: Namespaceify tcp_tw_recycle and tcp_max_tw_buckets knob"'
HOST_COPY = (
    "a new network namespace starts with the host's current value, not the kernel's default "
    "(tcp_sk_init; probe), so inside a container the 'default' is what the host had"
)

_KEYS: tuple[KeySpec, ...] = (
    KeySpec(
        name="net.ipv4.tcp_tw_recycle",
        type=BOOL,
        summary="Fast TIME_WAIT recycling keyed on per-peer timestamps (removed in 4.12).",
        explanation=(
            "When set, the kernel remembered the last TCP timestamp received from each peer "
            "address and, for 60 s (TCP_PAWS_MSL), dropped SYNs from that address whose "
            "timestamp was older, so TIME_WAIT sockets could be recycled early. That assumes one "
            "timestamp clock per address: clients behind a NAT share an address but not a clock, "
            "so their SYNs were dropped at random. Which clients fail depends on how the clients "
            "stamp their SYNs, not on this host's kernel: Linux 4.10 clients used a random offset "
            "per connection (95a22caee396), so even a single client without NAT was dropped; "
            "4.11 went back to one offset per address pair for the sake of such servers "
            "(28ee1b746f49); commit 165573e41f2f (2026: 7.0, inferred; also in 6.19.y, 6.18.y and "
            "6.12.y) makes it per connection again. 4.12 removed the key: from 4.12 "
            "/proc/sys/net/ipv4/tcp_tw_recycle does not exist and writing it fails with ENOENT."
        ),
        sources=(
            IP_SYSCTL_DOC,
            'commit 4396e46187ca "tcp: remove tcp_tw_recycle" (4.12)',
            f"{TS_PER_CONNECTION} (4.10)",
            f"{TS_PER_ADDRESS_PAIR} (4.11, inferred)",
            f"{TS_PORTS_BACK} (March 2026: 7.0, inferred)",
            "include/net/tcp.h (TCP_PAWS_MSL)",
        ),
        defaults=((None, "0"),),
        values={
            "0": "off (the only safe value)",
            "1": "on: drops SYNs from clients whose timestamps are not ordered per address",
        },
        refused={"1": "it drops SYNs from clients behind NAT and the key is gone since 4.12"},
        removed=(4, 12, 0),
        removed_source='commit 4396e46187ca "tcp: remove tcp_tw_recycle"',
        netns_since=(4, 11, 0),
        netns_source=f"{NETNS_TW} (4.11, inferred)",
        misconceptions=(
            '"Set tcp_tw_recycle=1 to fix TIME_WAIT" (common in blog posts): it drops SYNs '
            "from clients behind NAT (and from clients that randomize timestamps per "
            "connection, NAT or not), and the key does not exist since 4.12.",
            '"Since 4.10 it drops SYNs from every client": that depends on the clients\' '
            "kernels, not this host's; 4.11 went back to per-address-pair offsets "
            "(28ee1b746f49).",
        ),
    ),
    KeySpec(
        name="net.ipv4.tcp_tw_reuse",
        type=ENUM,
        summary="Let connect() take over a TIME_WAIT 4-tuple when timestamps prove it safe.",
        explanation=(
            "Acts only on the connecting side, when connect() picks the local port itself: a "
            "port whose 4-tuple is held by a TIME_WAIT socket may be taken over once "
            "tcp_tw_reuse_delay has passed since that socket entered TIME-WAIT (before 6.14: "
            "once the seconds clock had moved past the second of the peer's last timestamp, 0 "
            "to 1 s), and only if timestamps were negotiated on the old connection. A socket "
            "that bind()s its port before connect() takes over such a TIME_WAIT 4-tuple "
            "whatever this key says. 0 is off, 1 on for every connection, 2 (the default since "
            "4.18) only for loopback: 127.0.0.0/8, ::ffff:127.0.0.0/104, ::1, or sockets bound "
            "to lo. It does nothing for a server's TIME_WAIT from accepted connections."
        ),
        sources=(
            IP_SYSCTL_DOC,
            TW_UNIQUE,
            "net/ipv4/inet_hashtables.c:__inet_hash_connect, __inet_check_established (6.18)",
            'commit 79e9fed46038 "net-tcp: extend tcp_tw_reuse sysctl to enable loopback only '
            'optimization" (value 2; 4.18, inferred)',
            PROBE,
        ),
        defaults=((None, "0"), ((4, 18, 0), "2")),
        values={
            "0": "off",
            "1": "on for all outgoing connections (needs timestamps on the old connection)",
            "2": "on for loopback connections only (127/8, ::ffff:127.0.0.0/104, ::1, bound to "
            "lo; since 4.18)",
        },
        value_since={"2": (4, 18, 0)},
        minimum=0,
        maximum=2,
        netns_since=(4, 11, 0),
        netns_source='commit 56ab6b93007e "ipv4: Namespaceify tcp_tw_reuse knob" (4.11, inferred)',
        misconceptions=(
            "tcp_tw_reuse does not help a server with many TIME_WAIT sockets from accepted "
            "connections: it acts only when this host calls connect().",
            "Without timestamps on the old connection (tcp_timestamps=0 here, or a peer that "
            "does not send them) it has no effect at all (probe).",
            "It is not the only way a TIME_WAIT 4-tuple is reused: bind() then connect() takes "
            "one over even with tcp_tw_reuse=0, and TcpExt TWRecycled counts both (probe).",
            "Value 2 covers only 127/8, ::ffff:127.0.0.0/104, ::1 and sockets bound to lo; "
            "another local address that merely routes over lo does not qualify (probe).",
        ),
    ),
    KeySpec(
        name="net.ipv4.tcp_tw_reuse_delay",
        type=INT,
        summary="Milliseconds after entering TIME-WAIT before connect() may reuse the socket.",
        explanation=(
            "With tcp_tw_reuse enabled, connect() may take over a TIME_WAIT socket only once "
            "this many milliseconds have passed since that socket entered TIME-WAIT "
            "(tw_entry_stamp + delay; the threshold lies within [N, N+1] ms). Before 6.14 there "
            "was no such key and no fixed second either: reuse was allowed once the kernel's "
            "1 Hz clock had moved past the second in which the peer's last timestamp arrived, "
            "anywhere from 0 to 1 s later. Do not set it below the peer's timestamp clock tick "
            "(RFC 7323 allows 1 Hz), or PAWS may reject the new connection's segments."
        ),
        sources=(
            IP_SYSCTL_DOC,
            TW_UNIQUE,
            'commit 19ce8cd30465 "tcp: Measure TIME-WAIT reuse delay with millisecond '
            'precision" (6.14)',
            'commit ca6a6f93867a "tcp: Add sysctl to configure TIME-WAIT reuse delay" (6.14)',
            PROBE,
        ),
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
            "waits in FIN_WAIT2 for the peer's FIN before the kernel drops it; never less than "
            "3.5 retransmission timeouts (tcp_fin_time). An orphan with more than 60 s to go "
            "stays a full socket until 60 s are left, then becomes a TIME_WAIT-like minisocket, "
            "which /proc/net/sockstat counts as tw and tcp_max_tw_buckets caps. TIME_WAIT lasts "
            "TCP_TIMEWAIT_LEN, 60 seconds fixed at compile time, whatever this key says: "
            "lowering it does not shorten TIME_WAIT. The kernel does not range-check it."
        ),
        sources=(
            IP_SYSCTL_DOC,
            "include/net/tcp.h (TCP_TIMEWAIT_LEN, tcp_fin_time)",
            "net/ipv4/tcp.c:__tcp_close (6.18)",
            PROBE,
        ),
        defaults=((None, "60"),),
        minimum=0,
        netns_since=(4, 6, 0),
        netns_source=f"commit 1e579caa18b9 (4.6, inferred); {K8S_NETNS}",
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
        summary="Cap on TIME_WAIT sockets (and late FIN_WAIT2 orphans); past it they die at once.",
        explanation=(
            "The most TIME_WAIT sockets the kernel keeps in this network namespace; orphaned "
            "FIN_WAIT2 sockets count too once they have at most 60 s left (they then live as "
            "the same kind of minisocket). A socket that closes while the cap is reached skips "
            "TIME_WAIT and is destroyed at once, losing the protection TIME_WAIT exists for. "
            "TcpExt TCPTimeWaitOverflow counts those, and also sockets destroyed because the "
            "minisocket could not be allocated. On 6.18 nothing is logged to dmesg, although "
            "ip-sysctl.rst still says a warning is printed."
        ),
        sources=(
            IP_SYSCTL_DOC,
            "net/ipv4/inet_timewait_sock.c:inet_twsk_alloc (6.18)",
            "net/ipv4/tcp_minisocks.c:tcp_time_wait (6.18)",
            PROBE,
        ),
        defaults=((None, None),),
        default_note="half the TCP established hash size, so it depends on memory (131072 on a "
        "2-core 24 GiB machine); in a network namespace created while "
        "net.ipv4.tcp_child_ehash_entries was set, half of that namespace's own table",
        minimum=0,
        netns_since=(4, 11, 0),
        netns_source=f"{NETNS_TW} (4.11, inferred)",
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
            "port, or binds port 0. Each (local address, remote address, remote port) "
            "destination can have at most this many connections, including those in TIME_WAIT, "
            "so a narrow range is the usual cause of 'Cannot assign requested address' on busy "
            "clients. The kernel requires 1 <= low <= high <= 65535 and, since 4.11, low >= "
            "ip_unprivileged_port_start. Since 4.2 connect() prefers ports of one parity and "
            "bind() the other, and the kernel logs a warning when low and high have the same "
            "parity; that is also when the default became 32768 60999 (32768 61000 before)."
        ),
        sources=(
            IP_SYSCTL_DOC,
            'commit 07f4c90062f8 "tcp/dccp: try to not exhaust ip_local_port_range in '
            'connect()" (4.2, inferred)',
            'commit ed2dfd900992 "tcp/dccp: warn user for preferred ip_local_port_range" '
            "(4.2, inferred)",
            "net/ipv4/sysctl_net_ipv4.c:ipv4_local_port_range (6.18)",
            PROBE,
        ),
        defaults=((None, "32768 61000"), ((4, 2, 0), "32768 60999")),
        minimum=1,
        maximum=65535,
        length=2,
        netns_since=(3, 13, 0),
        netns_source='commit 0bbf87d852d2 "net ipv4: Convert ipv4.ip_local_port_range to be per '
        'netns v3" (3.13, inferred)',
        misconceptions=(
            "The limit is per destination, not per host: 28232 ports (the default range since "
            "4.2) allow 28232 concurrent connections to each distinct remote address and port.",
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
        netns_since=(3, 16, 0),
        netns_source=f"commit 122ff243f5f1 (3.16); {K8S_NETNS}",
    ),
    KeySpec(
        name="net.ipv4.tcp_timestamps",
        type=ENUM,
        summary="RFC 7323 timestamps: needed by PAWS and by TIME_WAIT reuse on connect().",
        explanation=(
            "TCP timestamps let the stack measure round-trip times and reject old duplicate "
            "segments (PAWS); connect() can take over a TIME_WAIT socket only if timestamps were "
            "negotiated on the old connection. 0 disables them, 1 enables them with a random "
            "offset added to this host's clock, 2 (since 4.10) without the offset. The offset "
            "has been per connection in 4.10 (95a22caee396), per source and destination address "
            "pair from 4.11 (28ee1b746f49), and per connection again with commit 165573e41f2f "
            "(2026: 7.0, inferred; also in 6.19.y, 6.18.y and 6.12.y; a probe on Linux 6.18.44 "
            "found per-connection offsets). Before 4.10 there was no offset."
        ),
        sources=(
            IP_SYSCTL_DOC,
            f"{TS_PER_CONNECTION} (4.10)",
            'commit 25429d7b7dca "tcp: allow to turn tcp timestamp randomization off" '
            "(value 2, 4.10)",
            f"{TS_PER_ADDRESS_PAIR} (4.11, inferred)",
            f"{TS_PORTS_BACK} (March 2026: 7.0, inferred)",
            "net/core/secure_seq.c:secure_tcp_seq_and_ts_off (6.18.19)",
            PROBE,
        ),
        defaults=((None, "1"),),
        values={
            "0": "off (disables PAWS; TIME_WAIT reuse on connect() stops working)",
            "1": "on, with a random offset (per connection or per address pair, by kernel)",
            "2": "on, without random offsets (since 4.10)",
        },
        minimum=0,
        maximum=2,
        netns_since=(4, 13, 0),
        netns_source='commit 5d2ed0521ac9 "tcp: Namespaceify sysctl_tcp_timestamps" '
        "(4.13, inferred)",
    ),
    KeySpec(
        name="net.ipv4.tcp_max_orphans",
        type=INT,
        summary="Cap on sockets no process holds any more (global, not per network namespace).",
        explanation=(
            "The most orphaned sockets (closed by their program but still finishing the TCP "
            "close) the whole system keeps; past it orphans are reset at once and 'too many "
            "orphaned sockets' is logged (rate-limited). The key is global, shared by every "
            "network namespace: it is absent inside one, such as a container's."
        ),
        sources=(
            IP_SYSCTL_DOC,
            "net/ipv4/tcp.c:tcp_check_oom (6.18)",
            "net/ipv4/sysctl_net_ipv4.c: ipv4_table, registered for the initial namespace only "
            "(6.18)",
            PROBE,
        ),
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
            "up. The default 0 means 8 as long as the retransmission timer has not backed off to "
            "its maximum, and 0 once an ICMP error has been received: that is the 'default value "
            "is 8' of ip-sysctl.rst, while the key itself reads 0."
        ),
        sources=(IP_SYSCTL_DOC, "net/ipv4/tcp_timer.c:tcp_orphan_retries (6.18)"),
        defaults=((None, "0"),),
        minimum=0,
        maximum=255,
        netns_since=(4, 6, 0),
        netns_source='"ipv4: Namespaceify tcp_orphan_retries sysctl knob", the parent of commit '
        "1e579caa18b9 (4.6, inferred)",
    ),
    KeySpec(
        name="net.ipv4.tcp_keepalive_time",
        type=INT,
        summary="Idle seconds before the first keepalive probe (on sockets with SO_KEEPALIVE).",
        explanation=(
            "How long a connection with SO_KEEPALIVE enabled may be idle before the kernel "
            "starts probing the peer. Only programs that enable SO_KEEPALIVE are affected, and "
            "TCP_KEEPIDLE overrides it per socket. ip-sysctl.rst documents no range and the "
            "kernel checks none: it accepts 0, even negative values (probe); tcptune refuses "
            "negative ones."
        ),
        sources=(IP_SYSCTL_DOC, "net/ipv4/sysctl_net_ipv4.c (proc_dointvec_jiffies)", PROBE),
        defaults=((None, "7200"),),
        minimum=0,
        netns_since=(4, 5, 0),
        netns_source=f"commit 13b287e8d1ca (4.5, inferred); {K8S_NETNS}",
    ),
    KeySpec(
        name="net.ipv4.tcp_keepalive_intvl",
        type=INT,
        summary="Seconds between keepalive probes.",
        explanation=(
            "After the first unanswered keepalive probe, the interval between further probes. "
            "A dead peer is declared after tcp_keepalive_time + tcp_keepalive_probes * "
            "tcp_keepalive_intvl seconds (2 h 11 min 15 s with the defaults). Like "
            "tcp_keepalive_time it has no documented range and the kernel accepts 0 (probe)."
        ),
        sources=(IP_SYSCTL_DOC, "net/ipv4/sysctl_net_ipv4.c (proc_dointvec_jiffies)", PROBE),
        defaults=((None, "75"),),
        minimum=0,
        netns_since=(4, 5, 0),
        netns_source=f"commit b840d15d3912 (4.5, inferred); {K8S_NETNS}",
    ),
    KeySpec(
        name="net.ipv4.tcp_keepalive_probes",
        type=INT,
        summary="Unanswered keepalive probes before the connection is declared dead.",
        explanation=(
            "How many keepalive probes may go unanswered before the connection is reset. The "
            "kernel stores it in one byte: 0..255."
        ),
        sources=(IP_SYSCTL_DOC, "net/ipv4/sysctl_net_ipv4.c (proc_dou8vec_minmax)"),
        defaults=((None, "9"),),
        minimum=0,
        maximum=255,
        netns_since=(4, 5, 0),
        netns_source=f"commit 9bd6861bd432 (4.5, inferred); {K8S_NETNS}",
    ),
    KeySpec(
        name="net.ipv4.tcp_syncookies",
        type=ENUM,
        summary="SYN cookies: answer SYNs without queue state when the SYN queue overflows.",
        explanation=(
            "With SYN cookies a listener whose SYN queue is full (its listen() backlog, capped "
            "by net.core.somaxconn) still answers SYNs, encoding the connection state in the "
            "sequence number, which defends against SYN floods. 0 is off, 1 uses cookies only "
            "when the queue overflows, 2 always uses them. Needs CONFIG_SYN_COOKIES; on by "
            "default since 2.6.33."
        ),
        sources=(
            IP_SYSCTL_DOC,
            "net/ipv4/tcp_input.c:tcp_conn_request (6.18)",
            "commit e994b7c901de \"tcp: Don't make syn cookies initial setting depend on "
            'CONFIG_SYSCTL" (default 1, 2.6.33, inferred)',
        ),
        defaults=((None, "0"), ((2, 6, 33), "1")),
        values={
            "0": "off (no SYN flood protection)",
            "1": "on when the SYN queue overflows",
            "2": "always",
        },
        minimum=0,
        maximum=2,
        netns_since=(4, 6, 0),
        netns_source='commit 12ed8244ed8b "ipv4: Namespaceify tcp syncookies sysctl knob" '
        "(4.6, inferred)",
    ),
    KeySpec(
        name="net.ipv4.tcp_max_syn_backlog",
        type=INT,
        summary="With SYN cookies off, where SYNs from unproven peers start being dropped.",
        explanation=(
            "Despite ip-sysctl.rst ('a per-listener limit'), this is not what bounds a "
            "listener's SYN queue: that is its listen() backlog, capped by net.core.somaxconn; "
            "past it SYNs get cookies or are dropped. tcp_max_syn_backlog matters only while "
            "tcp_syncookies = 0: once a listener's SYN queue holds more than three quarters of "
            "this value, SYNs from peers TCP has not yet seen alive are dropped."
        ),
        sources=(
            IP_SYSCTL_DOC,
            "net/ipv4/tcp_input.c:tcp_conn_request (6.18)",
            "include/net/inet_connection_sock.h:inet_csk_reqsk_queue_is_full (6.18)",
        ),
        defaults=((None, None),),
        default_note="max(128, TCP established hash size / 128) on 6.18 (tcp_set_hashinfo), so "
        "it depends on memory",
        minimum=0,
        netns_since=(4, 11, 0),
        netns_source='commit fee83d097b16 "ipv4: Namespaceify tcp_max_syn_backlog knob" '
        "(4.11, inferred)",
        misconceptions=(
            "Raising tcp_max_syn_backlog does not enlarge a listener's SYN queue: raise the "
            "program's listen() backlog and net.core.somaxconn. With SYN cookies on (the "
            "default) it has no effect.",
        ),
    ),
    KeySpec(
        name="net.core.somaxconn",
        type=INT,
        summary="Upper clamp on the listen() backlog, which bounds the SYN and accept queues.",
        explanation=(
            "listen(fd, backlog) is silently clamped to this value. The result bounds the "
            "listener's accept queue and, for TCP, its SYN queue of half-open connections (past "
            "it SYNs get cookies or are dropped), so a busy server whose queues overflow may be "
            "limited here rather than by its own configuration."
        ),
        sources=(
            IP_SYSCTL_DOC,
            "net/socket.c:__sys_listen_socket (6.18)",
            "include/net/inet_connection_sock.h:inet_csk_reqsk_queue_is_full (6.18)",
        ),
        defaults=((None, "128"), ((5, 4, 0), "4096")),
        minimum=0,
        maximum=2147483647,
        netns_source="include/net/netns/core.h (struct netns_core, already at 3.7)",
    ),
    KeySpec(
        name="net.ipv4.tcp_fastopen",
        type=INT,
        summary="TCP Fast Open bitmap: 0x1 client, 0x2 server, 0x4, 0x200, 0x400.",
        explanation=(
            "Enables data in the SYN (RFC 7413). 0x1 lets this host send it as a client "
            "(sendto() with MSG_FASTOPEN, or TCP_FASTOPEN_CONNECT), 0x2 lets servers accept it on "
            "listeners that set the TCP_FASTOPEN socket option, and 0x400 (with 0x2) on every "
            "listener, including programs that never asked for it (probe). 0x4 sends data "
            "without a cookie, 0x200 accepts data without one. Data in a SYN can be replayed, so "
            "only programs expecting it should get it."
        ),
        sources=(
            IP_SYSCTL_DOC,
            'commit 2100c8d2d9db "net-tcp: Fast Open base" (3.6 merge window, inferred)',
            'commit 0d41cca490c2 "tcp: enable sockets to use MSG_FASTOPEN by default" '
            "(default 1, 3.13, inferred)",
            PROBE,
        ),
        defaults=((None, "0"), ((3, 13, 0), "1")),
        minimum=0,
        added=(3, 6, 0),
        added_source='commit 2100c8d2d9db "net-tcp: Fast Open base"',
        netns_since=(4, 15, 0),
        netns_source='"ipv4: Namespaceify tcp_fastopen knob", in the series ending with commit '
        "3733be14a32b (4.15, inferred)",
    ),
    KeySpec(
        name="net.ipv4.tcp_rmem",
        type=INT_VECTOR,
        summary="Receive buffer sizes in bytes: 'min default max'.",
        explanation=(
            "The minimum, initial and maximum receive buffer of a TCP socket when autotuning is "
            "in charge (SO_RCVBUF turns autotuning off for that socket). Each must be at least "
            "1; the kernel does not check that they are in order. The defaults depend on the "
            f"machine, and {HOST_COPY}."
        ),
        sources=(
            IP_SYSCTL_DOC,
            "net/ipv4/tcp.c:tcp_init, net/ipv4/tcp_ipv4.c:tcp_sk_init (6.18)",
            'commit 572be9bf9d0d "tcp: increase tcp_rmem[2] to 32 MB" (6.16, inferred)',
            'commit 356d1833b638 "tcp: Namespace-ify sysctl_tcp_rmem and sysctl_tcp_wmem" '
            "(4.15, inferred)",
            PROBE,
        ),
        defaults=((None, None),),
        default_note="depends on the machine: min = page size, initial 131072 (87380 before "
        "4.20, commit a337531b942b, inferred), max between 131072 and 32 MB by memory (6 MB "
        "cap before 6.16); a new network namespace copies the host's current value",
        minimum=1,
        length=3,
        netns_since=(4, 15, 0),
        netns_source="commit 356d1833b638 (4.15, inferred)",
    ),
    KeySpec(
        name="net.ipv4.tcp_wmem",
        type=INT_VECTOR,
        summary="Send buffer sizes in bytes: 'min default max'.",
        explanation=(
            "The minimum, initial and maximum send buffer of a TCP socket under autotuning "
            "(SO_SNDBUF turns it off for that socket). Each must be at least 1; the kernel does "
            f"not check that they are in order. The defaults depend on the machine, and "
            f"{HOST_COPY}."
        ),
        sources=(
            IP_SYSCTL_DOC,
            "net/ipv4/tcp.c:tcp_init, net/ipv4/tcp_ipv4.c:tcp_sk_init (6.18)",
            'commit 356d1833b638 "tcp: Namespace-ify sysctl_tcp_rmem and sysctl_tcp_wmem" '
            "(4.15, inferred)",
            PROBE,
        ),
        defaults=((None, None),),
        default_note="depends on the machine: min = page size, initial 16384, max between "
        "64 KB and 4 MB by memory; a new network namespace copies the host's current value",
        minimum=1,
        length=3,
        netns_since=(4, 15, 0),
        netns_source="commit 356d1833b638 (4.15, inferred)",
    ),
    KeySpec(
        name="net.ipv4.tcp_congestion_control",
        type=STRING,
        summary="Default congestion control algorithm for new sockets.",
        explanation=(
            "The algorithm new TCP sockets use unless the program picks one. It must be loaded; "
            "inside a non-initial network namespace only the names in "
            "tcp_allowed_congestion_control may be set (others fail with EPERM, probe). A new "
            "network namespace starts with the host's current choice, not the build default "
            "(tcp_sk_init; probe), so inside a container the 'default' is what the host had."
        ),
        sources=(
            IP_SYSCTL_DOC,
            'commit 6670e1524477 "tcp: Namespace-ify sysctl_tcp_default_congestion_control" '
            "(4.15, inferred)",
            'commit 8d432592f30f "net: Only allow init netns to set default tcp cong to a '
            'restricted algo" (5.13, inferred)',
            "net/ipv4/tcp_ipv4.c:tcp_sk_init (6.18)",
            PROBE,
        ),
        defaults=((None, None),),
        default_note="chosen when the kernel is built (CONFIG_DEFAULT_TCP_CONG); a new network "
        "namespace copies the host's current choice",
        netns_since=(4, 15, 0),
        netns_source="commit 6670e1524477 (4.15, inferred)",
    ),
    KeySpec(
        name="net.ipv4.tcp_slow_start_after_idle",
        type=BOOL,
        summary="Shrink the congestion window after an idle period.",
        explanation=(
            "When 1, a connection that has sent nothing for longer than its retransmission "
            "timeout has its congestion window halved once per timeout of idle time, down to "
            "(not below) the initial window (RFC 2861). Congestion controls that set the window "
            "themselves (a cong_control hook, as BBR has) are not affected. Long-lived "
            "connections with bursty traffic (keep-alive HTTP, RPC) often do better with 0."
        ),
        sources=(
            IP_SYSCTL_DOC,
            "net/ipv4/tcp_output.c:tcp_cwnd_restart (6.18)",
            "include/net/tcp.h:tcp_slow_start_after_idle_check (6.18)",
        ),
        defaults=((None, "1"),),
        values={
            "0": "keep the congestion window across idle periods",
            "1": "halve it per idle timeout, down to the initial window",
        },
        netns_since=(4, 15, 0),
        netns_source='commit b510f0d23a47 "tcp: Namespace-ify sysctl_tcp_slow_start_after_idle" '
        "(4.15, inferred)",
    ),
    KeySpec(
        name="net.ipv4.tcp_mtu_probing",
        type=ENUM,
        summary="Packetization-layer path MTU discovery.",
        explanation=(
            "0 off, 1 on once an ICMP black hole is detected, 2 always (starting from "
            "tcp_base_mss). Helps connections that stall because ICMP 'fragmentation needed' "
            "messages are filtered on the path."
        ),
        sources=(IP_SYSCTL_DOC,),
        defaults=((None, "0"),),
        values={"0": "off", "1": "on after an ICMP black hole is detected", "2": "always on"},
        minimum=0,
        maximum=2,
        netns_since=(4, 0, 0),
        netns_source='commit b0f9ca53cbb1 "ipv4: Namespecify TCP PMTU mechanism" (4.0, inferred)',
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
        sources=(IP_SYSCTL_DOC, "net/ipv4/tcp_minisocks.c:tcp_timewait_state_process (6.18)"),
        defaults=((None, "0"),),
        values={"0": "an RST kills a TIME_WAIT socket", "1": "RSTs in TIME_WAIT are ignored"},
        misconceptions=(
            "The documentation wording suggests 0 protects TIME_WAIT; it is 1 that does.",
        ),
        netns_since=(4, 15, 0),
        netns_source='commit 625357aa175c "tcp: Namespace-ify sysctl_tcp_rfc1337" (4.15, inferred)',
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
