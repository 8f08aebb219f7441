"""The shared part of `sockets --format prometheus` and `check [PROFILE] --format prometheus`:
--output FILE, checked first and written atomically at the end (for node_exporter's textfile
collector), and the CLOSE_WAIT growth state that `sockets --output` keeps in /var/lib/tcptune
(below --root). Each command's own run_prometheus gathers what it shows; tcptune.metrics makes the
text.

Imported only when --format prometheus is asked for: `check --json` does not load it.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tcptune import metrics, rates
from tcptune.errors import BadInput, EnvironmentProblem, say
from tcptune.system import Directory, OutputFile, System, boot_id, state_directory


def check_top(top: int) -> None:
    if top > metrics.MAX_TOP:
        raise BadInput(
            f"--top {top} with --format prometheus: at most {metrics.MAX_TOP} owners and "
            "destinations are exported, so that the number of series stays bounded",
            hint=f"use --top {metrics.MAX_TOP} or less",
        )


@contextmanager
def target(output: str | None) -> Iterator[OutputFile | None]:
    """--output, refused (exit 3) before anything is counted; None: print to stdout."""
    if output is None:
        yield None
        return
    opened = OutputFile(Path(output))
    try:
        yield opened
    finally:
        opened.close()


def emit(text: str, output: OutputFile | None, stream: IO[str]) -> None:
    if output is None:
        stream.write(text)
    else:
        output.write(text.encode())


def write_sockets(
    system: System, report: Any, *, top: int, output: OutputFile | None, stream: IO[str]
) -> None:
    """A `sockets` report (tcptune.cli.sockets.SocketsReport) as metrics; with --output, the
    CLOSE_WAIT growth since the previous run, whose state is replaced after the file."""
    now = time.time()
    netns = report.netns.inode
    after = rates.snapshot(
        report.facts.owners,
        report.facts.census.states["CLOSE_WAIT"],
        time=now,
        boot_id=boot_id(system),
        netns=netns,
    )
    state, previous = read_state(system) if output is not None else (None, None)
    try:
        text = metrics.sockets(
            report.facts,
            report.findings,
            top=top,
            netns=netns,
            netns_owner=report.netns.owner.label,
            now=now,
            growth=rates.growth(previous, after),
        )
        emit(text, output, stream)
        if state is not None:
            write_state(state, after)
    finally:
        if state is not None:
            state.close()


def write_all_sockets(
    reports: list[Any], *, top: int, output: OutputFile | None, stream: IO[str]
) -> None:
    """`sockets --all-netns`: every namespace's census in one exposition (each family once, a
    series per namespace, labelled with its inode and owner). No CLOSE_WAIT growth: the state
    file follows one namespace."""
    now = time.time()
    out = metrics.Exposition()
    for report in reports:
        metrics.add_sockets(
            out,
            report.facts,
            report.findings,
            top=top,
            ns=metrics.namespace_labels(report.netns.inode, report.netns.owner.label),
            now=now,
        )
    emit(out.text(), output, stream)


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
