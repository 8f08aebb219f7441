"""The checks behind `tcptune check`: pure rules over what was read from the machine.

inspect() takes readings (from tcptune.system) and returns a CheckReport; it does no I/O, so every
rule is tested on hand-made inputs.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from tcptune import keys, sysctld
from tcptune.kernel import Version, at_least, format_version, parse_release
from tcptune.model import (
    ERROR,
    INFO,
    LOADERS,
    MISSING,
    OK,
    PRESENT,
    PROCPS,
    SYSTEMD,
    UNREADABLE,
    WARNING,
    ConfFile,
    Finding,
    Reading,
    parse_int,
    reserved_ports,
    worst,
)

TIME_WAIT_SECONDS = 60  # TCP_TIMEWAIT_LEN, include/net/tcp.h
TW_UNIQUE = keys.TW_UNIQUE  # where connect() decides to take a TIME_WAIT 4-tuple over
DEFAULT_PORT_RANGE_SIZE = 60999 - 32768 + 1
NARROW_PORT_RANGE = 10000  # below this many ephemeral ports a busy client runs dry quickly
TW_BUCKETS_NEAR_CAP = 0.8

SOCKSTAT_SOURCE = "/proc/net/sockstat (TCP tw)"
NETSTAT_SOURCE = "/proc/net/netstat (TcpExt)"


@dataclass(frozen=True, kw_only=True, slots=True)
class Setting:
    """One watched key: its live value, its default here, and what the rules found."""

    key: str
    value: str | None
    default: str | None
    default_note: str
    status: str  # OK, WARNING or ERROR (the worst finding); MISSING or UNREADABLE
    error: str
    findings: list[Finding]


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckReport:
    """Every watched key and every finding, as `tcptune check` shows them."""

    release: str | None
    version: Version | None
    settings: list[Setting]
    findings: list[Finding]
    tcp_counts: dict[str, int] | None = None
    conf_files: tuple[ConfFile, ...] = ()  # the sysctl.d files the report was made with
    boot: sysctld.BootModel | None = None  # those files (and the kernel command line), parsed

    def boot_model(self) -> sysctld.BootModel:
        return self.boot if self.boot is not None else sysctld.BootModel(self.conf_files)

    def worst(self) -> str | None:
        return worst(self.findings)

    def all_unreadable(self) -> bool:
        return bool(self.settings) and all(s.status == UNREADABLE for s in self.settings)


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleInput:
    """What the rules look at: the live values and the kernel's counters and files."""

    version: Version | None
    values: Mapping[str, str]  # key -> value, present keys only
    sockstat: Mapping[str, Mapping[str, int]] | None
    netstat: Mapping[str, Mapping[str, int]] | None
    conf_files: Sequence[ConfFile] = ()  # the sysctl.d files, for what boot will set
    boot: sysctld.BootModel | None = None  # the same files as each loader reads them

    def get(self, short: str) -> str | None:
        return self.values.get(_full(short))

    def number(self, short: str) -> int | None:
        return parse_int(self.get(short))


def _full(short: str) -> str:
    return short if "." in short else f"net.ipv4.{short}"


def _src(spec_short: str, extra: str = "") -> str:
    """Cite the key's documentation section, plus a commit or probe when given."""
    spec = keys.KEYS[_full(spec_short)]
    base = f"{spec.sources[0]} ({spec.short_name})"
    return f"{base}; {extra}" if extra else base


Rule = Callable[[RuleInput], list[Finding]]


# --- rules -------------------------------------------------------------------------------------


# What tcp_tw_recycle=1 breaks. It depends on how the clients stamp their SYNs, not on this host's
# kernel: per connection on Linux 4.10 (95a22caee396) and with 165573e41f2f (2026), per address
# pair from 4.11 (28ee1b746f49); clients behind one NAT address never share a clock.
RECYCLE_ON = (
    "tcp_tw_recycle=1 drops SYNs from clients behind NAT (their timestamps are not ordered per "
    "address), so NATed users fail to connect at random; clients whose kernel randomizes "
    "timestamps per connection (Linux 4.10, and kernels with commit 165573e41f2f) fail even "
    "without NAT. Set it to 0 and remove it from sysctl.d."
)
RECYCLE_CLIENT_CLOCKS = (
    "timestamp offsets: commits 95a22caee396 (4.10), 28ee1b746f49 (4.11), 165573e41f2f"
)


def rule_tw_recycle(ctx: RuleInput) -> list[Finding]:
    """tcp_tw_recycle=1 breaks clients behind NAT, and the advice to set it lives on in sysctl.d
    files: judge the live value; where the kernel still has the key, name the line that sets 1
    at boot; where it has dropped it, name each line a loader still reads, with what each loader
    does with it. (A missing key is _missing_finding's.)"""
    spec = keys.KEYS["net.ipv4.tcp_tw_recycle"]
    assert spec.removed is not None
    key, removed = spec.name, format_version(spec.removed)
    source = _src(key, spec.removed_source)
    findings = []
    value = ctx.get(key)
    if value == "1":
        findings.append(
            Finding(
                severity=ERROR,
                key=key,
                message=RECYCLE_ON,
                source=f"{source}; {RECYCLE_CLIENT_CLOCKS}",
            )
        )
    elif value == "0":
        findings.append(
            Finding(
                severity=INFO,
                key=key,
                message=f"0 is the only safe value; the key is removed in {removed}, so drop it "
                "from sysctl.d before upgrading.",
                source=source,
            )
        )
    if ctx.boot is not None:
        if at_least(ctx.version, spec.removed[:2]):
            findings += _leftover_tw_recycle(ctx.boot, spec, removed)
        else:
            findings += _tw_recycle_at_boot(ctx.boot, source)
    return findings


def _leftover_tw_recycle(
    boot: sysctld.BootModel, spec: keys.KeySpec, removed: str
) -> list[Finding]:
    """Each line that still names tcp_tw_recycle in a file a loader reads (a masked file is read
    by none): what each loader does with it, as probed (docs/kernel-facts.md)."""
    key = spec.name
    lines: dict[str, dict[str, sysctld.Line]] = {}
    for loader in LOADERS:
        for where, line in boot.lines_naming(key, loader):
            if line.value is not None:
                lines.setdefault(where, {})[loader] = line
    findings = []
    for where, by_loader in lines.items():
        file = where.rsplit(":", 1)[0]
        value = next(iter(by_loader.values())).value
        said = []
        if PROCPS in by_loader:
            said.append(
                "procps `sysctl --system` skips it without a word (its exit status stays 0)"
            )
        else:
            # both read the same files: procps just splits lines at LF only, not at CR or NUL
            said.append("procps reads no such line there (a CR or NUL does not end a line for it)")
        systemd = by_loader.get(SYSTEMD)
        if systemd is None:
            said.append("systemd-sysctl does not read it")
        elif systemd.ignore:
            said.append("systemd-sysctl skips it silently (the '-' prefix) and exits 0")
        else:
            said.append(
                f"systemd-sysctl logs \"Couldn't write '{systemd.value}' to '{systemd.key}', "
                'ignoring: No such file or directory" and exits 0'
            )
        message = (
            f"{where} sets tcp_tw_recycle = {value}, which this kernel does not have (removed in "
            f'{removed}). At boot {"; ".join(said)}. `sysctl -p {file}` fails on it ("cannot stat '
            '/proc/sys/net/ipv4/tcp_tw_recycle", exit 1). Delete the line.'
        )
        findings.append(
            Finding(
                severity=WARNING,
                key=key,
                message=message,
                source=_src(key, f"{spec.removed_source}; procps-ng 4.0.2 and systemd 252 probed"),
            )
        )
    return findings


def _tw_recycle_at_boot(boot: sysctld.BootModel, source: str) -> list[Finding]:
    """On a kernel that has tcp_tw_recycle: the line that sets 1 at boot, per loader."""
    by_source: dict[str, list[str]] = {}
    for answer in boot.answers("net.ipv4.tcp_tw_recycle"):
        if answer.value == "1" and answer.source:
            by_source.setdefault(answer.source, []).append(answer.loader)
    return [
        Finding(
            severity=ERROR,
            key="net.ipv4.tcp_tw_recycle",
            message=f"{where} sets tcp_tw_recycle = 1 at every boot (under {', '.join(loaders)}), "
            "which drops SYNs from clients behind NAT. Delete the line (or set 0).",
            source=source,
        )
        for where, loaders in by_source.items()
    ]


def rule_tw_reuse(ctx: RuleInput) -> list[Finding]:
    key = "net.ipv4.tcp_tw_reuse"
    value = ctx.get("tcp_tw_reuse")
    if value is None:
        return []
    spec = keys.KEYS[key]
    findings = []
    meaning = spec.values.get(value)
    if meaning:
        message = f"{value} = {meaning}."
        if value != "0":
            message += (
                " It only helps this host's outgoing connect(); a server's TIME_WAIT is untouched."
            )
        findings.append(
            Finding(severity=INFO, key=key, message=message, source=_src("tcp_tw_reuse"))
        )
    timestamps = ctx.get("tcp_timestamps")
    if value in ("1", "2") and timestamps == "0":
        findings.append(
            Finding(
                severity=WARNING,
                key=key,
                message=f"tcp_tw_reuse={value} has no effect on connections made while "
                "net.ipv4.tcp_timestamps=0: a TIME_WAIT socket is reused only when timestamps "
                "were negotiated on its connection. Turn timestamps back on (1).",
                source=_src("tcp_tw_reuse"),
            )
        )
    return findings


def rule_fin_timeout(ctx: RuleInput) -> list[Finding]:
    key = "net.ipv4.tcp_fin_timeout"
    value = ctx.number("tcp_fin_timeout")
    if value is None:
        return []
    if value < 60:
        message = (
            f"tcp_fin_timeout={value} only shortens orphaned FIN_WAIT2 sockets. It does not "
            f"shorten TIME_WAIT, which is fixed at {TIME_WAIT_SECONDS} s (TCP_TIMEWAIT_LEN); if it "
            "was lowered to fight TIME_WAIT, it has no effect on it."
        )
    else:
        message = (
            "governs orphaned FIN_WAIT2 sockets only; it does not shorten TIME_WAIT, which is "
            f"fixed at {TIME_WAIT_SECONDS} s (TCP_TIMEWAIT_LEN)."
        )
    return [
        Finding(
            severity=INFO,
            key=key,
            message=message,
            source=_src("tcp_fin_timeout", "include/net/tcp.h; probe"),
        )
    ]


def rule_port_range(ctx: RuleInput) -> list[Finding]:
    key = "net.ipv4.ip_local_port_range"
    value = ctx.get("ip_local_port_range")
    if value is None:
        return []
    parts = [parse_int(p) for p in value.split()]
    if len(parts) != 2 or None in parts:
        return [
            Finding(
                severity=WARNING,
                key=key,
                message=f"cannot parse {value!r} as 'low high'",
                source=_src(key),
            )
        ]
    low, high = parts  # type: ignore[misc]
    assert low is not None and high is not None
    findings = []
    reserved = reserved_ports(ctx.get("ip_local_reserved_ports"), low, high)
    usable = max(0, high - low + 1 - reserved)
    reserved_note = f" ({reserved} of them reserved)" if reserved else ""
    per_second = usable // TIME_WAIT_SECONDS
    if usable < NARROW_PORT_RANGE:
        reuse = ""
        if ctx.get("tcp_tw_reuse") == "1" and ctx.get("tcp_timestamps") != "0":
            reuse = (
                ", unless connect() takes TIME_WAIT ports over (tcp_tw_reuse=1 does, after "
                "tcp_tw_reuse_delay, for peers that send timestamps)"
            )
        findings.append(
            Finding(
                severity=WARNING,
                key=key,
                message=f"only {usable} usable ephemeral ports{reserved_note}: a client making "
                "short connections to one destination (address and port) can open at most about "
                f"{per_second} per second before TIME_WAIT holds them all and connect() fails "
                f"with EADDRNOTAVAIL{reuse}. Widen the range, e.g. '10240 65535'.",
                source=_src(key, f"TIME_WAIT is 60 s: include/net/tcp.h; {TW_UNIQUE}"),
            )
        )
    elif usable < DEFAULT_PORT_RANGE_SIZE:
        findings.append(
            Finding(
                severity=INFO,
                key=key,
                message=f"{usable} usable ephemeral ports{reserved_note}, fewer than the default "
                f"{DEFAULT_PORT_RANGE_SIZE}.",
                source=_src(key),
            )
        )
    if low < 1024:
        findings.append(
            Finding(
                severity=WARNING,
                key=key,
                message=f"the range starts at {low}, below 1024: outgoing connections can take "
                "ports that privileged services expect to bind.",
                source=_src(key),
            )
        )
    # The parity preference and its warning came with 4.2 (07f4c90062f8, ed2dfd900992).
    if low % 2 == high % 2 and low != high and at_least(ctx.version, (4, 2)) is not False:
        findings.append(
            Finding(
                severity=INFO,
                key=key,
                message=f"low ({low}) and high ({high}) have the same parity; the kernel logs a "
                "warning, since connect() and bind() prefer ports of different parity. Make them "
                "differ.",
                source=_src(key, "commits 07f4c90062f8, ed2dfd900992 (4.2)"),
            )
        )
    return findings


def rule_tw_buckets(ctx: RuleInput) -> list[Finding]:
    cap = ctx.number("tcp_max_tw_buckets")
    if cap is None:
        return []
    tcp = (ctx.sockstat or {}).get("TCP")
    overflow = ((ctx.netstat or {}).get("TcpExt") or {}).get("TCPTimeWaitOverflow")
    return tw_cap_findings(cap, tcp.get("tw") if tcp else None, overflow, census=False)


# What sockstat's tw and tcp_max_tw_buckets count: TIME_WAIT minisockets, which an orphaned
# FIN_WAIT2 socket also becomes once it has at most 60 s left (__tcp_close, tcp_time_wait).
TW_COUNTED = "TIME_WAIT sockets (with FIN_WAIT2 orphans in their last 60 s)"

# What happens past tcp_max_tw_buckets, as `tcptune sockets` explains it.
PAST_THE_CAP = (
    "past it, a closing socket skips TIME_WAIT and is destroyed at once (TCPTimeWaitOverflow "
    "rises, nothing is logged to dmesg): a delayed segment of the old connection can then land in "
    "a new one with the same addresses and ports"
)


def tw_cap_findings(
    cap: int | None, used: int | None, overflow: int | None, *, census: bool
) -> list[Finding]:
    """The sockets that tcp_max_tw_buckets caps (TW_COUNTED; `used`: sockstat's tw, or the
    census's estimate; None when unknown) against the cap, and TCPTimeWaitOverflow.
    `check` says it briefly and names `tcptune sockets`; the census (census=True) explains what
    happens at the cap and points at its own tables."""
    key = "net.ipv4.tcp_max_tw_buckets"
    if census:
        at_cap = (
            f"{PAST_THE_CAP}. Find who closes first (the port pressure table), reuse connections, "
            "or raise the cap (each TIME_WAIT socket costs a few hundred bytes)."
        )
        near_cap = f"; {PAST_THE_CAP}."
        skipped, logged, overflow_source = "already skipped", "", NETSTAT_SOURCE
    else:
        at_cap = (
            "closing sockets now skip TIME_WAIT and are destroyed at once, losing its protection "
            "against stale segments. Find who creates them (tcptune sockets) or raise the cap."
        )
        near_cap = ": past it, closing sockets skip TIME_WAIT."
        skipped, logged = "have skipped", " Nothing is logged to dmesg for this."
        overflow_source = f"{NETSTAT_SOURCE}; probe"
    sockets = TW_COUNTED
    source = f"{_src(key)}; {SOCKSTAT_SOURCE}"
    findings = []
    if used is None:
        findings.append(
            Finding(
                severity=INFO,
                key=key,
                message="could not read the live TIME_WAIT count from /proc/net/sockstat",
                source=SOCKSTAT_SOURCE,
            )
        )
    elif cap is not None and (cap == 0 or used >= cap):
        findings.append(
            Finding(
                severity=ERROR,
                key=key,
                message=f"{used} {sockets} have reached the cap of {cap}: {at_cap}",
                source=source,
            )
        )
    elif cap is not None and used >= cap * TW_BUCKETS_NEAR_CAP:
        findings.append(
            Finding(
                severity=WARNING,
                key=key,
                message=f"{used} {sockets}, {used * 100 // cap}% of the cap of {cap}{near_cap}",
                source=source,
            )
        )
    elif cap is not None and not census:
        findings.append(
            Finding(
                severity=INFO,
                key=key,
                message=f"{used} {sockets} now, of a cap of {cap}.",
                source=SOCKSTAT_SOURCE,
            )
        )
    if overflow:
        findings.append(
            Finding(
                severity=WARNING,
                key=key,
                message=f"TCPTimeWaitOverflow = {overflow}: that many sockets {skipped} TIME_WAIT "
                "because the cap was reached, or because memory for the TIME_WAIT socket ran out "
                f"(since boot, or since this network namespace was created).{logged}",
                source=overflow_source,
            )
        )
    return findings


# Protections that are on by default and that 0 turns off, with what is lost.
PROTECTIONS = {
    "tcp_timestamps": "timestamps are off: no PAWS protection against old duplicate segments, "
    "worse RTT estimates, and connect() cannot reuse TIME_WAIT sockets (tcp_tw_reuse does "
    "nothing). Set it to 1.",
    "tcp_syncookies": "SYN cookies are off: a SYN flood fills the SYN queue and real clients are "
    "refused. Set it to 1.",
}


def rule_protections(ctx: RuleInput) -> list[Finding]:
    return [
        Finding(severity=WARNING, key=_full(short), message=message, source=_src(short))
        for short, message in PROTECTIONS.items()
        if ctx.get(short) == "0"
    ]


def rule_buffer_order(ctx: RuleInput) -> list[Finding]:
    findings = []
    for short in ("tcp_rmem", "tcp_wmem"):
        value = ctx.get(short)
        if value is None:
            continue
        numbers = [parse_int(p) for p in value.split()]
        if len(numbers) == 3 and None not in numbers and not numbers[0] <= numbers[1] <= numbers[2]:  # type: ignore[operator]
            findings.append(
                Finding(
                    severity=WARNING,
                    key=_full(short),
                    message=f"{value!r} is not in 'min default max' order; the kernel does not "
                    "check it, and autotuning then behaves unexpectedly.",
                    source=_src(short),
                )
            )
    return findings


def rule_rfc1337(ctx: RuleInput) -> list[Finding]:
    if ctx.get("tcp_rfc1337") != "0":
        return []
    return [
        Finding(
            severity=INFO,
            key="net.ipv4.tcp_rfc1337",
            message="0: an in-window RST kills a TIME_WAIT socket at once (TIME-WAIT "
            "assassination); 1 ignores such RSTs. The kernel documentation's wording reads the "
            "other way round.",
            source=_src("tcp_rfc1337", "net/ipv4/tcp_minisocks.c"),
        )
    ]


RULES: tuple[Rule, ...] = (
    rule_tw_recycle,
    rule_tw_reuse,
    rule_fin_timeout,
    rule_port_range,
    rule_tw_buckets,
    rule_protections,
    rule_buffer_order,
    rule_rfc1337,
)


def _range_finding(spec: keys.KeySpec, value: str) -> Finding | None:
    """Generic check of a present value against the knowledge base's type and range."""
    if spec.type in (keys.BOOL, keys.ENUM) and spec.values and value not in spec.values:
        allowed = ", ".join(spec.values)
        return Finding(
            severity=WARNING,
            key=spec.name,
            message=f"{value!r} is not a documented value ({allowed})",
            source=spec.sources[0],
        )
    if spec.type in (keys.INT, keys.ENUM, keys.INT_VECTOR):
        numbers = [parse_int(p) for p in value.split()]
        if None in numbers:
            return Finding(
                severity=WARNING,
                key=spec.name,
                message=f"{value!r} is not numeric",
                source=spec.sources[0],
            )
        for number in numbers:
            assert number is not None
            if (spec.minimum is not None and number < spec.minimum) or (
                spec.maximum is not None and number > spec.maximum
            ):
                low = spec.minimum if spec.minimum is not None else "-inf"
                high = spec.maximum if spec.maximum is not None else "inf"
                bounds = f"{low}..{high}"
                return Finding(
                    severity=WARNING,
                    key=spec.name,
                    message=f"{number} is outside the documented range {bounds}",
                    source=spec.sources[0],
                )
    return None


def _missing_finding(
    spec: keys.KeySpec, version: Version | None, reading: Reading
) -> Finding | None:
    if spec.removed is not None:
        if not at_least(version, spec.removed[:2]):
            return None  # absent before its removal: nothing to say that tcptune knows
        return Finding(
            severity=INFO,
            key=spec.name,
            message=f"removed in {format_version(spec.removed)}: nothing to tune. A sysctl.d line "
            "that still sets it only makes systemd-sysctl log a warning at boot; each one is "
            "named with a warning of its own.",
            source=_src(spec.name, spec.removed_source),
        )
    if spec.exists_on(version) is False:  # added in a later kernel
        assert spec.added is not None
        return Finding(
            severity=INFO,
            key=spec.name,
            message=f"not on this kernel: added in {format_version(spec.added)}; this kernel is "
            "older.",
            source=spec.added_source or spec.sources[0],
        )
    if spec.namespaced_on(version) is False:
        if spec.per_netns == "no":
            why = "this key is global"
        else:
            assert spec.netns_since is not None
            why = (
                f"this key is per network namespace only since {format_version(spec.netns_since)}"
                "; on this kernel it is global"
            )
        return Finding(
            severity=INFO,
            key=spec.name,
            message=f"absent here: {why} and is not shown inside a network namespace "
            "(e.g. a container). Read it on the host.",
            source=spec.netns_source or spec.sources[0],
        )
    return Finding(
        severity=INFO,
        key=spec.name,
        message=f"not present: {reading.error}.",
        source=spec.sources[0],
    )


def inspect(
    release: str | None,
    readings: Mapping[str, Reading],
    sockstat: Mapping[str, Mapping[str, int]] | None,
    netstat: Mapping[str, Mapping[str, int]] | None,
    conf_files: Sequence[ConfFile] = (),
    cmdline: str | None = None,
    boot_keys: Iterable[str] = (),
) -> CheckReport:
    """Evaluate every watched key; `readings` maps each knowledge-base key to its Reading,
    `conf_files` are the sysctl.d files (tcptune.system.read_conf_files) and `cmdline` the
    kernel command line, for what boot sets, of the watched keys and `boot_keys`."""
    version = parse_release(release)
    values = {k: r.value for k, r in readings.items() if r.state == PRESENT and r.value is not None}
    ctx = RuleInput(
        version=version,
        values=values,
        sockstat=sockstat,
        netstat=netstat,
        conf_files=tuple(conf_files),
        boot=sysctld.BootModel(conf_files, cmdline, keys={*keys.KEYS, *boot_keys}),
    )

    per_key: dict[str, list[Finding]] = {name: [] for name in keys.KEYS}
    general: list[Finding] = []
    if version is None:
        general.append(
            Finding(
                severity=WARNING,
                key="kernel.osrelease",
                message=f"kernel release unknown ({release!r}): version-specific rules are skipped",
                source="/proc/sys/kernel/osrelease",
            )
        )

    for name, spec in keys.KEYS.items():
        reading = readings.get(name) or Reading(key=name, state=MISSING, error="not read")
        if reading.state == PRESENT and reading.value is not None:
            finding = _range_finding(spec, reading.value)
            if finding:
                per_key[name].append(finding)
        elif reading.state == MISSING:
            finding = _missing_finding(spec, version, reading)
            if finding:
                per_key[name].append(finding)
        else:
            per_key[name].append(
                Finding(
                    severity=WARNING,
                    key=name,
                    message=f"could not read the live value: {reading.error}",
                    source="/proc/sys",
                )
            )

    for rule in RULES:
        for finding in rule(ctx):
            per_key.setdefault(finding.key, []).append(finding)

    settings = []
    for name, spec in keys.KEYS.items():
        reading = readings.get(name) or Reading(key=name, state=MISSING, error="not read")
        found = per_key[name]
        if reading.state == MISSING:
            status = MISSING
        elif reading.state == UNREADABLE:
            status = UNREADABLE
        else:
            highest = worst(found)
            status = highest if highest in (WARNING, ERROR) else OK
        settings.append(
            Setting(
                key=name,
                value=reading.value if reading.state == PRESENT else None,
                default=spec.default_for(version),
                default_note=spec.default_note,
                status=status,
                error=reading.error,
                findings=found,
            )
        )
    findings = general + [f for s in settings for f in s.findings]
    tcp = dict((sockstat or {}).get("TCP") or {}) or None
    return CheckReport(
        release=release,
        version=version,
        settings=settings,
        findings=findings,
        tcp_counts=tcp,
        conf_files=ctx.conf_files,
        boot=ctx.boot,
    )
