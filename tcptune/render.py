"""Output: a versioned JSON envelope, rich tables on a terminal, plain text everywhere else.

rich is imported only when a terminal will show colour; JSON and plain text use the standard
library alone, which keeps `tcptune check --json` fast in CI.
"""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from tcptune import __version__
from tcptune.errors import printable
from tcptune.model import SEVERITY_RANK, Finding

SCHEMA_VERSION = 2

SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "error": "bold red"}
STATUS_STYLE = {
    "ok": "green",
    "warning": "yellow",
    "error": "bold red",
    "missing": "dim",
    "unreadable": "magenta",
    "drift": "bold yellow",
    "skipped": "dim",
}


def wants_colour(stream: IO[str]) -> bool:
    """Rich output only for a real terminal, and never with NO_COLOR (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def write_json(stream: IO[str], command: str, payload: dict[str, Any]) -> None:
    if isinstance(stream, Fitted):
        stream = stream.stream  # JSON is never folded
    document = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "tcptune", "version": __version__},
        "command": command,
        **payload,
    }
    # One write of the whole document: a reader never sees half of one.
    stream.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def write_json_list(stream: IO[str], command: str, payloads: list[dict[str, Any]]) -> None:
    """A JSON list of documents, each as write_json would print it alone (`sockets --all-netns
    --json`: one per network namespace), in one write."""
    if isinstance(stream, Fitted):
        stream = stream.stream
    header = {"schema_version": SCHEMA_VERSION, "tool": {"name": "tcptune", "version": __version__}}
    documents = [{**header, "command": command, **payload} for payload in payloads]
    stream.write(json.dumps(documents, indent=2, ensure_ascii=False) + "\n")


def _terminal(variable: str, field: str) -> int | None:
    """$COLUMNS or $LINES when set to a number; else the terminal's size (stdout's, else
    stderr's, so that a pager reading a pipe still fits the screen behind it); else None."""
    raw = os.environ.get(variable, "")
    if raw.isdigit():
        return int(raw)
    for fd in (1, 2):
        try:
            return int(getattr(os.get_terminal_size(fd), field))
        except OSError:
            continue
    return None


def width() -> int:
    """The width to fit output into ($COLUMNS, the terminal's, else 100), 40 to 200."""
    return max(40, min(_terminal("COLUMNS", "columns") or 100, 200))


def height() -> int:
    """The rows a frame may take ($LINES, the terminal's, else 24), at least 8."""
    rows = _terminal("LINES", "lines")
    return max(24 if rows is None else rows, 8)


class Fitted:
    """A text stream that folds each line wider than `width` at spaces, the continuation
    indented under the line's own indent: what the command prints fits the terminal. Lines
    that carry terminal escapes come from rich, which fits them itself, and pass as they are."""

    def __init__(self, stream: IO[str], fit_width: int | None = None) -> None:
        self.stream = stream
        self.width = fit_width or width()
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.stream.write("\n".join(fold(line, self.width)) + "\n")
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.stream.write("\n".join(fold(self.pending, self.width)))
            self.pending = ""
        self.stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self.stream.fileno()


@contextmanager
def fitted_stdout() -> Iterator[IO[str]]:
    """sys.stdout as a Fitted stream, for a command's text output; its last line is written
    when the command is done."""
    import sys

    stream = Fitted(sys.stdout)
    try:
        yield stream  # type: ignore[misc]
    finally:
        if stream.pending:
            stream.flush()


def fold(line: str, fit_width: int) -> list[str]:
    """`line` as lines of at most `fit_width` characters."""
    if len(line) <= fit_width or "\x1b" in line:
        return [line]
    import textwrap

    indent = " " * min(len(line) - len(line.lstrip(" ")) + 2, fit_width // 2)
    return textwrap.wrap(
        line,
        fit_width,
        subsequent_indent=indent,
        break_on_hyphens=False,
        drop_whitespace=True,
    ) or [line[:fit_width]]


class Table:
    """A small table that prints as rich (terminal) or aligned plain text (pipes, files), fitted
    to the width (tcptune.layout): names whole, long text as notes below, the least important
    columns left out, and said so."""

    def __init__(self, columns: "list[Any]", title: str = "") -> None:
        """`columns`: names, or tcptune.layout.Column for columns that may give way."""
        self.columns = columns
        self.title = title
        self.rows: list[tuple[list[str], list[str | None]]] = []

    def add(self, cells: list[str], styles: list[str | None] | None = None) -> None:
        """One row; control characters in cells (names, paths, values from files) are shown
        escaped, so a row stays one row and cannot move the cursor."""
        self.rows.append(([printable(cell) for cell in cells], styles or [None] * len(cells)))

    def write(self, stream: IO[str], colour: bool, fit_width: int | None = None) -> None:
        from tcptune.layout import Column, fit, note_lines

        columns = [c if isinstance(c, Column) else Column(name=c) for c in self.columns]
        total = fit_width or width()
        gap, edge = 2, (2 if colour else 0)
        layout = fit(columns, [cells for cells, _ in self.rows], total, gap, edge)
        if colour:
            self._write_rich(stream, columns, layout, total)
        else:
            self._write_plain(stream, columns, layout)
        if layout.notes:
            stream.write("\n" + "\n".join(note_lines(layout.notes, total)) + "\n")
        if layout.dropped:
            stream.write(
                f"(not shown at {total} columns: {', '.join(layout.dropped)}; "
                "a wider terminal or --json shows them)\n"
            )

    def _write_plain(self, stream: IO[str], columns: "list[Any]", layout: Any) -> None:
        if self.title:
            stream.write(self.title + "\n")
        header = [[columns[i].name] for i in layout.columns]
        for row in [header, *layout.rows]:
            for n in range(max(len(cell) for cell in row)):
                parts = [
                    (cell[n] if n < len(cell) else "").ljust(w)
                    for cell, w in zip(row, layout.widths, strict=True)
                ]
                stream.write("  ".join(parts).rstrip() + "\n")

    def _write_rich(self, stream: IO[str], columns: "list[Any]", layout: Any, total: int) -> None:
        import rich.table
        from rich import box
        from rich.console import Console

        table = rich.table.Table(
            title=self.title or None, box=box.SIMPLE_HEAD, title_justify="left"
        )
        for i, w in zip(layout.columns, layout.widths, strict=True):
            table.add_column(columns[i].name, no_wrap=True, min_width=w, max_width=w)
        for (_, styles), lines in zip(self.rows, layout.rows, strict=True):
            table.add_row(
                *[
                    f"[{s}]{_escape(c)}[/]" if s else _escape(c)
                    for c, s in zip(
                        ["\n".join(cell) for cell in lines],
                        [styles[i] for i in layout.columns],
                        strict=True,
                    )
                ]
            )
        Console(file=stream, highlight=False, width=total).print(table)


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def write_findings(
    stream: IO[str], findings: list[Finding], colour: bool, heading: str = "Findings"
) -> None:
    """Findings as readable paragraphs: severity and key, the message, then the source."""
    if not findings:
        return
    findings = sorted(findings, key=lambda f: -SEVERITY_RANK.get(f.severity, -1))  # worst first
    if colour:
        import rich.table
        from rich.console import Console

        console = Console(file=stream, highlight=False)
        console.print(f"\n[bold]{heading}[/]")
        grid = rich.table.Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column()
        for f in findings:
            style = SEVERITY_STYLE.get(f.severity, "")
            grid.add_row(
                f"  [{style}]{f.severity}[/]",
                f"[bold]{_escape(f.key)}[/]\n{_escape(f.message)}\n"
                f"[dim]source: {_escape(f.source)}[/]",
            )
        console.print(grid)
        return
    import textwrap

    stream.write("\n" + heading + "\n")
    wrap = width() - 10
    for f in findings:
        stream.write(f"  {f.severity:<7} {f.key}\n")
        for line in textwrap.wrap(f.message, wrap):
            stream.write(f"          {line}\n")
        for line in textwrap.wrap(f"source: {f.source}", wrap):
            stream.write(f"          {line}\n")


def write_line(stream: IO[str], text: str, colour: bool, style: str = "") -> None:
    """One line: control characters in `text` (from names, paths, files) are shown escaped."""
    text = printable(text)
    if colour and style:
        from rich.console import Console

        Console(file=stream, highlight=False).print(f"[{style}]{_escape(text)}[/]")
    else:
        stream.write(text + "\n")


def results_json(results: list[Any]) -> list[dict[str, Any]]:
    """What an apply or a revert did per key (`key`, `outcome`, `detail`), for --json."""
    return [{"key": r.key, "outcome": r.outcome, "detail": r.detail or None} for r in results]


def write_results(stream: IO[str], results: list[Any], width: int) -> None:
    """What an apply or a revert did per key, one line each: outcome, key, and why."""
    for r in results:
        detail = f": {r.detail}" if r.detail else ""
        stream.write(printable(f"  {r.outcome:<{width}} {r.key}{detail}") + "\n")
