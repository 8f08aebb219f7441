"""`tcptune revert [BACKUP_ID]`."""

import sys
from typing import Annotated

import typer

from tcptune.cli.options import (
    BAD_INPUT,
    DryRunOption,
    JsonOption,
    LockWaitOption,
    RootOption,
    check_lock_wait,
    epilog,
    open_system,
)

SHORT_HELP = "undo an apply from its backup (the newest not yet reverted by default)"
EPILOG = epilog(
    [
        "sudo tcptune revert",
        "tcptune revert --dry-run",
        "sudo tcptune revert 20261125T140102123456Z",
    ],
    {
        0: "reverted, or --dry-run",
        2: f"{BAD_INPUT}, an unknown, corrupt or edited backup, nothing left to revert",
        3: "environment error: not root, a file or value that cannot be written, another "
        "apply holding the lock past --lock-wait",
    },
)

BackupArgument = Annotated[
    str | None,
    typer.Argument(metavar="BACKUP_ID", help="from `tcptune backups`", show_default=False),
]


def revert(
    ctx: typer.Context,
    backup_id: BackupArgument = None,
    dry_run: DryRunOption = False,
    lock_wait: LockWaitOption = 30.0,
    json_output: JsonOption = False,
    root: RootOption = None,
) -> int:
    """Restore the drop-in byte for byte (or remove it if there was none) and the live values
    recorded in a backup. Repeated reverts walk back the stack of backups."""
    system = open_system(ctx, root)
    check_lock_wait(lock_wait)
    from tcptune.commands import revert as command

    return command.run_revert(
        system,
        backup_id,
        dry_run=dry_run,
        lock_wait=lock_wait,
        json_output=json_output,
        stream=sys.stdout,
    )
