"""tcptune.layout: a table fitted into a terminal's width, by its promises.

Three tables worked out by hand, then the promises of the module's docstring as properties over
any table: names are never wrapped, moved or dropped; a table that fits is shown as it is; long
text moves below as numbered notes naming their row; only droppable columns are dropped, the
least important first; wrapping never loses a character; a cut path keeps its file name.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tcptune.layout import Column, Layout, fit, note_lines, shorten_path

SETTINGS = settings(max_examples=100, deadline=None)

KEY = Column(name="KEY", keep=True)
VALUE = Column(name="VALUE")
WHY = Column(name="WHY", note=True)
SOURCE = Column(name="SOURCE", drop=1)
ROW = ["net.ipv4.tcp_tw_reuse", "1", "a long explanation text here", "docs/ip-sysctl.rst"]


def test_a_table_that_fits_is_shown_as_it_is() -> None:
    # KEY 21, VALUE 5 (its name), WHY 28: 54 plus two gaps of 2 = 58 <= 60
    assert fit([KEY, VALUE, WHY], [ROW[:3]], 60, 2) == Layout(
        columns=[0, 1, 2],
        widths=[21, 5, 28],
        rows=[[["net.ipv4.tcp_tw_reuse"], ["1"], ["a long explanation text here"]]],
        notes=[],
        dropped=[],
    )


def test_long_text_moves_below_the_table() -> None:
    # at 40 the explanation (28) leaves 40 - 21 - 5 - 4 = 10 columns: it becomes note [1]
    assert fit([KEY, VALUE, WHY], [ROW[:3]], 40, 2) == Layout(
        columns=[0, 1, 2],
        widths=[21, 5, 3],
        rows=[[["net.ipv4.tcp_tw_reuse"], ["1"], ["[1]"]]],
        notes=["[1] net.ipv4.tcp_tw_reuse: a long explanation text here"],
        dropped=[],
    )


def test_a_droppable_column_goes_first_and_a_name_stays_whole() -> None:
    # at 30 even with the note moved the table needs 21 + 5 + 3 + 18 + 6: SOURCE is dropped;
    # then 21 + 5 + 3 + 4 = 33 is still over 30, but the key is a name and never wraps
    layout = fit([KEY, VALUE, WHY, SOURCE], [ROW], 30, 2)
    assert layout.dropped == ["SOURCE"] and layout.columns == [0, 1, 2]
    assert layout.rows == [[["net.ipv4.tcp_tw_reuse"], ["1"], ["[1]"]]]
    assert layout.notes == ["[1] net.ipv4.tcp_tw_reuse: a long explanation text here"]


def test_values_wrap_as_a_last_resort() -> None:
    # no note column, nothing droppable: VALUE gives way down to its floor and wraps
    rows = [["k", "alpha beta gamma delta"]]
    layout = fit([KEY, VALUE], rows, 15, 2)
    assert layout.widths == [3, 10]  # 3 + 2 + 10 = 15
    assert layout.rows == [[["k"], ["alpha beta", "gamma", "delta"]]]


def test_the_most_droppable_column_goes_first() -> None:
    columns = [KEY, Column(name="A", drop=1), Column(name="B", drop=2), Column(name="C")]
    rows = [["key", "a" * 10, "b" * 10, "c"]]
    # everything: 3 + 10 + 10 + 1 + 3 gaps = 27; without B: 3 + 10 + 1 + 2 = 16
    assert fit(columns, rows, 20, 1).dropped == ["B"]
    assert fit(columns, rows, 10, 1).dropped == ["B", "A"]
    assert fit(columns, rows, 27, 1).dropped == []


def test_an_empty_column_is_not_shown_unless_it_is_a_name() -> None:
    columns = [KEY, Column(name="REASON"), Column(name="ID", keep=True)]
    layout = fit(columns, [["k", "", ""], ["l", "", ""]], 80, 2)
    assert layout.columns == [0, 2]


def test_the_edge_counts_against_the_width() -> None:
    rows = [["k", "0123456789"]]
    assert fit([KEY, VALUE], rows, 15, 2).rows == [[["k"], ["0123456789"]]]
    # KEY is 3 wide (its name): 3 + 2 + 10 = 15 fits; with an edge of 4 it is 19, and the value
    # gives way by 4, to 6
    assert fit([KEY, VALUE], rows, 15, 2, edge=4).rows == [[["k"], ["012345", "6789"]]]


# --- properties -------------------------------------------------------------------------------

WORD = st.text(alphabet="abcdefghij", min_size=1, max_size=12)
TEXT = st.lists(WORD, min_size=0, max_size=8).map(" ".join)
PATH = st.lists(WORD, min_size=1, max_size=6).map(lambda parts: "/" + "/".join(parts))


@st.composite
def tables(draw):
    count = draw(st.integers(1, 5))
    columns = [Column(name="NAME", keep=True)]  # as every tcptune table: a name first
    for n in range(1, count):
        kind = draw(st.sampled_from(["plain", "keep", "note", "drop", "path"]))
        columns.append(
            Column(
                name=f"C{n}" * draw(st.integers(1, 3)),
                keep=kind == "keep",
                note=kind == "note",
                drop=draw(st.integers(1, 3)) if kind == "drop" else 0,
                shorten=kind == "path",
            )
        )
    rows = []
    for _ in range(draw(st.integers(0, 5))):
        row = [draw(WORD)]
        for column in columns[1:]:
            row.append(draw(PATH if column.shorten else WORD if column.keep else TEXT))
        rows.append(row)
    return columns, rows, draw(st.integers(10, 160)), draw(st.integers(1, 3))


def natural_width(columns, rows, gap) -> int:
    shown = [i for i, c in enumerate(columns) if c.keep or any(r[i] for r in rows)]
    return sum(
        max(len(columns[i].name), *(len(r[i]) for r in rows)) if rows else len(columns[i].name)
        for i in shown
    ) + gap * (len(shown) - 1)


@SETTINGS
@given(tables())
def test_names_are_never_wrapped_moved_or_dropped(table) -> None:
    columns, rows, width, gap = table
    layout = fit(columns, rows, width, gap)
    for i, column in enumerate(columns):
        if column.keep:
            k = layout.columns.index(i)
            assert [lines[k] for lines in layout.rows] == [[row[i]] for row in rows]
    assert not set(layout.dropped) & {c.name for c in columns if c.keep or not c.drop}


@SETTINGS
@given(tables())
def test_a_table_that_fits_is_left_alone(table) -> None:
    columns, rows, width, gap = table
    layout = fit(columns, rows, width, gap)
    if natural_width(columns, rows, gap) <= width:
        assert layout.dropped == [] and layout.notes == []
        assert layout.rows == [[[row[i]] for i in layout.columns] for row in rows]


@SETTINGS
@given(tables())
def test_dropped_columns_least_important_first(table) -> None:
    columns, rows, width, gap = table
    layout = fit(columns, rows, width, gap)
    by_name = {c.name: c for c in columns}
    drops = [by_name[name].drop for name in layout.dropped]
    assert drops == sorted(drops, reverse=True)
    # a dropped column is never shown, and every column with something in it is one or the other
    shown_names = [columns[i].name for i in layout.columns]
    assert not set(shown_names) & set(layout.dropped)
    for i, column in enumerate(columns):
        if column.keep or any(row[i] for row in rows):
            assert column.name in shown_names or column.name in layout.dropped


@SETTINGS
@given(tables())
def test_notes_are_numbered_in_order_and_name_their_row(table) -> None:
    columns, rows, width, gap = table
    layout = fit(columns, rows, width, gap)
    markers = []
    for row, lines in zip(rows, layout.rows, strict=True):
        for k, i in enumerate(layout.columns):
            if columns[i].note and lines[k] != [row[i]] and lines[k][0].startswith("["):
                markers.append((lines[k], f"{row[0]}: {row[i]}"))
    assert len(markers) == len(layout.notes)
    for number, ((cell, text), note) in enumerate(zip(markers, layout.notes, strict=True), 1):
        assert cell == [f"[{number}]"]
        assert note == f"[{number}] {text}"


@SETTINGS
@given(tables())
def test_wrapping_loses_no_character_and_keeps_to_the_width(table) -> None:
    columns, rows, width, gap = table
    layout = fit(columns, rows, width, gap)
    for row, lines in zip(rows, layout.rows, strict=True):
        for k, i in enumerate(layout.columns):
            column, cell = columns[i], lines[k]
            if column.keep or column.shorten or (column.note and cell[0].startswith("[")):
                continue
            assert "".join(cell).replace(" ", "") == row[i].replace(" ", "")
            assert all(len(line) <= layout.widths[k] for line in cell), (cell, layout.widths[k])


@SETTINGS
@given(PATH, st.integers(3, 80))
def test_a_cut_path_keeps_its_file_name(path: str, width: int) -> None:
    short = shorten_path(path, width)
    name = path.rsplit("/", 1)[-1]
    if len(path) <= width:
        assert short == path
        return
    assert len(short) <= width and "…" in short
    head, _, tail = short.partition("…")
    assert path.startswith(head) and path.endswith(tail)
    if len(name) + 2 <= width:
        assert short.endswith("/" + name) or short == "…" + name
    if tail and "/" in tail:
        assert tail.startswith("/")  # cut at a directory, not inside a name
    first = path[: path.find("/", 1) + 1] if "/" in path[1:] else ""
    if first and len(first) + 2 + len(name) <= width:
        assert head == first


def test_a_cut_path_by_hand() -> None:
    path = "/usr/lib/python3/dist-packages/tcptune/x.toml"
    assert shorten_path(path, 24) == "/usr/…/tcptune/x.toml"
    assert shorten_path(path, 13) == "/usr/…/x.toml"
    assert shorten_path(path, 12) == "…/x.toml"  # the name matters more than the start
    assert shorten_path(path, len(path)) == path


def test_notes_wrap_under_their_text() -> None:
    notes = ["[1] alpha beta gamma delta epsilon zeta eta theta iota kappa", "[12] short"]
    assert note_lines(notes, 30) == [
        "[1] alpha beta gamma delta",
        "    epsilon zeta eta theta",
        "    iota kappa",
        "[12] short",
    ]
    # never narrower than 20
    assert note_lines(["[1] alpha beta gamma delta"], 5) == ["[1] alpha beta gamma", "    delta"]


# --- the boundaries, worked out by hand --------------------------------------------------------
#
# Widths below: KEY is 3 wide (its name), VALUE 5, WHY 3 when it shows only markers, gaps of 2.


def test_a_table_exactly_as_wide_as_the_terminal_is_left_alone() -> None:
    row = ROW[:3]  # 21 + 5 + 28 + 2 gaps of 2 = 58
    assert fit([KEY, VALUE, WHY], [row], 58, 2).notes == []
    assert fit([KEY, VALUE, WHY], [row], 57, 2).notes != []
    assert fit([KEY, VALUE, WHY], [row], 60, 2, edge=2).notes == []
    # one short with the edge: room for WHY is 59 - 26 - 4 - 2 = 27, the text is 28
    moved = fit([KEY, VALUE, WHY], [row], 59, 2, edge=2)
    assert moved.widths == [21, 5, 3] and moved.rows[0][2] == ["[1]"]


def test_the_longest_text_that_fits_stays_in_the_table() -> None:
    rows = [["k1", "1", "aaaa bbbb ccc"], ["k2", "2", "cccccccccc ddd"]]  # 13 and 14 long
    # at 25 WHY has 25 - 3 - 5 - 4 = 13 columns: the 13 stays, the 14 moves
    layout = fit([KEY, VALUE, WHY], rows, 25, 2)
    assert layout.rows == [[["k1"], ["1"], ["aaaa bbbb ccc"]], [["k2"], ["2"], ["[1]"]]]
    assert layout.notes == ["[1] k2: cccccccccc ddd"] and layout.widths == [3, 5, 13]
    # at 24 neither fits
    assert fit([KEY, VALUE, WHY], rows, 24, 2).notes == [
        "[1] k1: aaaa bbbb ccc",
        "[2] k2: cccccccccc ddd",
    ]


TWENTY = "twenty characters..."
DROPPABLE = [KEY, WHY, Column(name="SOURCE", drop=1)]


def test_a_column_is_dropped_only_when_moving_the_notes_is_not_enough() -> None:
    rows = [["k", TWENTY, "src"]]
    # as it is: 3 + 20 + 6 + 4 = 33; with the note moved: 3 + 3 + 6 + 4 = 16
    assert fit(DROPPABLE, rows, 33, 2) == Layout(
        columns=[0, 1, 2], widths=[3, 20, 6], rows=[[["k"], [TWENTY], ["src"]]], notes=[],
        dropped=[],
    )  # fmt: skip
    for width in (30, 16):
        layout = fit(DROPPABLE, rows, width, 2)
        assert layout.dropped == [] and layout.widths == [3, 3, 6], width
        assert layout.notes == [f"[1] k: {TWENTY}"]
    assert fit(DROPPABLE, rows, 15, 2).dropped == ["SOURCE"]
    assert fit(DROPPABLE, rows, 17, 2, edge=1).dropped == []
    assert fit(DROPPABLE, rows, 16, 2, edge=1).dropped == ["SOURCE"]


def test_a_table_exactly_as_wide_keeps_its_droppable_columns() -> None:
    rows = [["k", "v", "src"]]  # 3 + 5 + 6 + 2 gaps of 2 = 18
    columns = [KEY, VALUE, Column(name="SOURCE", drop=1)]
    assert fit(columns, rows, 18, 2).dropped == []
    assert fit(columns, rows, 17, 2).dropped == ["SOURCE"]


def test_a_column_of_markers_needs_room_for_two_digits() -> None:
    """Once any cell moves, the column shows markers up to "[10]": with only 3 columns left for
    it, every cell moves, even a short one."""
    rows = [["k1", "ab", "src"], ["k2", TWENTY, "src"]]
    layout = fit(DROPPABLE, rows, 16, 2)
    assert layout.dropped == []
    assert layout.notes == ["[1] k1: ab", f"[2] k2: {TWENTY}"]
    assert [row[1] for row in layout.rows] == [["[1]"], ["[2]"]]


def test_two_note_columns_share_the_room_and_a_short_cell_stays() -> None:
    """Room for both note columns is 12 - 3 - 4 = 5: the long text moves (its column then shows
    markers, 4 wide), and the one-letter cell of the other fits in the 1 left."""
    columns = [KEY, WHY, Column(name="N", note=True)]
    layout = fit(columns, [["k", TWENTY, "x"]], 12, 2)
    assert layout.notes == [f"[1] k: {TWENTY}"]
    assert layout.rows == [[["k"], ["[1]"], ["x"]]]


def test_a_path_is_cut_at_its_root_only_when_it_has_one() -> None:
    # a relative path has no root component to keep
    assert shorten_path("abc/defgh/ijk.toml", 16) == "…/defgh/ijk.toml"
    # a name without a directory keeps its end
    assert shorten_path("averyveryverylongname.toml", 10) == "…name.toml"


def test_wrapping_never_breaks_at_a_hyphen() -> None:
    """Names such as eth-1 or tcp-keepalive stay whole on a line."""
    layout = fit([KEY, VALUE], [["k", "aaaa bbbbbbb-cccccccc"]], 3 + 2 + 16, 2)
    assert layout.rows == [[["k"], ["aaaa", "bbbbbbb-cccccccc"]]]
    notes = note_lines(["[1] aaaa bbbbbbb-cccccccc dd"], 24)
    assert notes == ["[1] aaaa", "    bbbbbbb-cccccccc dd"]


def test_a_cell_of_blanks_that_must_wrap_is_one_empty_line() -> None:
    layout = fit([KEY, VALUE], [["k", " " * 8]], 3 + 2 + 6, 2)
    assert layout.rows == [[["k"], [""]]]


def test_notes_wrap_at_twenty_columns_at_the_least() -> None:
    # "[1] alpha beta gammas" is 21 long: at 20 it does not fit
    assert note_lines(["[1] alpha beta gammas delta"], 5) == [
        "[1] alpha beta",
        "    gammas delta",
    ]
