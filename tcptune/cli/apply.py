"""`tcptune apply PROFILE`."""

import sys
from typing import Annotated

import typer

from tcptune.cli.options import (
    BAD_INPUT,
    DryRunOption,
    JsonOption,
    LockWaitOption,
    ProfileArgument,
    RootOption,
    check_lock_wait,
    epilog,
    open_system,
)

SHORT_HELP = "make the kernel and /etc/sysctl.d match a profile (with a backup)"
EPILOG = epilog(
    [
        "tcptune apply server-profile --dry-run",
        "sudo tcptune apply server-profile",
        "sudo tcptune apply client-profile --persist-only",
    ],
    {
        0: "applied, or nothing to change, or --dry-run",
        2: f"{BAD_INPUT}, an unknown or invalid profile, a drop-in tcptune did not write "
        "(without --force), a symlink in the way",
        3: "environment error: not root, read-only /proc/sys, a full disk, a value the kernel "
        "did not take, another apply holding the lock past --lock-wait",
    },
)

RuntimeOnlyOption = Annotated[
    bool, typer.Option("--runtime-only", help="set live values only; no drop-in")
]
PersistOnlyOption = Annotated[
    bool, typer.Option("--persist-only", help="write the drop-in only; no live values")
]
DropInOption = Annotated[
    str,
    typer.Option("--drop-in", metavar="NAME", help="drop-in file name in /etc/sysctl.d"),
]
ForceOption = Annotated[
    bool,
    typer.Option("--force", help="replace a drop-in tcptune did not write (it is backed up)"),
]


def apply(
    ctx: typer.Context,
    profile: ProfileArgument,
    dry_run: DryRunOption = False,
    runtime_only: RuntimeOnlyOption = False,
    persist_only: PersistOnlyOption = False,
    drop_in: DropInOption = "99-tcptune.conf",
    force: ForceOption = False,
    lock_wait: LockWaitOption = 30.0,
    json_output: JsonOption = False,
    root: RootOption = None,
) -> int:
    """Plan, show and apply a profile: write the drop-in atomically, set each runtime value and
    read it back. Every apply that changes something is backed up first (see `tcptune
    revert`)."""
    system = open_system(ctx, root)
    check_lock_wait(lock_wait)
    from tcptune.commands import apply as command

    return command.run(
        system,
        profile,
        dry_run=dry_run,
        runtime_only=runtime_only,
        persist_only=persist_only,
        drop_in=drop_in,
        force=force,
        lock_wait=lock_wait,
        json_output=json_output,
        stream=sys.stdout,
    )
