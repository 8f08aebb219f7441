"""`tcptune sockets`: a TIME_WAIT / CLOSE_WAIT census that names the cause.

`sockets` is the command; `run` does its work and is what the tests call without the command
line.
"""

import io
import socket
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from typing import IO, Annotated, Any, Literal

import typer

from tcptune import census, netns, rates, render
from tcptune.cli.options import (
    BAD_INPUT,
    JSON,
    PROMETHEUS,
    FormatOption,
    JsonOption,
    OutputOption,
    RootOption,
    epilog,
    open_system,
    output_format,
    positive_int,
    positive_seconds,
)
from tcptune.errors import (
    EXIT_DRIFT,
    EXIT_OK,
    BadInput,
    EnvironmentProblem,
    TcptuneError,
    printable,
    say,
)
from tcptune.model import (
    ERROR,
    PRESENT,
    SEVERITY_RANK,
    Finding,
    Holders,
    parse_int,
    parse_port_range,
    usable_ports,
    worst,
)
from tcptune.sockdiag import Unavailable
from tcptune.system import System, describe_netns

SHORT_HELP = "TIME_WAIT / CLOSE_WAIT census: states, port pressure, CLOSE_WAIT owners"
EPILOG = epilog(
    [
        "tcptune sockets",
        "tcptune sockets --top 3",
        "tcptune sockets --json | jq '.close_wait_owners'",
        "tcptune sockets --watch 2",
        "tcptune sockets --format prometheus",
        "tcptune sockets --format prometheus --output sockets.prom",
        "tcptune --root /srv/snapshot sockets --source proc",
        "sudo tcptune --pid 4242 sockets",
        "sudo tcptune sockets --all-netns",
        "sudo tcptune sockets --all-netns --json | jq '.[0].netns.owner'",
    ],
    {
        0: "ok: no error-level finding (and --watch ended with Ctrl-C)",
        1: "an error-level finding (the metrics are written all the same)",
        2: f"{BAD_INPUT}, --source netlink below --root, --watch with --json or "
        "--format json|prometheus, --top above 100 with --format prometheus; --all-netns with "
        "--root, --watch, --netns or --pid; --netns or --pid that names no network namespace",
        3: "environment error: no socket table to read, netlink refused (--source netlink), "
        "--output that cannot be written (nothing is written then); --netns, --pid or "
        "--all-netns without root",
    },
)

TopOption = Annotated[
    int,
    typer.Option(
        "--top",
        metavar="N",
        parser=positive_int,
        help="show the N largest port-pressure groups and CLOSE_WAIT owners",
    ),
]
WatchOption = Annotated[
    float | None,
    typer.Option(
        "--watch",
        metavar="SECONDS",
        parser=positive_seconds,
        help="refresh every SECONDS until Ctrl-C",
        show_default=False,
    ),
]
AllNetnsOption = Annotated[
    bool,
    typer.Option(
        "--all-netns",
        help="one census per network namespace of the running machine (every process's, and "
        "/run/netns), each named by the container, pod or process that owns it, worst first "
        "(needs root)",
    ),
]
SourceOption = Annotated[
    Literal["auto", "netlink", "proc"],
    typer.Option(
        "--source",
        help="where to read the sockets: netlink (the kernel, as ss does), proc "
        "(/proc/net/tcp and tcp6), or auto: netlink on the live machine, else proc",
    ),
]


def sockets(
    ctx: typer.Context,
    json_output: JsonOption = False,
    fmt: FormatOption = None,
    output: OutputOption = None,
    top: TopOption = 10,
    watch: WatchOption = None,
    source: SourceOption = "auto",
    all_netns: AllNetnsOption = False,
    root: RootOption = None,
) -> int:
    """Count TCP sockets per state (IPv4 and IPv6), TIME_WAIT against tcp_max_tw_buckets,
    ephemeral port pressure per destination and the processes that hold CLOSE_WAIT sockets,
    with findings that name the cause and the remedy. Reads the kernel over NETLINK_SOCK_DIAG,
    or /proc/net/tcp and tcp6. --format prometheus prints the same as Prometheus metrics; with
    --output, also each CLOSE_WAIT owner's growth since the previous run. --all-netns looks
    at every network namespace; --netns or --pid (before the command) at one."""
    chosen = output_format(json_output, fmt, output)
    if all_netns:
        return run_all(
            ctx, root, fmt=chosen, top=top, watch=watch, source=source, output=output,
            stream=sys.stdout,
        )  # fmt: skip
    if chosen == PROMETHEUS:
        if watch is not None:
            raise BadInput(
                "--watch and --format prometheus cannot be combined",
                hint="run it from a timer (integrations/systemd/tcptune-metrics.timer)",
            )
        return run_prometheus(
            open_system(ctx, root, enters=True),
            top=top,
            source=source,
            output=output,
            stream=sys.stdout,
        )
    with render.fitted_stdout() as stream:
        return run(
            open_system(ctx, root, enters=True),
            json_output=chosen == JSON,
            top=top,
            watch=watch,
            source=source,
            stream=stream,
        )


AUTO = "auto"
SYSCTLS = (
    "tcp_max_tw_buckets",
    "ip_local_port_range",
    "ip_local_reserved_ports",
    "tcp_fin_timeout",
    "tcp_tw_reuse",
    "tcp_timestamps",
)
DEFAULT_PORT_RANGE = (32768, 60999)  # the kernel default, used when the live value is unreadable
FAMILIES = ((socket.AF_INET, "tcp"), (socket.AF_INET6, "tcp6"))


def run(
    system: System,
    *,
    json_output: bool,
    top: int,
    watch: float | None,
    source: str,
    stream: IO[str],
) -> int:
    check_source(system, source)
    if watch is not None:
        if json_output:
            raise BadInput("--watch and --json cannot be combined", hint="run --json in a loop")
        # each frame is fitted already; the live view's cursor moves go out as they are
        raw = stream.stream if isinstance(stream, render.Fitted) else stream
        return run_watch(system, top=top, seconds=watch, source=source, stream=raw)
    report = look(system, source, top)
    if json_output:
        render.write_json(stream, "sockets", report.to_json())
    else:
        write_text(report, stream, render.wants_colour(stream))
    return report.exit_code()


def run_prometheus(
    system: System, *, top: int, source: str, output: str | None, stream: IO[str]
) -> int:
    """--format prometheus: the census as metrics, printed or written to --output (checked
    before anything is counted)."""
    from tcptune.cli import prometheus

    prometheus.check_top(top)
    check_source(system, source)
    with prometheus.target(output) as target:
        report = look(system, source, top)
        prometheus.write_sockets(system, report, top=top, output=target, stream=stream)
    return report.exit_code()


def run_watch(system: System, *, top: int, seconds: float, source: str, stream: IO[str]) -> int:
    """Refresh every `seconds` until Ctrl-C, which ends it with exit 0: a rich live view on a
    terminal, else one plain snapshot after another. Each frame fits the terminal, laid out by
    what explains trouble first (findings, CLOSE_WAIT owners, the trend of the counts that grow,
    the states, then the port table); from the second refresh on, each CLOSE_WAIT owner shows
    its growth per minute since the first."""
    first: list[rates.Snapshot] = []
    history: list[tuple[int, int, int]] = []
    try:
        if not render.wants_colour(stream):
            while True:
                frame = watch_frame(system, source, top, first, history)
                stream.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n{frame}")
                stream.flush()
                time.sleep(seconds)
        from rich.console import Console, Group
        from rich.live import Live
        from rich.text import Text

        console = Console(file=stream, highlight=False)
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                rows = render.height() - 2  # the header line, and the cursor's own
                frame = watch_frame(system, source, top, first, history, height=rows)
                header = Text(
                    f"every {seconds:g} s, {time.strftime('%H:%M:%S')}; Ctrl-C to stop",
                    style="dim",
                )
                live.update(Group(header, Text(frame, no_wrap=True)), refresh=True)
                time.sleep(seconds)
    except KeyboardInterrupt:
        return EXIT_OK


TREND_POINTS = 30  # frames a sparkline shows
SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[int]) -> str:
    """One character per value, from ▁ (the lowest seen) to █ (the highest)."""
    low, high = min(values), max(values)
    if high == low:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[(v - low) * (len(SPARKS) - 1) // (high - low)] for v in values)


def watch_frame(
    system: System,
    source: str,
    top: int,
    first: list[rates.Snapshot],
    history: list[tuple[int, int, int]] | None = None,
    *,
    width: int | None = None,
    height: int | None = None,
) -> str:
    """One refresh of --watch as plain text, `width` columns and at most `height` lines (the
    terminal's by default). `first` keeps the first look, the start of the window the CLOSE_WAIT
    growth is measured over; `history` the counts of TIME_WAIT, CLOSE_WAIT and orphans at each
    refresh, for their trend."""
    report = look(system, source, top)
    c = report.facts.census
    now = rates.snapshot(
        report.facts.owners, c.states["CLOSE_WAIT"], time=time.monotonic(), boot_id=None, netns=""
    )
    if not first:
        first.append(now)
    history = history if history is not None else []
    history.append((c.states["TIME_WAIT"], c.states["CLOSE_WAIT"], c.orphans))
    del history[:-TREND_POINTS]
    growth = rates.growth(first[0], now)
    return watch_text(report, growth, history, width or render.width(), height or render.height())


def watch_text(
    report: "SocketsReport",
    growth: rates.Growth | None,
    history: list[tuple[int, int, int]],
    width: int,
    height: int,
) -> str:
    """The frame: what explains trouble first, each part cut to the room left."""
    doc = report.to_json()
    c = report.facts.census

    def cut(line: str) -> str:
        return line if len(line) <= width else line[: width - 1] + "…"

    def table_lines(table: render.Table) -> list[str]:
        buffer = io.StringIO()
        table.write(buffer, colour=False, fit_width=width)
        return buffer.getvalue().splitlines()

    head = [cut(f"tcptune sockets: {c.total} TCP sockets from {census.SOURCE_TEXT[c.source]}")]
    ranked = sorted(report.findings, key=lambda f: -SEVERITY_RANK.get(f.severity, 0))
    notes = [cut(f"{f.severity:<7} {f.key}: {f.message}") for f in ranked if f.severity != "info"]
    owners = [f"CLOSE_WAIT owners ({doc['close_wait']} sockets)"]
    if report.facts.owners:
        owners += table_lines(owner_table(report, growth))
    if growth is not None:
        owners.append(
            f"CLOSE_WAIT growth over the last {growth.window:.0f} s: {growth.total:+.1f} sockets "
            "per minute"
        )
    trend = []
    for i, name in enumerate(("TIME_WAIT", "CLOSE_WAIT", "orphans")):
        values = [point[i] for point in history] or [0]
        trend.append(f"{name} {values[-1]} {sparkline(values)} {values[-1] - values[0]:+d}")
    trend_line = cut("trend since start: " + "   ".join(trend))
    tw = doc["time_wait"]
    cap = tw["max_tw_buckets"]
    share = f" ({tw['percent']}%)" if tw["percent"] is not None else ""
    states = [f"{name} {count}" for name, count in c.states.items() if count]
    state_lines = render.fold(
        "states: "
        + ("  ".join(states) or "none")
        + f"; tw buckets {tw['buckets_used']} of {cap if cap is not None else '?'}{share}",
        width,
    )[:2]
    pressure = doc["port_pressure"]
    low, high = pressure["range"]
    ports = [
        cut(
            f"Ephemeral ports: {pressure['sockets']} sockets with a local port in {low}-{high}, "
            f"{pressure['usable']} usable per destination"
        )
    ]
    if pressure["top"]:
        ports += table_lines(port_table(pressure))
    # Findings and owners first; whatever does not fit is cut from the bottom of each part.
    room = max(height, 8)
    parts = [head, notes[:3], owners, [trend_line], state_lines, ports]
    fixed = len(head) + len(notes[:3]) + 1 + len(state_lines)  # + the trend line
    owners = owners[: max(3, room - fixed - 2)]
    parts[2] = owners
    left = room - fixed - len(owners)
    parts[5] = ports[: max(left, 0)] if left > 0 else []
    lines = [line for part in parts for line in part]
    return "\n".join(lines) + "\n"


def owner_table(report: "SocketsReport", growth: rates.Growth | None) -> render.Table:
    """The CLOSE_WAIT owners: who holds how many, and (watching) how fast that grows."""
    from tcptune.layout import Column

    columns: list[Any] = [
        Column(name="PID", keep=True),
        Column(name="COMMAND", keep=True),
        "UID",
        "COUNT",
        Column(name="LOCAL ENDPOINTS", drop=1),
    ]
    if growth is not None:
        columns.insert(4, "PER MIN")
    table = render.Table(columns)
    for o in report.facts.owners[: report.top]:
        local = ", ".join(f"{e} ({n})" for e, n in o.local)
        cells = [
            str(o.pid) if o.pid is not None else "?",
            census.program_name(o) if o.pid is not None else "unknown",
            str(o.uid),
            str(o.count),
            local,
        ]
        styles = [None, None if o.pid is not None else "dim", None, "bold", None]
        if growth is not None:
            rate = growth.per_owner.get(rates.owner_key(o))
            cells.insert(4, f"{rate:+.1f}" if rate is not None else "?")
            styles.insert(4, "bold red" if rate and rate > 0 else None)
        table.add(cells, styles)
    return table


def port_table(pressure: dict[str, Any]) -> render.Table:
    """The destinations that hold the most ephemeral ports."""
    from tcptune.layout import Column

    table = render.Table(
        [
            Column(name="LOCAL", keep=True),
            Column(name="REMOTE", keep=True),
            "SOCKETS",
            "TIME_WAIT",
            "OF RANGE",
        ]
    )
    for g in pressure["top"]:
        remote = (
            f"[{g['remote_address']}]:{g['remote_port']}"
            if g["family"] == "ipv6"
            else f"{g['remote_address']}:{g['remote_port']}"
        )
        table.add(
            [g["local_address"], remote, str(g["sockets"]), str(g["time_wait"]),
             f"{g['percent']}%"]
        )  # fmt: skip
    return table


def read_census(
    system: System, source: str, port_range: tuple[int, int]
) -> tuple[census.Census, str]:
    """Count the sockets over netlink (the live machine) or from /proc/net/tcp{,6}. Returns the
    census and a note on why /proc was read when netlink was wanted."""
    low, high = port_range
    note = ""
    if source == census.NETLINK or (source == AUTO and system.live):
        tally = census.Tally(census.NETLINK, low, high)
        try:
            for family, _ in FAMILIES:
                system.sock_diag(family, census.ALL_STATES, tally.netlink_feeder(family))
            return tally.finish(), note
        except Unavailable as err:
            if source == census.NETLINK:
                raise EnvironmentProblem(str(err), hint="try --source proc") from err
            note = f"netlink unavailable ({err}); read /proc/net/tcp and /proc/net/tcp6 instead"
    tally = census.Tally(census.PROC, low, high)
    found = 0
    for family, name in FAMILIES:
        found += system.feed_proc_net_tcp(name, partial(tally.feed_proc, family))
    if not found:
        raise EnvironmentProblem(
            f"neither {system.path('proc/net/tcp')} nor tcp6 exists: no socket table to read",
            hint="is /proc mounted? with --root, point at a tree with proc/net/tcp",
        )
    return tally.finish(), note


def check_source(system: System, source: str) -> None:
    if source == census.NETLINK and not system.live:
        raise BadInput(
            f"--source netlink asks the running kernel and cannot read below --root {system.root}",
            hint="drop --root, or use --source proc",
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class SocketsReport:
    """What one look at the machine found, ready to render."""

    root: str
    facts: census.CensusInput  # the census, its owners and the sysctls the findings looked at
    port_range_assumed: bool  # ip_local_port_range was unreadable: the kernel default is assumed
    source_note: str  # why /proc was read when netlink was wanted
    holders: Holders
    findings: list[Finding]
    profile: tuple[str, str] | None  # a shipped profile that fits, and why
    top: int  # rows shown per table
    netns: netns.Identity  # the network namespace counted

    def exit_code(self) -> int:
        return EXIT_DRIFT if worst(self.findings) == ERROR else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        facts = self.facts
        c = facts.census
        cap = parse_int(facts.sysctl["tcp_max_tw_buckets"])
        used = census.tw_buckets_used(facts)
        unknown = sum(o.count for o in facts.owners if o.pid is None)
        return {
            "root": self.root,
            "netns": self.netns.to_json(),
            "source": c.source,
            "source_note": self.source_note or None,
            "total": c.total,
            "states": c.states,
            "orphans": c.orphans,
            "fin_wait2_orphans": c.fin_wait2_orphans,
            "time_wait": {
                "count": c.states["TIME_WAIT"],
                "buckets_used": used,
                "buckets_used_from": "sockstat" if facts.tw_live is not None else "estimate",
                "max_tw_buckets": cap,
                "percent": _percent(used, cap),
            },
            "port_pressure": {
                "range": list(facts.port_range),
                "range_assumed": self.port_range_assumed,
                "usable": facts.usable,
                "sockets": c.ephemeral,
                "groups": len(c.groups),
                "top": [
                    {**asdict(g), "percent": _percent(g.sockets, facts.usable)}
                    for g in c.groups[: self.top]
                ],
            },
            "close_wait": c.states["CLOSE_WAIT"],
            "close_wait_owners": [
                {
                    "pid": o.pid,
                    "command": o.command,
                    "cmdline": o.cmdline,
                    "uid": o.uid,
                    "count": o.count,
                    "local_endpoints": [{"endpoint": e, "count": n} for e, n in o.local],
                    "remote_endpoints": [{"endpoint": e, "count": n} for e, n in o.remote],
                    "reason": o.reason or None,
                }
                for o in facts.owners[: self.top]
            ],
            "close_wait_owner_count": len(facts.owners),
            "close_wait_unknown": unknown,
            "owner_scan": {
                "processes_read": self.holders.scanned,
                "processes_denied": self.holders.denied,
                "root": self.holders.privileged,
            },
            "counters": facts.counters,
            "sysctl": {f"net.ipv4.{k}": v for k, v in facts.sysctl.items()},
            "suggested_profile": (
                {"name": self.profile[0], "reason": self.profile[1]} if self.profile else None
            ),
            "findings": [asdict(f) for f in self.findings],
            "exit_code": self.exit_code(),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class Counted:
    """What is read inside one network namespace: its sysctls, sockets and counters."""

    sysctl: dict[str, str | None]
    port_range: tuple[int, int]
    port_range_assumed: bool
    usable: int | None
    census: census.Census
    source_note: str
    tcpext: dict[str, int] | None
    tw_live: int | None
    initial: bool | None  # the host's own namespace (tcp_max_orphans exists there alone)


def count(system: System, source: str) -> Counted:
    """Read the sysctls that bound the sockets, the sockets and the counters of the network
    namespace this process is in."""
    system.require_proc_sys()
    readings = {k: system.read_sysctl(f"net.ipv4.{k}") for k in SYSCTLS}
    sysctl = {k: r.value if r.state == PRESENT else None for k, r in readings.items()}
    parsed = parse_port_range(sysctl["ip_local_port_range"])
    port_range = parsed or DEFAULT_PORT_RANGE
    counted, source_note = read_census(system, source, port_range)
    tcp = (system.sockstat() or {}).get("TCP") or {}
    return Counted(
        sysctl=sysctl,
        port_range=port_range,
        port_range_assumed=parsed is None,
        usable=usable_ports(port_range, sysctl["ip_local_reserved_ports"]),
        census=counted,
        source_note=source_note,
        tcpext=(system.netstat() or {}).get("TcpExt"),
        tw_live=tcp.get("tw"),
        initial=netns.is_initial(system.read_sysctl(netns.INITIAL_ONLY_KEY)),
    )


def close_wait_inodes(counted: Counted) -> set[int]:
    return {s.inode for s in counted.census.close_wait if s.inode}


def report_of(
    counted: Counted, holders: Holders, *, top: int, root: str, where: netns.Identity
) -> SocketsReport:
    """The findings on what was counted, with the CLOSE_WAIT sockets' holders."""
    tcpext = counted.tcpext
    facts = census.CensusInput(
        census=counted.census,
        owners=census.close_wait_owners(counted.census, holders),
        sysctl=counted.sysctl,
        counters={k: tcpext.get(k) for k in census.COUNTERS} if tcpext else None,
        tw_live=counted.tw_live,
        port_range=counted.port_range,
        usable=counted.usable,
    )
    return SocketsReport(
        root=root,
        facts=facts,
        port_range_assumed=counted.port_range_assumed,
        source_note=counted.source_note,
        holders=holders,
        findings=census.findings(facts),
        profile=census.suggest_profile(facts),
        top=top,
        netns=where,
    )


def look(system: System, source: str, top: int) -> SocketsReport:
    """Read the sockets, their owners and the sysctls that bound them; make the findings."""
    counted = count(system, source)
    holders = system.socket_holders(close_wait_inodes(counted))
    where = describe_netns(system, initial=counted.initial)
    return report_of(counted, holders, top=top, root=str(system.root), where=where)


def _percent(part: int, whole: int | None) -> float | None:
    return round(part * 100 / whole, 1) if whole and whole > 0 else None


def write_text(
    report: SocketsReport, stream: IO[str], colour: bool, growth: rates.Growth | None = None
) -> None:
    """The report as text; with `growth` (--watch), each CLOSE_WAIT owner's growth too."""
    doc = report.to_json()
    c = report.facts.census
    where = "" if report.root == "/" else f", root {report.root}"
    render.write_line(
        stream,
        f"tcptune sockets: {c.total} TCP sockets (IPv4 and IPv6) from "
        f"{census.SOURCE_TEXT[c.source]}{where}",
        colour,
        "bold",
    )
    if report.netns.entered is not None or report.netns.initial is False:
        stream.write(printable(report.netns.describe()) + "\n")
    if report.source_note:
        stream.write(f"note: {report.source_note}\n")
    states = render.Table(["STATE", "COUNT"])
    for name, count in c.states.items():
        states.add([name, str(count)], [None, "bold" if count else "dim"])
    states.write(stream, colour)
    stream.write(
        f"orphans (closed by their program, finished by the kernel): {c.orphans}, "
        f"of which FIN_WAIT2: {c.fin_wait2_orphans}\n"
    )
    tw = doc["time_wait"]
    cap = tw["max_tw_buckets"]
    share = f" ({tw['percent']}%)" if tw["percent"] is not None else ""
    stream.write(
        f"\nTIME_WAIT: {tw['count']}; tw buckets in use {tw['buckets_used']} of "
        f"tcp_max_tw_buckets {cap if cap is not None else '?'}{share}\n"
    )
    counters = report.facts.counters
    if counters is not None:
        parts = ", ".join(f"{k} {v if v is not None else '?'}" for k, v in counters.items())
        stream.write(f"TcpExt since boot (or namespace creation): {parts}\n")
    pressure = doc["port_pressure"]
    low, high = pressure["range"]
    assumed = " (unreadable; kernel default assumed)" if pressure["range_assumed"] else ""
    stream.write(
        f"\nEphemeral ports: {pressure['sockets']} sockets with a local port in {low}-{high}"
        f"{assumed}, {pressure['usable']} usable ports per destination\n"
    )
    if pressure["top"]:
        port_table(pressure).write(stream, colour)
        if pressure["groups"] > len(pressure["top"]):
            stream.write(f"({pressure['groups'] - len(pressure['top'])} more groups; --top N)\n")
    stream.write(f"\nCLOSE_WAIT owners ({doc['close_wait']} sockets)\n")
    owners = report.facts.owners
    if owners:
        owner_table(report, growth).write(stream, colour)
        reasons = {o.reason for o in owners if o.reason}
        for reason in sorted(reasons):
            stream.write(f"unknown owners: {reason}\n")
    else:
        stream.write("none\n")
    if growth is not None:
        stream.write(
            f"CLOSE_WAIT growth over the last {growth.window:.0f} s: {growth.total:+.1f} sockets "
            "per minute\n"
        )
    render.write_findings(stream, report.findings, colour)
    if report.profile:
        stream.write(f"\nSuggested profile: {report.profile[0]} ({report.profile[1]})\n")
    stream.write(f"\nExit {report.exit_code()}.\n")


# --- sockets --all-netns -------------------------------------------------------------------------


def run_all(
    ctx: typer.Context,
    root: str | None,
    *,
    fmt: str,
    top: int,
    watch: float | None,
    source: str,
    output: str | None,
    stream: IO[str],
) -> int:
    """--all-netns: one census per network namespace of the running machine, worst first."""
    from tcptune.cli.namespaces import namespace_option

    target = namespace_option(ctx)
    if target is not None:
        raise BadInput(
            f"--all-netns looks at every network namespace; {target[0]} names one",
            hint=f"drop {target[0]} or --all-netns",
        )
    if watch is not None:
        raise BadInput("--watch and --all-netns cannot be combined", hint="watch one: --pid PID")
    system = open_system(ctx, root, enters=True)
    if not system.live:
        raise BadInput(
            f"--all-netns looks at the running kernel's namespaces, not below --root {system.root}",
            hint="drop --root (or TCPTUNE_ROOT)",
        )
    if fmt == PROMETHEUS:
        from tcptune.cli import prometheus

        prometheus.check_top(top)
        with prometheus.target(output) as target_file:
            reports = look_all(source, top)
            prometheus.write_all_sockets(reports, top=top, output=target_file, stream=stream)
        return all_exit_code(reports)
    reports = look_all(source, top)
    if fmt == JSON:
        render.write_json_list(stream, "sockets", [report.to_json() for report in reports])
    else:
        write_all_text(reports, stream, render.wants_colour(stream))
    return all_exit_code(reports)


def all_exit_code(reports: list[SocketsReport]) -> int:
    return EXIT_DRIFT if any(r.exit_code() == EXIT_DRIFT for r in reports) else EXIT_OK


def look_all(source: str, top: int) -> list[SocketsReport]:
    """Every network namespace: found from /proc/*/ns/net (one per inode) and /run/netns,
    entered in turn (setns), counted there; then one look at every process's open files for the
    CLOSE_WAIT sockets of all of them, and each namespace named by its owner. Sorted by the
    worst finding, then CLOSE_WAIT and TIME_WAIT."""
    from tcptune import system as machine

    if not machine.running_as_root():
        raise EnvironmentProblem(
            "--all-netns enters every network namespace: that needs root (CAP_SYS_ADMIN)",
            hint="run it as root: sudo tcptune sockets --all-netns",
        )
    by_process = machine.netns_of_processes()
    by_name = machine.named_netns()
    targets = [
        (inode, by_process.get(inode, []), by_name.get(inode, []))
        for inode in sorted(set(by_process) | set(by_name))
    ]
    here = System("/")

    def look_here(inode: int) -> Counted | TcptuneError:
        try:
            return count(here, source)
        except TcptuneError as err:  # reported per namespace; the others are still counted
            return err

    visited = machine.visit_netns(targets, look_here)
    counted = {inode: found for inode, found in visited if isinstance(found, Counted)}
    for inode, found in visited:
        if found is None:
            say(f"warning: network namespace {inode} went away before it could be counted")
        elif isinstance(found, TcptuneError):
            say(f"warning: network namespace {inode}: {found.line()}")
    inodes = set().union(*(close_wait_inodes(c) for c in counted.values()))
    holders = here.socket_holders(inodes)
    reports = []
    for inode, found in counted.items():
        owner = machine.netns_owner(
            inode, initial=found.initial, pids=by_process.get(inode, []), names=by_name.get(inode)
        )
        where = netns.Identity(inode=str(inode), initial=found.initial, entered=None, owner=owner)
        reports.append(report_of(found, holders, top=top, root="/", where=where))
    return netns.worst_first(
        reports,
        worst=lambda r: worst(r.findings),
        close_wait=lambda r: r.facts.census.states["CLOSE_WAIT"],
        time_wait=lambda r: r.facts.census.states["TIME_WAIT"],
        total=lambda r: r.facts.census.total,
        inode=lambda r: r.netns.inode,
    )


def _top_owner(report: SocketsReport) -> str:
    owners = report.facts.owners
    if not owners:
        return ""
    first = owners[0]
    who = f"{first.command or '?'} (pid {first.pid})" if first.pid is not None else "unknown"
    more = f" +{len(owners) - 1}" if len(owners) > 1 else ""
    return f"{who}: {first.count}{more}"


def _pressure(report: SocketsReport) -> str:
    groups, usable = report.facts.census.groups, report.facts.usable
    if not groups or not usable:
        return "-"
    return f"{groups[0].sockets * 100 / usable:.0f}%"


def write_all_text(reports: list[SocketsReport], stream: IO[str], colour: bool) -> None:
    """A line per namespace, worst first, and the totals; then the warnings and errors of each
    namespace that has some."""
    from tcptune.layout import Column

    total = sum(r.facts.census.total for r in reports)
    sources = {census.SOURCE_TEXT[r.facts.census.source] for r in reports}
    render.write_line(
        stream,
        f"tcptune sockets --all-netns: {len(reports)} network namespaces, {total} TCP sockets "
        f"(IPv4 and IPv6) from {', '.join(sorted(sources)) or '-'}",
        colour,
        "bold",
    )
    table = render.Table(
        [
            Column(name="NETNS", keep=True),
            Column(name="OWNER", keep=True),
            "SOCKETS",
            "TIME_WAIT",
            "CLOSE_WAIT",
            Column(name="CLOSE_WAIT OWNER", drop=2),
            "ORPHANS",
            Column(name="PORTS", drop=1),
            "WORST",
        ]
    )
    severity_style = {"error": "bold red", "warning": "yellow", "info": None}
    for r in reports:
        c = r.facts.census
        worst_found = worst(r.findings)
        table.add(
            [
                r.netns.inode,
                printable(r.netns.owner.name),
                str(c.total),
                str(c.states["TIME_WAIT"]),
                str(c.states["CLOSE_WAIT"]),
                printable(_top_owner(r)),
                str(c.orphans),
                _pressure(r),
                worst_found or "-",
            ],
            [None, None, None, None, "bold" if c.states["CLOSE_WAIT"] else "dim", None, None,
             None, severity_style.get(worst_found or "")],
        )  # fmt: skip
    table.add(
        [
            "TOTAL",
            f"{len(reports)} namespaces",
            str(total),
            str(sum(r.facts.census.states["TIME_WAIT"] for r in reports)),
            str(sum(r.facts.census.states["CLOSE_WAIT"] for r in reports)),
            "",
            str(sum(r.facts.census.orphans for r in reports)),
            "",
            worst([f for r in reports for f in r.findings]) or "-",
        ],
        ["bold"] * 9,
    )
    table.write(stream, colour)
    stream.write(
        "PORTS: the largest share of the usable ephemeral ports held towards one destination.\n"
    )
    for r in reports:
        shown = [f for f in r.findings if f.severity != "info"]
        if not shown:
            continue
        stream.write("\n")
        render.write_line(stream, printable(r.netns.describe()), colour, "bold")
        render.write_findings(stream, shown, colour)
    code = all_exit_code(reports)
    stream.write(
        f"\nExit {code}. Every namespace in full: tcptune sockets --all-netns --json; one of them: "
        "tcptune --netns /proc/PID/ns/net sockets.\n"
    )
