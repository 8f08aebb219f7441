"""Pure: what `sockets` and `check [PROFILE]` found, as Prometheus metrics in the text exposition
format (version 0.0.4, what node_exporter's textfile collector reads). No I/O: the commands hand in
what they read, and write the text where they are told.

Every series carries `netns`, the network namespace it describes (its inode number, as
`readlink /proc/self/ns/net` shows it, or "unknown"), and `netns_owner`, what owns it
(tcptune.netns.Owner.label: "host", "podman:16bba41a0bf3", "pod:<UID>", "netns:NAME",
"process:COMM", "unknown"): the namespace tcptune runs in, the one --netns or --pid entered, or
each namespace of `sockets --all-netns`. Each metric has one HELP text and one set of label names
in every file tcptune writes, so several files in one textfile directory (sockets, and check@ of
several profiles) merge into consistent families.

Label cardinality is bounded: per file at most 11 states, top N CLOSE_WAIT owners plus one
"other", top N growing owners plus one "other", top N destinations (N = --top, at most MAX_TOP),
3 severities, and two series per key of a profile (in sync; persisted per loader: three).
"""

import math
import re
from dataclasses import dataclass, field

from tcptune import census
from tcptune.model import ERROR, INFO, WARNING, Finding, parse_int
from tcptune.rates import OTHER, Growth, OwnerKey, owner_key

MAX_TOP = 100  # --top with --format prometheus: the bound on per-owner and per-destination series
SEVERITIES = (INFO, WARNING, ERROR)
GAUGE = "gauge"
COUNTER = "counter"

# name -> (type, label names, help). Every series of a metric has exactly these labels.
METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "tcptune_sockets": (
        GAUGE,
        ("netns", "netns_owner", "state"),
        "TCP sockets (IPv4 and IPv6) per state, as ss counts them.",
    ),
    "tcptune_time_wait_buckets_used": (
        GAUGE,
        ("netns", "netns_owner"),
        "TIME_WAIT buckets in use (sockstat tw: TIME_WAIT plus orphaned FIN_WAIT2), "
        "the count net.ipv4.tcp_max_tw_buckets caps.",
    ),
    "tcptune_time_wait_buckets_max": (
        GAUGE,
        ("netns", "netns_owner"),
        "net.ipv4.tcp_max_tw_buckets: above it, closing sockets skip TIME_WAIT.",
    ),
    "tcptune_tcpext_tw_total": (
        COUNTER,
        ("netns", "netns_owner"),
        "TcpExt TW (/proc/net/netstat): TIME_WAIT sockets with a timer above 4 s.",
    ),
    "tcptune_tcpext_tw_killed_total": (
        COUNTER,
        ("netns", "netns_owner"),
        "TcpExt TWKilled (/proc/net/netstat): TIME_WAIT sockets with a timer of 4 s or less.",
    ),
    "tcptune_tcpext_tw_recycled_total": (
        COUNTER,
        ("netns", "netns_owner"),
        "TcpExt TWRecycled (/proc/net/netstat): TIME_WAIT 4-tuples reused by connect() "
        "(net.ipv4.tcp_tw_reuse).",
    ),
    "tcptune_tcpext_time_wait_overflow_total": (
        COUNTER,
        ("netns", "netns_owner"),
        "TcpExt TCPTimeWaitOverflow (/proc/net/netstat): sockets that skipped TIME_WAIT "
        "because tcp_max_tw_buckets was reached.",
    ),
    "tcptune_close_wait_sockets": (
        GAUGE,
        ("command", "netns", "netns_owner", "pid", "uid"),
        'CLOSE_WAIT sockets per owning process (the top N; pid="other": the rest; '
        'pid="unknown": no visible process holds them).',
    ),
    "tcptune_close_wait_growth_per_minute": (
        GAUGE,
        ("command", "netns", "netns_owner", "pid", "uid"),
        "CLOSE_WAIT sockets gained per minute per owner since the previous run "
        '(the N fastest growing; pid="other": the rest).',
    ),
    "tcptune_close_wait_growth_window_seconds": (
        GAUGE,
        ("netns", "netns_owner"),
        "Seconds between the previous run and this one: the window of "
        "tcptune_close_wait_growth_per_minute.",
    ),
    "tcptune_port_pressure_ratio": (
        GAUGE,
        ("local", "netns", "netns_owner", "remote"),
        "Share of the usable ephemeral ports held towards one destination (the top N); "
        "at 1 connect() to it fails with EADDRNOTAVAIL.",
    ),
    "tcptune_setting_in_sync": (
        GAUGE,
        ("key", "netns", "netns_owner", "profile"),
        "1 when the live value of a profile key equals the profile (and no sysctl.d file "
        "overrides it at boot), 0 on drift.",
    ),
    "tcptune_setting_persisted": (
        GAUGE,
        ("key", "loader", "netns", "netns_owner", "profile"),
        "1 when the profile value of a key survives a reboot under the loader "
        "(procps sysctl --system, systemd-sysctl), 0 when no file sets it or another wins.",
    ),
    "tcptune_findings": (
        GAUGE,
        ("command", "netns", "netns_owner", "profile", "severity"),
        "Findings of the last run, per severity.",
    ),
    "tcptune_last_run_timestamp_seconds": (
        GAUGE,
        ("command", "netns", "netns_owner", "profile"),
        "When tcptune wrote these metrics, in seconds since the epoch.",
    ),
}

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def escape_label(value: str) -> str:
    """A label value inside double quotes: backslash, double quote and newline escaped, as the
    text format requires; every other character stands as it is (UTF-8)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


@dataclass
class Exposition:
    """Samples gathered per metric; `text()` writes the families in the order of METRICS."""

    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    def add(self, name: str, value: float, **labels: str) -> None:
        _, names, _ = METRICS[name]
        if set(labels) != set(names):
            raise AssertionError(f"{name}: labels {sorted(labels)}, declared {names}")
        self.samples.setdefault(name, []).append((labels, value))

    def text(self) -> str:
        lines = []
        for name, (kind, names, text) in METRICS.items():
            samples = self.samples.get(name)
            if not samples:
                continue
            assert _NAME.fullmatch(name) and all(_LABEL.fullmatch(n) for n in names), name
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                pairs = ",".join(f'{n}="{escape_label(labels[n])}"' for n in names)
                lines.append(f"{name}{{{pairs}}} {format_value(value)}")
        return "\n".join(lines) + "\n" if lines else ""


def _findings(
    out: Exposition,
    findings: list[Finding],
    command: str,
    profile: str,
    ns: dict[str, str],
    now: float,
) -> None:
    for severity in SEVERITIES:
        count = sum(1 for f in findings if f.severity == severity)
        out.add(
            "tcptune_findings",
            count,
            command=command,
            profile=profile,
            severity=severity,
            **ns,
        )
    out.add("tcptune_last_run_timestamp_seconds", now, command=command, profile=profile, **ns)


def _owner_labels(key: OwnerKey, ns: dict[str, str]) -> dict[str, str]:
    pid, command, uid = key
    return {"pid": pid, "command": command, "uid": uid, **ns}


def namespace_labels(netns: str, netns_owner: str) -> dict[str, str]:
    return {"netns": netns, "netns_owner": netns_owner}


def sockets(
    facts: census.CensusInput,
    findings: list[Finding],
    *,
    top: int,
    netns: str,
    netns_owner: str,
    now: float,
    growth: Growth | None = None,
) -> str:
    """The census of `tcptune sockets` as metrics."""
    out = Exposition()
    add_sockets(
        out,
        facts,
        findings,
        top=top,
        ns=namespace_labels(netns, netns_owner),
        now=now,
        growth=growth,
    )
    return out.text()


def add_sockets(
    out: Exposition,
    facts: census.CensusInput,
    findings: list[Finding],
    *,
    top: int,
    ns: dict[str, str],
    now: float,
    growth: Growth | None = None,
) -> None:
    """Add one namespace's census to `out` (`sockets --all-netns` adds every namespace's to one
    exposition: each family once, a series per namespace)."""
    c = facts.census
    for state, count in c.states.items():
        out.add("tcptune_sockets", count, state=state, **ns)
    out.add("tcptune_time_wait_buckets_used", census.tw_buckets_used(facts), **ns)
    cap = parse_int(facts.sysctl.get("tcp_max_tw_buckets"))
    if cap is not None:
        out.add("tcptune_time_wait_buckets_max", cap, **ns)
    counters = facts.counters or {}
    for name, counter in (
        ("tcptune_tcpext_tw_total", "TW"),
        ("tcptune_tcpext_tw_killed_total", "TWKilled"),
        ("tcptune_tcpext_tw_recycled_total", "TWRecycled"),
        ("tcptune_tcpext_time_wait_overflow_total", "TCPTimeWaitOverflow"),
    ):
        if counters.get(counter) is not None:
            out.add(name, counters[counter], **ns)
    # CLOSE_WAIT per owner: the top N, and the rest summed. An unknown owner per uid counts as
    # one owner; a socket shared by several processes counts for each of them.
    per_owner: dict[OwnerKey, int] = {}
    for owner in facts.owners:
        key = owner_key(owner)
        per_owner[key] = per_owner.get(key, 0) + owner.count
    ranked = sorted(per_owner.items(), key=lambda item: (-item[1], item[0]))
    for key, count in ranked[:top]:
        out.add("tcptune_close_wait_sockets", count, **_owner_labels(key, ns))
    out.add(
        "tcptune_close_wait_sockets",
        sum(count for _, count in ranked[top:]),
        **_owner_labels(OTHER, ns),
    )
    if growth is not None:
        fastest = growth.ranked()
        for key, rate in fastest[:top]:
            out.add("tcptune_close_wait_growth_per_minute", rate, **_owner_labels(key, ns))
        out.add(
            "tcptune_close_wait_growth_per_minute",
            sum(rate for _, rate in fastest[top:]),
            **_owner_labels(OTHER, ns),
        )
        out.add("tcptune_close_wait_growth_window_seconds", growth.window, **ns)
    if facts.usable:
        for group in c.groups[:top]:
            remote = (
                f"[{group.remote_address}]:{group.remote_port}"
                if group.family == "ipv6"
                else f"{group.remote_address}:{group.remote_port}"
            )
            out.add(
                "tcptune_port_pressure_ratio",
                group.sockets / facts.usable,
                local=group.local_address,
                remote=remote,
                **ns,
            )
    _findings(out, findings, "sockets", "", ns, now)


def check(findings: list[Finding], *, netns: str, netns_owner: str, now: float) -> str:
    """`tcptune check` without a profile: its findings."""
    out = Exposition()
    _findings(out, findings, "check", "", namespace_labels(netns, netns_owner), now)
    return out.text()


@dataclass(frozen=True, kw_only=True, slots=True)
class Setting:
    """One key of a profile as `check PROFILE` compared it."""

    key: str
    target: str
    in_sync: bool | None  # None: skipped (missing on this kernel) or unreadable
    # per loader, whether the target survives a reboot (None: cannot be told)
    persisted: tuple[tuple[str, bool | None], ...] = ()


def check_profile(
    profile: str,
    settings: list[Setting],
    findings: list[Finding],
    *,
    netns: str,
    netns_owner: str,
    now: float,
) -> str:
    """`tcptune check PROFILE`: per key in sync or not, persisted per loader or not; the
    findings. A key skipped or unreadable here has no in-sync series (the run exits 3 for an
    unreadable one, which the timer's unit shows as failed)."""
    out = Exposition()
    ns = namespace_labels(netns, netns_owner)
    for s in settings:
        if s.in_sync is None:
            continue
        out.add("tcptune_setting_in_sync", int(s.in_sync), key=s.key, profile=profile, **ns)
    for s in settings:
        if s.in_sync is None:
            continue
        for loader, survives in s.persisted:
            if survives is None:
                continue  # a file tcptune cannot read decides it: no value to publish
            out.add(
                "tcptune_setting_persisted",
                int(survives),
                key=s.key,
                loader=loader,
                profile=profile,
                **ns,
            )
    _findings(out, findings, "check", profile, ns, now)
    return out.text()
