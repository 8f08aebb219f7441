"""`tcptune backups`."""

import sys

import typer

from tcptune.cli.options import BAD_INPUT, JsonOption, RootOption, epilog, open_system

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
    """List the backups that `tcptune apply` made, newest last, and whether each was
    reverted."""
    from tcptune.commands import revert as command

    return command.run_backups(open_system(ctx, root), json_output=json_output, stream=sys.stdout)
