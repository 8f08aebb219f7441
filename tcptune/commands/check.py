"""`tcptune check`: the watched TCP sysctls, their defaults on this kernel, and findings."""

from __future__ import annotations

from tcptune import keys, render, rules
from tcptune.errors import EXIT_DRIFT, EXIT_OK, EnvironmentProblem
from tcptune.kernel import format_version
from tcptune.system import System

TYPE_CHECKING = False  # typing costs ~3 ms at start-up; annotations are never evaluated
if TYPE_CHECKING:
    from typing import IO, Any


def gather(system: System) -> rules.Report:
    """Read every watched key, the kernel release and the socket counters, then evaluate."""
    system.require_proc_sys()
    readings = {name: system.read_sysctl(name) for name in keys.KEYS}
    report = rules.inspect(system.kernel_release(), readings, system.sockstat(), system.netstat())
    if report.all_unreadable():
        first = report.settings[0]
        raise EnvironmentProblem(
            f"cannot read any TCP setting under {system.path('proc/sys/net')}: {first.error}",
            hint="run where /proc/sys is readable (as root if needed), or fix --root",
        )
    return report


def exit_code(report: rules.Report, strict: bool) -> int:
    worst = report.worst()
    if worst == rules.ERROR or (strict and worst == rules.WARNING):
        return EXIT_DRIFT
    return EXIT_OK


def to_json(report: rules.Report, root: str, strict: bool, code: int) -> dict[str, Any]:
    return {
        "root": root,
        "kernel": {
            "release": report.release,
            "version": list(report.version) if report.version else None,
        },
        "settings": [
            {
                "key": s.key,
                "value": s.value,
                "default": s.default,
                "default_note": s.default_note or None,
                "status": s.status,
                "error": s.error or None,
            }
            for s in report.settings
        ],
        "findings": [
            {"severity": f.severity, "key": f.key, "message": f.message, "source": f.source}
            for f in report.findings
        ],
        "sockstat_tcp": report.tcp_counts,
        "summary": summary(report),
        "strict": strict,
        "exit_code": code,
    }


def summary(report: rules.Report) -> dict[str, int]:
    counts = {status: 0 for status in ("ok", "warning", "error", "missing", "unreadable")}
    for setting in report.settings:
        counts[setting.status] = counts.get(setting.status, 0) + 1
    return counts


def write_text(report: rules.Report, root: str, stream: IO[str], code: int) -> None:
    colour = render.wants_colour(stream)
    kernel = report.release or "unknown"
    if report.version:
        kernel += f" (rules for {format_version(report.version[:2])})"
    where = "" if root == "/" else f", root {root}"
    render.write_line(stream, f"tcptune check: kernel {kernel}{where}", colour, "bold")
    table = render.Table(["KEY", "VALUE", "DEFAULT", "STATUS"])
    for s in report.settings:
        value = s.value if s.value is not None else "-"
        if s.value == "":
            value = '""'
        default = s.default if s.default is not None else ("varies" if s.default_note else "?")
        if default == "":
            default = '""'
        style = render.STATUS_STYLE.get(s.status)
        table.add([s.key, value, default, s.status], [None, None, "dim", style])
    table.write(stream, colour)
    render.write_findings(stream, report.findings, colour)
    counts = summary(report)
    parts = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    stream.write(f"\n{len(report.settings)} keys: {parts}. Exit {code}.\n")
    if code:
        stream.write("Exit 1: error-level findings (or warnings with --strict); see above.\n")
    stream.write("More on any key: tcptune explain KEY\n")


def run(system: System, *, json_output: bool, strict: bool, stream: IO[str]) -> int:
    report = gather(system)
    code = exit_code(report, strict)
    if json_output:
        render.write_json(stream, "check", to_json(report, str(system.root), strict, code))
    else:
        write_text(report, str(system.root), stream, code)
    return code
