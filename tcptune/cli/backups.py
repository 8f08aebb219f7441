"""`tcptune backups`: the backups made by apply, newest last.

`backups` is the command; `run_backups` does its work and is what the tests call without the
command line.
"""

from typing import IO

import typer

from tcptune import render
from tcptune.cli.options import BAD_INPUT, JsonOption, RootOption, epilog, open_system
from tcptune.errors import EXIT_OK, printable
from tcptune.system import System
from tcptune.transaction import list_backups

SHORT_HELP = "list the backups made by apply"
EPILOG = epilog(
    ["tcptune backups", "tcptune backups --json"],
    {
        0: "ok (a corrupt backup is listed as such)",
        2: f"{BAD_INPUT}, a symlinked backup directory",
        3: "environment error: a backup cannot be read",
    },
)


def backups(ctx: typer.Context, json_output: JsonOption = False, root: RootOption = None) -> int:
    """List the backups that `tcptune apply` made, newest last (by the sequence number each
    records, not by the clock), and whether each was reverted."""
    with render.fitted_stdout() as stream:
        return run_backups(open_system(ctx, root), json_output=json_output, stream=stream)


def run_backups(system: System, *, json_output: bool, stream: IO[str]) -> int:
    rows = []
    for backup in list_backups(system):
        if "corrupt" in backup:
            rows.append({"id": backup["id"], "corrupt": backup["corrupt"]})
            continue
        rows.append(
            {
                "id": backup["id"],
                "sequence": backup.get("sequence"),  # None: made by an older tcptune
                "created": backup["created"],
                "profile": backup["profile"]["name"],
                "keys": len(backup["runtime"]),
                "drop_in": backup["drop_in"]["path"],
                "reverted": backup["reverted"],
                "netns": backup.get("netns"),
            }
        )
    if json_output:
        render.write_json(stream, "backups", {"backups": rows})
        return EXIT_OK
    if not rows:
        stream.write("no backups yet (each `tcptune apply` that changes something makes one)\n")
        return EXIT_OK
    from tcptune.layout import Column

    table = render.Table(
        [
            Column(name="ID", keep=True),
            Column(name="CREATED", drop=1),
            Column(name="PROFILE", keep=True),
            "KEYS",
            Column(name="REVERTED", note=True),
            Column(name="NETNS", note=True),
        ]
    )
    for row in rows:
        if "corrupt" in row:
            table.add(
                [row["id"], "CORRUPT", row["corrupt"], "", "", ""],
                [None, "red", "red", None, None, None],
            )
        else:
            table.add(
                [
                    row["id"],
                    row["created"],
                    row["profile"],
                    str(row["keys"]),
                    row["reverted"] or "no",
                    _netns_text(row["netns"]),
                ]
            )
    table.write(stream, render.wants_colour(stream))
    return EXIT_OK


def _netns_text(record: dict | None) -> str:
    """The namespace whose live values a backup holds: tcptune's own (none recorded: an older
    backup), or one entered with --netns or --pid."""
    if record is None:
        return "-"
    if record["entered"]:
        return printable(f"{record['inode']} ({record['entered']})")
    return record["inode"]
