"""`tcptune sockets`: a TIME_WAIT / CLOSE_WAIT census that names the cause."""

from __future__ import annotations

import socket
from dataclasses import asdict

from tcptune import census, render
from tcptune.errors import EXIT_DRIFT, EXIT_OK, BadInput, EnvironmentProblem
from tcptune.model import ERROR, PRESENT, parse_int, parse_port_range, usable_ports
from tcptune.sockdiag import Unavailable
from tcptune.system import System

TYPE_CHECKING = False  # typing costs ~3 ms at start-up; annotations are never evaluated
if TYPE_CHECKING:
    from typing import IO, Any

AUTO = "auto"
SOURCES = (AUTO, census.NETLINK, census.PROC)
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


def read_census(
    system: System, source: str, port_range: tuple[int, int]
) -> tuple[census.Census, str]:
    """Count the sockets over netlink (the live machine) or from /proc/net/tcp{,6}. Returns the
    census and a note on why /proc was read when netlink was wanted."""
    low, high = port_range
    note = ""
    check_source(system, source)
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
        handle = system.open_proc_net_tcp(name)
        if handle is None:
            continue
        found += 1
        with handle:
            tally.feed_proc(family, handle)
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


class Report:
    """What one look at the machine found, ready to render."""

    def __init__(self, system: System, source: str, top: int) -> None:
        system.require_proc_sys()
        readings = {k: system.read_sysctl(f"net.ipv4.{k}") for k in SYSCTLS}
        self.sysctl = {k: r.value if r.state == PRESENT else None for k, r in readings.items()}
        parsed = parse_port_range(self.sysctl["ip_local_port_range"])
        self.port_range_assumed = parsed is None
        self.port_range = parsed or DEFAULT_PORT_RANGE
        self.usable = usable_ports(self.port_range, self.sysctl["ip_local_reserved_ports"])
        self.census, self.source_note = read_census(system, source, self.port_range)
        inodes = {s.inode for s in self.census.close_wait if s.inode}
        self.holders = system.socket_holders(inodes)
        self.owners = census.close_wait_owners(self.census, self.holders)
        tcpext = (system.netstat() or {}).get("TcpExt")
        self.counters = {k: tcpext.get(k) for k in census.COUNTERS} if tcpext else None
        tcp = (system.sockstat() or {}).get("TCP") or {}
        self.tw_live = tcp.get("tw")
        self.ctx = census.Context(
            self.census,
            self.owners,
            self.sysctl,
            self.counters,
            self.tw_live,
            self.port_range,
            self.usable,
        )
        self.findings = census.findings(self.ctx)
        self.profile = census.suggest_profile(self.ctx)
        self.top = top
        self.root = str(system.root)

    def exit_code(self) -> int:
        return EXIT_DRIFT if census.worst(self.findings) == ERROR else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        c = self.census
        cap = parse_int(self.sysctl["tcp_max_tw_buckets"])
        used = census.tw_buckets_used(self.ctx)
        unknown = sum(o.count for o in self.owners if o.pid is None)
        return {
            "root": self.root,
            "source": c.source,
            "source_note": self.source_note or None,
            "total": c.total,
            "states": c.states,
            "orphans": c.orphans,
            "fin_wait2_orphans": c.fin_wait2_orphans,
            "time_wait": {
                "count": c.states["TIME_WAIT"],
                "buckets_used": used,
                "buckets_used_from": "sockstat" if self.tw_live is not None else "estimate",
                "max_tw_buckets": cap,
                "percent": _percent(used, cap),
            },
            "port_pressure": {
                "range": list(self.port_range),
                "range_assumed": self.port_range_assumed,
                "usable": self.usable,
                "sockets": c.ephemeral,
                "groups": len(c.groups),
                "top": [
                    {**g._asdict(), "percent": _percent(g.sockets, self.usable)}
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
                for o in self.owners[: self.top]
            ],
            "close_wait_owner_count": len(self.owners),
            "close_wait_unknown": unknown,
            "owner_scan": {
                "processes_read": self.holders.scanned,
                "processes_denied": self.holders.denied,
                "root": self.holders.privileged,
            },
            "counters": self.counters,
            "sysctl": {f"net.ipv4.{k}": v for k, v in self.sysctl.items()},
            "suggested_profile": (
                {"name": self.profile[0], "reason": self.profile[1]} if self.profile else None
            ),
            "findings": [asdict(f) for f in self.findings],
            "exit_code": self.exit_code(),
        }


def _percent(part: int, whole: int | None) -> float | None:
    return round(part * 100 / whole, 1) if whole else None


def write_text(report: Report, stream: IO[str], colour: bool) -> None:
    doc = report.to_json()
    c = report.census
    where = "" if report.root == "/" else f", root {report.root}"
    render.write_line(
        stream,
        f"tcptune sockets: {c.total} TCP sockets (IPv4 and IPv6) from "
        f"{census.SOURCE_TEXT[c.source]}{where}",
        colour,
        "bold",
    )
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
    if report.counters is not None:
        parts = ", ".join(f"{k} {v if v is not None else '?'}" for k, v in report.counters.items())
        stream.write(f"TcpExt since boot (or namespace creation): {parts}\n")
    pressure = doc["port_pressure"]
    low, high = pressure["range"]
    assumed = " (unreadable; kernel default assumed)" if pressure["range_assumed"] else ""
    stream.write(
        f"\nEphemeral ports: {pressure['sockets']} sockets with a local port in {low}-{high}"
        f"{assumed}, {pressure['usable']} usable ports per destination\n"
    )
    if pressure["top"]:
        groups = render.Table(["LOCAL", "REMOTE", "SOCKETS", "TIME_WAIT", "OF RANGE"])
        for g in pressure["top"]:
            remote = (
                f"[{g['remote_address']}]:{g['remote_port']}"
                if g["family"] == "ipv6"
                else f"{g['remote_address']}:{g['remote_port']}"
            )
            groups.add(
                [g["local_address"], remote, str(g["sockets"]), str(g["time_wait"]),
                 f"{g['percent']}%"]
            )  # fmt: skip
        groups.write(stream, colour)
        if pressure["groups"] > len(pressure["top"]):
            stream.write(f"({pressure['groups'] - len(pressure['top'])} more groups; --top N)\n")
    stream.write(f"\nCLOSE_WAIT owners ({doc['close_wait']} sockets)\n")
    if report.owners:
        owners = render.Table(["PID", "COMMAND", "UID", "COUNT", "LOCAL ENDPOINTS"])
        for o in report.owners[: report.top]:
            local = ", ".join(f"{e} ({n})" for e, n in o.local)
            owners.add(
                [
                    str(o.pid) if o.pid is not None else "?",
                    o.command or "unknown",
                    str(o.uid),
                    str(o.count),
                    local,
                ],
                [None, None if o.pid is not None else "dim", None, "bold", None],
            )
        owners.write(stream, colour)
        reasons = {o.reason for o in report.owners if o.reason}
        for reason in sorted(reasons):
            stream.write(f"unknown owners: {reason}\n")
    else:
        stream.write("none\n")
    render.write_findings(stream, report.findings, colour)
    if report.profile:
        stream.write(f"\nSuggested profile: {report.profile[0]} ({report.profile[1]})\n")
    stream.write(f"\nExit {report.exit_code()}.\n")


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
        return run_watch(system, top=top, seconds=watch, source=source, stream=stream)
    report = Report(system, source, top)
    if json_output:
        render.write_json(stream, "sockets", report.to_json())
    else:
        write_text(report, stream, render.wants_colour(stream))
    return report.exit_code()


def run_watch(system: System, *, top: int, seconds: float, source: str, stream: IO[str]) -> int:
    """Refresh every `seconds` until Ctrl-C, which ends it with exit 0: a rich live view on a
    terminal, else one plain snapshot after another."""
    import io
    import time

    try:
        if not render.wants_colour(stream):
            while True:
                buffer = io.StringIO()
                write_text(Report(system, source, top), buffer, colour=False)
                stream.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n{buffer.getvalue()}")
                stream.flush()
                time.sleep(seconds)
        from rich.console import Console, Group
        from rich.live import Live
        from rich.text import Text

        console = Console(file=stream, highlight=False)
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                buffer = io.StringIO()
                write_text(Report(system, source, top), buffer, colour=False)
                header = Text(
                    f"every {seconds:g} s, {time.strftime('%H:%M:%S')}; Ctrl-C to stop",
                    style="dim",
                )
                live.update(Group(header, Text(buffer.getvalue())), refresh=True)
                time.sleep(seconds)
    except KeyboardInterrupt:
        return EXIT_OK
