"""`tcptune check [PROFILE]`: the watched TCP sysctls with findings, or drift from a profile.

`check` is the command; `run` does its work and is what the tests call without the command line.
"""

import sys
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from tcptune import keys, netns, render, rules
from tcptune.cli.options import (
    BAD_INPUT,
    JSON,
    PROMETHEUS,
    FormatOption,
    JsonOption,
    OutputOption,
    RootOption,
    StrictOption,
    epilog,
    open_system,
    output_format,
    profile_names,
)
from tcptune.errors import EXIT_DRIFT, EXIT_ENVIRONMENT, EXIT_OK, EnvironmentProblem, printable
from tcptune.kernel import format_version
from tcptune.model import ERROR, INFO, MISSING, UNREADABLE, WARNING, Finding
from tcptune.system import System, describe_netns, read_conf_files, read_kernel_cmdline

if TYPE_CHECKING:  # check PROFILE imports these when it runs: plain check does without them
    from tcptune.drift import Comparison
    from tcptune.profiles import Profile

SHORT_HELP = "show the live TCP sysctls with kernel-aware findings"
EPILOG = epilog(
    [
        "tcptune check",
        "tcptune check --json | jq '.findings'",
        "tcptune check server-profile",
        "tcptune check ./my-profile.toml --json",
        "tcptune --root /srv/snapshot check --strict",
        "tcptune check server-profile --format prometheus --output check.prom",
        "sudo tcptune --pid 4242 check client-profile",
    ],
    {
        0: "ok: no error-level finding (with PROFILE: and every key in sync)",
        1: "error-level findings, warning-level ones with --strict, or drift from PROFILE",
        2: f"{BAD_INPUT}, an unknown or invalid profile; --netns or --pid that names no "
        "network namespace or process",
        3: "environment error: no /proc/sys/net, the settings cannot be read, or (with PROFILE) "
        "what boot sets for a key cannot be told (a sysctl.d file tcptune may not read); "
        "--output that cannot be written (nothing is written then); --netns or --pid without "
        "root, or a process that exited meanwhile",
    },
)

OptionalProfile = Annotated[
    str | None,
    typer.Argument(
        metavar="PROFILE",
        help="compare with this profile (a name, or a path containing '/' or ending in .toml)",
        show_default=False,
        autocompletion=profile_names,
    ),
]


def check(
    ctx: typer.Context,
    profile: OptionalProfile = None,
    json_output: JsonOption = False,
    fmt: FormatOption = None,
    output: OutputOption = None,
    strict: StrictOption = False,
    root: RootOption = None,
) -> int:
    """Show the watched TCP sysctls, their defaults on this kernel, and findings (each with a
    severity and a source); with PROFILE, how far the machine is from that profile."""
    chosen = output_format(json_output, fmt, output)
    if chosen == PROMETHEUS:  # imported only then: check --json stays light
        return run_prometheus(
            open_system(ctx, root, enters=True),
            profile,
            strict=strict,
            output=output,
            stream=sys.stdout,
        )
    with render.fitted_stdout() as stream:
        return run(
            open_system(ctx, root, enters=True),
            json_output=chosen == JSON,
            strict=strict,
            stream=stream,
            profile_name=profile,
        )


def run(
    system: System,
    *,
    json_output: bool,
    strict: bool,
    stream: IO[str],
    profile_name: str | None = None,
) -> int:
    if profile_name is not None:
        return run_profile(
            system, profile_name, json_output=json_output, strict=strict, stream=stream
        )
    report = gather(system)
    code = exit_code(report, strict)
    where = identity(system, report)
    if json_output:
        render.write_json(stream, "check", to_json(report, str(system.root), strict, code, where))
    else:
        write_text(report, str(system.root), stream, code, where, strict)
    return code


def entered(system: System) -> str | None:
    """How --netns or --pid entered the namespace ("--pid 4242"), None without them."""
    return getattr(system, "entered", None)


def gather(system: System, boot_keys: Iterable[str] = ()) -> rules.CheckReport:
    """Read every watched key, the kernel release, the socket counters and the boot-time
    configuration, then evaluate; what boot sets is told for the watched keys and
    `boot_keys`. In a namespace entered with --netns or --pid, the sysctl.d files and the
    kernel command line are not read: they are the host's, and configure the host's boot, not
    that namespace."""
    system.require_proc_sys()
    readings = {name: system.read_sysctl(name) for name in keys.KEYS}
    report = rules.inspect(
        system.kernel_release(),
        readings,
        system.sockstat(),
        system.netstat(),
        read_conf_files(system) if entered(system) is None else [],
        read_kernel_cmdline(system) if entered(system) is None else None,
        boot_keys,
    )
    if report.all_unreadable():
        first = report.settings[0]
        raise EnvironmentProblem(
            f"cannot read any TCP setting under {system.path('proc/sys/net')}: {first.error}",
            hint="run where /proc/sys is readable (as root if needed), or fix --root",
        )
    return report


def initial_namespace(report: rules.CheckReport) -> bool | None:
    """Is this the host's own network namespace? tcp_max_orphans exists there alone."""
    for setting in report.settings:
        if setting.key == netns.INITIAL_ONLY_KEY:
            if setting.status == UNREADABLE:
                return None
            return setting.status != MISSING
    return None


def identity(system: System, report: rules.CheckReport) -> netns.Identity:
    return describe_netns(system, initial=initial_namespace(report))


def scopes(report: rules.CheckReport) -> dict[str, str | None]:
    """Per key: "netns" (this namespace's own value) or "global" (the host's, one for all)."""
    return {s.key: netns.key_scope(keys.KEYS[s.key], report.version) for s in report.settings}


def shows_scope(where: netns.Identity) -> bool:
    """The text names each key's scope where it matters: outside the host's own namespace."""
    return where.entered is not None or where.initial is False


NOT_AT_BOOT = (
    "not read: /etc/sysctl.d configures the host's boot, not this namespace; a container "
    "gets its values from its runtime (tcptune export PROFILE --format k8s|docker)"
)


def exit_code(report: rules.CheckReport, strict: bool) -> int:
    worst = report.worst()
    if worst == ERROR or (strict and worst == WARNING):
        return EXIT_DRIFT
    return EXIT_OK


def finding_counts(findings: list[Finding]) -> dict[str, int]:
    """Findings by severity: what the exit code follows (errors, and warnings with --strict)."""
    counts = {severity: 0 for severity in (ERROR, WARNING, INFO)}
    for finding in findings:
        counts[finding.severity] += 1
    return counts


def findings_exit_reason(counts: dict[str, int], strict: bool) -> str:
    """Why the findings make the exit code 1, or "" when they do not."""
    if counts[ERROR]:
        return f"{_plural(counts[ERROR], 'error-level finding')}"
    if strict and counts[WARNING]:
        return f"--strict and {_plural(counts[WARNING], 'warning-level finding')}"
    return ""


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def to_json(
    report: rules.CheckReport, root: str, strict: bool, code: int, where: netns.Identity
) -> dict[str, Any]:
    scope = scopes(report)
    return {
        "root": root,
        "netns": where.to_json(),
        "kernel": {
            "release": report.release,
            "version": list(report.version) if report.version else None,
        },
        "settings": [
            {
                "key": s.key,
                "value": s.value,
                "default": None if s.status == MISSING else s.default,
                "default_note": s.default_note or None,
                "status": s.status,
                "error": s.error or None,
                "scope": scope[s.key],
            }
            for s in report.settings
        ],
        "findings": [
            {"severity": f.severity, "key": f.key, "message": f.message, "source": f.source}
            for f in report.findings
        ],
        "sockstat_tcp": report.tcp_counts,
        "sockstat_tcp_scope": netns.SOCKSTAT_SCOPE,
        "summary": {**summary(report), "findings": finding_counts(report.findings)},
        "strict": strict,
        "exit_code": code,
    }


def summary(report: rules.CheckReport) -> dict[str, int]:
    counts = {status: 0 for status in ("ok", "warning", "error", "missing", "unreadable")}
    for setting in report.settings:
        counts[setting.status] = counts.get(setting.status, 0) + 1
    return counts


def write_text(
    report: rules.CheckReport,
    root: str,
    stream: IO[str],
    code: int,
    where: netns.Identity,
    strict: bool = False,
) -> None:
    colour = render.wants_colour(stream)
    kernel = report.release or "unknown"
    if report.version:
        kernel += f" (rules for {format_version(report.version[:2])})"
    below = "" if root == "/" else f", root {root}"
    render.write_line(stream, f"tcptune check: kernel {kernel}{below}", colour, "bold")
    with_scope = shows_scope(where)
    if with_scope:
        write_scope_note(where, stream)
    from tcptune.layout import Column

    columns: list[Any] = [
        Column(name="KEY", keep=True),
        "VALUE",
        Column(name="DEFAULT", drop=1),
        "STATUS",
    ]
    if with_scope:
        columns.append("SCOPE")
    scope = scopes(report)
    table = render.Table(columns)
    for s in report.settings:
        value = s.value if s.value is not None else "-"
        if s.value == "":
            value = '""'
        if s.status == MISSING:
            default = "-"  # no default on a kernel without the key
        else:
            default = s.default if s.default is not None else ("varies" if s.default_note else "?")
        if default == "":
            default = '""'
        style = render.STATUS_STYLE.get(s.status)
        cells, styles = [s.key, value, default, s.status], [None, None, "dim", style]
        if with_scope:
            cells.append(SCOPE_TEXT.get(scope[s.key] or "", "-"))
            styles.append(None if scope[s.key] == netns.NETNS else "yellow")
        table.add(cells, styles)
    table.write(stream, colour)
    render.write_findings(stream, report.findings, colour)
    counts = summary(report)
    parts = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    found = finding_counts(report.findings)
    listed = ", ".join(f"{n} {severity}" for severity, n in found.items() if n) or "none"
    stream.write(f"\n{len(report.settings)} keys: {parts}. Findings: {listed}. Exit {code}.\n")
    if code:
        stream.write(f"Exit 1: {findings_exit_reason(found, strict)}; see above.\n")
    stream.write("More on any key: tcptune explain KEY\n")


SCOPE_TEXT = {netns.NETNS: "netns", netns.GLOBAL: "host's global"}


def write_scope_note(where: netns.Identity, stream: IO[str]) -> None:
    """Which namespace the values are, and which of them are not its own."""
    stream.write(
        printable(where.describe())
        + "\nSCOPE netns: this namespace's own value; host's global: one value for the whole "
        "kernel, absent inside a namespace (tune it on the host). sockstat's orphan, alloc and "
        "mem counters are global too; inuse and tw are this namespace's.\n"
    )


# --- check PROFILE ------------------------------------------------------------------------------


def run_profile(
    system: System, name: str, *, json_output: bool, strict: bool, stream: IO[str]
) -> int:
    from tcptune import profiles

    profile = profiles.load(name, system.root)  # bad input is reported before anything is read
    report = gather(system, profile.sysctl)
    comparisons = compare_profile(system, profile, report)
    code = profile_exit_code(comparisons, report, strict)
    where = identity(system, report)
    doc = profile_to_json(profile, comparisons, report, str(system.root), strict, code, where)
    if json_output:
        render.write_json(stream, "check", doc)
    else:
        write_profile_text(doc, report, stream, where)
    return code


def compare_profile(
    system: System, profile: "Profile", report: rules.CheckReport
) -> list["Comparison"]:
    from tcptune import drift

    readings = {key: system.read_sysctl(key) for key in profile.sysctl}
    comparisons = drift.compare(profile.sysctl, profile.origin, readings, report.version)
    if entered(system) is not None:
        return comparisons  # the host's sysctl.d does not configure this namespace's boot
    return drift.with_boot(comparisons, report.boot_model())  # files read and parsed once


def profile_exit_code(
    comparisons: list["Comparison"], report: rules.CheckReport, strict: bool
) -> int:
    from tcptune import drift

    if any(c.status == drift.DRIFT for c in comparisons):
        return EXIT_DRIFT
    if any(c.status == UNREADABLE for c in comparisons):
        return EXIT_ENVIRONMENT
    return exit_code(report, strict)


def profile_to_json(
    profile: "Profile",
    comparisons: list["Comparison"],
    report: rules.CheckReport,
    root: str,
    strict: bool,
    code: int,
    where: netns.Identity,
) -> dict[str, Any]:
    from tcptune.sysctld import boot_json

    defaults = {s.key: s.default for s in report.settings}
    counts = {status: 0 for status in ("ok", "drift", "missing", "unreadable")}
    for c in comparisons:
        counts[c.status] += 1
    shown = profile_findings(report, set(profile.sysctl))
    return {
        "root": root,
        "netns": where.to_json(),
        "boot": NOT_AT_BOOT if where.entered is not None else None,
        "kernel": {
            "release": report.release,
            "version": list(report.version) if report.version else None,
        },
        "profile": {
            "name": profile.name,
            "path": str(profile.path),
            "description": profile.description,
            "extends": profile.chain[1:],
        },
        "in_sync": counts["drift"] == 0 and counts["unreadable"] == 0,
        "settings": [
            {
                "key": c.key,
                "value": c.value,
                "target": c.target,
                "default": defaults.get(c.key),
                "status": c.status,
                "in_sync": c.in_sync,
                "origin": c.origin,
                "reason": c.reason or None,
                "boot": boot_json(list(c.boot)) if c.boot else None,
                "boot_note": c.boot_note or None,
                "boot_summary": c.boot_summary or None,
                "scope": _scope_of(c.key, report),
            }
            for c in comparisons
        ],
        "findings": [
            {"severity": f.severity, "key": f.key, "message": f.message, "source": f.source}
            for f in shown
        ],
        "warnings": [str(w) for w in profile.warnings],
        "summary": {**counts, "findings": finding_counts(shown)},
        "strict": strict,
        "exit_code": code,
    }


def _scope_of(key: str, report: rules.CheckReport) -> str | None:
    spec = keys.KEYS.get(key)
    return netns.key_scope(spec, report.version) if spec is not None else None


def profile_findings(report: rules.CheckReport, keys: set[str]) -> list[Finding]:
    """The findings worth showing next to a profile: any about its keys, and every warning or
    error about the rest."""
    return [f for f in report.findings if f.key in keys or f.severity != INFO]


def write_profile_text(
    doc: dict[str, Any], report: rules.CheckReport, stream: IO[str], where: netns.Identity
) -> None:
    colour = render.wants_colour(stream)
    profile = doc["profile"]
    chain = " <- ".join([profile["name"], *profile["extends"]])
    kernel = report.release or "unknown"
    render.write_line(stream, f"tcptune check {chain}: kernel {kernel}", colour, "bold")
    if shows_scope(where):
        write_scope_note(where, stream)
    if doc["boot"]:
        stream.write(f"AT BOOT {doc['boot']}\n")
    for warning in doc["warnings"]:
        stream.write(printable(f"warning: {warning}") + "\n")
    from tcptune.layout import Column

    table = render.Table(
        [
            Column(name="KEY", keep=True),
            "LIVE",
            "TARGET",
            "STATUS",
            Column(name="WHY", note=True),
            Column(name="AT BOOT", note=True),
            Column(name="FROM", drop=1),
        ]
    )
    for s in doc["settings"]:
        live = "-" if s["value"] is None else (s["value"] or '""')
        table.add(
            [
                s["key"],
                live,
                s["target"] or '""',
                s["status"],
                s["reason"] or "",
                s["boot_summary"] or "",
                s["origin"],
            ],
            [None, None, None, render.STATUS_STYLE.get(s["status"]), None, None, "dim"],
        )
    table.write(stream, colour)
    shown = profile_findings(report, {s["key"] for s in doc["settings"]})
    render.write_findings(stream, shown, colour)
    counts = {k: v for k, v in doc["summary"].items() if k != "findings"}
    parts = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    verdict = "in sync" if doc["in_sync"] else "NOT in sync"
    found = doc["summary"]["findings"]
    listed = ", ".join(f"{n} {severity}" for severity, n in found.items() if n) or "none"
    code = doc["exit_code"]
    stream.write(
        f"\n{len(doc['settings'])} keys: {parts}. {verdict}. Findings: {listed}. Exit {code}.\n"
    )
    if code == EXIT_DRIFT and doc["in_sync"]:
        stream.write(f"Exit 1: {findings_exit_reason(found, doc['strict'])}; see above.\n")


# --- check [PROFILE] --format prometheus ---------------------------------------------------------


def run_prometheus(
    system: System, profile_name: str | None, *, strict: bool, output: str | None, stream: IO[str]
) -> int:
    """The same check as metrics (tcptune.metrics), printed or written to --output, which is
    refused before anything is read."""
    import time

    from tcptune import metrics
    from tcptune.cli import prometheus

    with prometheus.target(output) as target:
        if profile_name is None:
            report = gather(system)
            code = exit_code(report, strict)
            where = identity(system, report)
            text = metrics.check(
                report.findings,
                netns=where.inode,
                netns_owner=where.owner.label,
                now=time.time(),
            )
        else:
            from tcptune import profiles

            profile = profiles.load(profile_name, system.root)
            report = gather(system)
            comparisons = compare_profile(system, profile, report)
            code = profile_exit_code(comparisons, report, strict)
            where = identity(system, report)
            text = metrics.check_profile(
                profile.name,
                [
                    metrics.Setting(
                        key=c.key,
                        target=c.target,
                        in_sync=c.in_sync,
                        persisted=tuple((p.loader, p.survives) for p in c.boot),
                    )
                    for c in comparisons
                ],
                profile_findings(report, set(profile.sysctl)),
                netns=where.inode,
                netns_owner=where.owner.label,
                now=time.time(),
            )
        prometheus.emit(text, target, stream)
    return code
