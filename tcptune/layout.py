"""Pure: fit a table into a width, as a person on an 80-column terminal needs it.

A table's columns say how they may give way: names (keys, profiles, ids) never wrap and are never
dropped; long explanations move below the table as numbered notes; the least important columns
are dropped, and the table says which; values wrap as a last resort. Used by tcptune.render for
both the rich and the plain form, so a pipe and a terminal show the same layout.
"""

import textwrap
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class Column:
    """How one column gives way when the table is too wide."""

    name: str
    keep: bool = False  # a name: never wrapped, never dropped, never moved
    note: bool = False  # long text: a cell too long to fit moves below the table as a note
    drop: int = 0  # > 0: may be dropped, the highest first; 0: never dropped
    shorten: bool = False  # a path: cut in the middle ("/usr/…/x.toml") instead of wrapped


@dataclass(frozen=True, kw_only=True, slots=True)
class Layout:
    """What to print: the columns shown, their widths, the rows' lines, the notes."""

    columns: list[int]  # indices into the table's columns, in order
    widths: list[int]  # one per shown column
    rows: list[list[list[str]]]  # per row, per shown column, the cell's lines
    notes: list[str]  # "[1] text", in order
    dropped: list[str]  # names of the columns left out


def fit(
    columns: list[Column], rows: list[list[str]], width: int, gap: int, edge: int = 0
) -> Layout:
    """Lay out `rows` within `width`: `gap` spaces between columns and `edge` in all around it
    (rich pads the table's sides)."""
    cells = [list(row) for row in rows]
    # A column with nothing in it (no reasons to give, say) is not shown at all.
    shown = [i for i, c in enumerate(columns) if c.keep or any(row[i] for row in cells)]
    notes: list[str] = []

    def natural(i: int) -> int:
        return max([len(columns[i].name)] + [len(row[i]) for row in cells])

    def total(indices: list[int]) -> int:
        return sum(natural(i) for i in indices) + gap * (len(indices) - 1) + edge

    # 1. The least important columns are dropped, highest `drop` first, while the table does not
    # fit even with its long text moved below it.
    def compact(indices: list[int]) -> int:
        return (
            sum(len(columns[i].name) if columns[i].note else natural(i) for i in indices)
            + gap * (len(indices) - 1)
            + edge
        )

    dropped = []
    for j in sorted((j for j in shown if columns[j].drop > 0), key=lambda j: -columns[j].drop):
        if total(shown) <= width or compact(shown) <= width:
            break
        shown.remove(j)
        dropped.append(columns[j].name)
    # 2. Long text moves below the table: every cell of the note columns longer than a cap,
    # the largest cap with which the table fits.
    movable = [i for i in shown if columns[i].note]
    if movable and total(shown) > width:
        fixed = sum(natural(i) for i in shown if i not in movable)
        room = width - fixed - gap * (len(shown) - 1) - edge

        def needed(cap: int) -> int:
            result = 0
            for i in movable:
                kept = [len(row[i]) for row in cells if len(row[i]) <= cap]
                moved = len(kept) < len(cells)
                result += max([len(columns[i].name), 4 if moved else 0, *kept])
            return result

        cap = max((natural(i) for i in movable), default=0)
        while cap > 0 and needed(cap) > room:
            cap -= 1
        for row in cells:
            for i in movable:
                if len(row[i]) > cap:
                    notes.append(f"[{len(notes) + 1}] {row[0]}: {row[i]}")
                    row[i] = f"[{len(notes)}]"
    # 3. Last: the columns that are not names share what is left, and their cells wrap.
    widths = [natural(i) for i in shown]
    over = total(shown) - width
    # Paths give way first (cut in the middle, down to 20 characters), then the widest of the
    # other columns that are not names, one character at a time.
    for k, i in enumerate(shown):
        if columns[i].shorten and over > 0:
            names = max(len(row[i].rsplit("/", 1)[-1]) + 2 for row in cells)
            floor = max(len(columns[i].name), min(widths[k], max(20, names)))
            cut = min(over, max(widths[k] - floor, 0))
            widths[k] -= cut
            over -= cut
    flexible = [k for k, i in enumerate(shown) if not columns[i].keep]
    while over > 0 and flexible:
        k = max(flexible, key=lambda k: widths[k])
        floor = max(len(columns[shown[k]].name), 6)
        if widths[k] <= floor:
            flexible.remove(k)
            continue
        widths[k] -= 1
        over -= 1
    lines = [
        [_cell(row[i], w, columns[i]) for i, w in zip(shown, widths, strict=True)] for row in cells
    ]
    return Layout(columns=shown, widths=widths, rows=lines, notes=notes, dropped=dropped)


def _cell(text: str, width: int, column: Column) -> list[str]:
    if column.keep or len(text) <= width:
        return [text]
    if column.shorten:
        return [shorten_path(text, width)]
    return _wrap(text, width)


def shorten_path(text: str, width: int) -> str:
    """`text` cut to `width` by an ellipsis after its first component, keeping the end (the
    file name): /usr/lib/python3/dist-packages/tcptune/x.toml -> /usr/…/tcptune/x.toml."""
    if len(text) <= width:
        return text
    head = text[: text.find("/", 1) + 1] if text.startswith("/") and "/" in text[1:] else ""
    name = text.rsplit("/", 1)[-1]
    if len(head) + 2 + len(name) > width:
        head = ""  # the file name matters more than where the path starts
    tail = text[len(text) - (width - len(head) - 1) :]
    if "/" in tail and not tail.startswith("/"):
        tail = tail[tail.index("/") :]  # cut at a directory, not inside a name
    return f"{head}…{tail}"


def _wrap(text: str, width: int) -> list[str]:
    if len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def note_lines(notes: list[str], width: int) -> list[str]:
    """The notes wrapped to `width`, continuation lines indented under the text."""
    result = []
    for note in notes:
        marker, _, text = note.partition(" ")
        indent = " " * (len(marker) + 1)
        result += textwrap.wrap(
            text,
            max(width, 20),
            initial_indent=marker + " ",
            subsequent_indent=indent,
            break_on_hyphens=False,
        )
    return result
