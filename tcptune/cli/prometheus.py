"""`sockets --format prometheus` and `check [PROFILE] --format prometheus`: the metrics, printed
or written atomically to --output FILE for node_exporter's textfile collector.

Imported only when --format prometheus is asked for: `check --json` does not load it. With
--output, `sockets` also keeps the CLOSE_WAIT owners' counts in /var/lib/tcptune (below --root)
to give their growth since the previous run.
"""

import time
from pathlib import Path
from typing import IO

from tcptune import metrics, rates
from tcptune.cli import check as check_command
from tcptune.cli import sockets as sockets_command
from tcptune.errors import BadInput, EnvironmentProblem, say
from tcptune.system import Directory, OutputFile, System, boot_id, netns_id, state_directory


def check_top(top: int) -> None:
    if top > metrics.MAX_TOP:
        raise BadInput(
            f"--top {top} with --format prometheus: at most {metrics.MAX_TOP} owners and "
            "destinations are exported, so that the number of series stays bounded",
            hint=f"use --top {metrics.MAX_TOP} or less",
        )


def emit(text: str, output: OutputFile | None, stream: IO[str]) -> None:
    if output is None:
        stream.write(text)
    else:
        output.write(text.encode())


def run_sockets(
    system: System, *, top: int, source: str, output: str | None, stream: IO[str]
) -> int:
    check_top(top)
    sockets_command.check_source(system, source)
    target = OutputFile(Path(output)) if output is not None else None  # refused before counting
    try:
        report = sockets_command.look(system, source, top)
        now = time.time()
        netns = netns_id(system)
        after = rates.snapshot(
            report.facts.owners,
            report.facts.census.states["CLOSE_WAIT"],
            time=now,
            boot_id=boot_id(system),
            netns=netns,
        )
        state = previous = None
        if target is not None:  # the timer's run: growth since the previous one
            state, previous = read_state(system)
        try:
            text = metrics.sockets(
                report.facts,
                report.findings,
                top=top,
                netns=netns,
                now=now,
                growth=rates.growth(previous, after),
            )
            emit(text, target, stream)
            if state is not None:
                write_state(state, after)
        finally:
            if state is not None:
                state.close()
    finally:
        if target is not None:
            target.close()
    return report.exit_code()


def read_state(system: System) -> tuple[Directory | None, rates.Snapshot | None]:
    """The state directory, open, and the previous run's snapshot. A state directory this
    process cannot use leaves the growth out, with a warning; a state file that does not parse
    is replaced (the growth starts again). A symlink there is refused (exit 2)."""
    path = system.path(rates.STATE_DIR)
    try:
        directory = state_directory(path)
    except EnvironmentProblem as problem:
        say(f"warning: {problem.line()}; CLOSE_WAIT growth left out")
        return None, None
    try:
        data = directory.read(rates.STATE_FILE, rates.MAX_STATE_BYTES)
    except OSError as err:
        directory.close()
        raise BadInput(
            f"{path / rates.STATE_FILE} is not a regular file ({err.strerror or err}); "
            "refusing to read or replace it",
            hint="remove it",
        ) from None
    if data is None:
        return directory, None
    try:
        return directory, rates.from_json(data)
    except ValueError as err:
        say(f"warning: ignored {path / rates.STATE_FILE}: {err}; CLOSE_WAIT growth starts again")
        return directory, None


def write_state(directory: Directory, snapshot: rates.Snapshot) -> None:
    try:
        directory.replace(rates.STATE_FILE, rates.to_json(snapshot), 0o600)
    except OSError as err:
        say(
            f"warning: cannot write {directory.path / rates.STATE_FILE}: "
            f"{err.strerror or err}; the next run has no CLOSE_WAIT growth"
        )


def run_check(
    system: System,
    profile_name: str | None,
    *,
    strict: bool,
    output: str | None,
    stream: IO[str],
) -> int:
    target = OutputFile(Path(output)) if output is not None else None
    try:
        if profile_name is None:
            report = check_command.gather(system)
            code = check_command.exit_code(report, strict)
            text = metrics.check(report.findings, netns=netns_id(system), now=time.time())
        else:
            from tcptune import profiles

            profile = profiles.load(profile_name, system.root)
            report = check_command.gather(system)
            comparisons = check_command.compare_profile(system, profile, report)
            code = check_command.profile_exit_code(comparisons, report, strict)
            settings = [
                metrics.Setting(key=c.key, target=c.target, in_sync=c.in_sync) for c in comparisons
            ]
            text = metrics.check_profile(
                profile.name,
                settings,
                list(report.conf_files),
                check_command.profile_findings(report, set(profile.sysctl)),
                netns=netns_id(system),
                now=time.time(),
            )
        emit(text, target, stream)
    finally:
        if target is not None:
            target.close()
    return code
