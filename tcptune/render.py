"""Output: a versioned JSON envelope, rich tables on a terminal, plain text everywhere else.

rich is imported only when a terminal will show colour; JSON and plain text use the standard
library alone, which keeps `tcptune check --json` fast in CI.
"""

import json
import os
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
    document = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "tcptune", "version": __version__},
        "command": command,
        **payload,
    }
    # One write of the whole document: a reader never sees half of one.
    stream.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def width() -> int:
    import shutil

    return max(60, min(shutil.get_terminal_size((100, 24)).columns, 160))


class Table:
    """A small table that prints as rich (terminal) or aligned plain text (pipes, files)."""

    def __init__(self, columns: list[str], title: str = "") -> None:
        self.columns = columns
        self.title = title
        self.rows: list[tuple[list[str], list[str | None]]] = []

    def add(self, cells: list[str], styles: list[str | None] | None = None) -> None:
        """One row; control characters in cells (names, paths, values from files) are shown
        escaped, so a row stays one row and cannot move the cursor."""
        self.rows.append(([printable(cell) for cell in cells], styles or [None] * len(cells)))

    def write(self, stream: IO[str], colour: bool) -> None:
        if colour:
            self._write_rich(stream)
        else:
            self._write_plain(stream)

    def _write_plain(self, stream: IO[str]) -> None:
        if self.title:
            stream.write(self.title + "\n")
        widths = [len(c) for c in self.columns]
        for cells, _ in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, cells, strict=True)]
        lines = [self.columns] + [cells for cells, _ in self.rows]
        for cells in lines:
            text = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
            stream.write(text.rstrip() + "\n")

    def _write_rich(self, stream: IO[str]) -> None:
        import rich.table
        from rich import box
        from rich.console import Console

        table = rich.table.Table(
            title=self.title or None, box=box.SIMPLE_HEAD, title_justify="left"
        )
        for column in self.columns:
            table.add_column(column, overflow="fold")
        for cells, styles in self.rows:
            table.add_row(
                *[
                    f"[{s}]{_escape(c)}[/]" if s else _escape(c)
                    for c, s in zip(cells, styles, strict=True)
                ]
            )
        Console(file=stream, highlight=False).print(table)


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
