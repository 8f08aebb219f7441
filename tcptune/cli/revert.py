"""`tcptune revert [BACKUP_ID]`: undo an apply from its backup.

`revert` is the command; `run_revert` does its work and is what the tests call without the
command line.
"""

from typing import IO, Annotated, Any

import typer

from tcptune import render, transaction
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
from tcptune.errors import EXIT_ENVIRONMENT, EXIT_OK, BadInput, EnvironmentProblem
from tcptune.system import System, running_as_root

SHORT_HELP = "undo an apply from its backup (the newest not yet reverted by default)"
EPILOG = epilog(
    [
        "sudo tcptune revert",
        "tcptune revert --dry-run",
        "sudo tcptune revert 20261125T140102123456Z",
        "sudo tcptune revert --force",
        "sudo tcptune --pid 4242 revert",
    ],
    {
        0: "reverted, or --dry-run",
        2: f"{BAD_INPUT}, an unknown, corrupt or edited backup, nothing left to revert, a "
        "drop-in changed since the apply wrote it (without --force), a backup of another "
        "network namespace (revert it with --netns or --pid)",
        3: "environment error: not root, a file or value that cannot be written, another "
        "apply holding the lock past --lock-wait",
    },
)

ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="revert even a drop-in changed since the apply wrote it (it is saved first, next "
        "to the backups)",
    ),
]
BackupArgument = Annotated[
    str | None,
    typer.Argument(metavar="BACKUP_ID", help="from `tcptune backups`", show_default=False),
]


def revert(
    ctx: typer.Context,
    backup_id: BackupArgument = None,
    dry_run: DryRunOption = False,
    force: ForceOption = False,
    lock_wait: LockWaitOption = 30.0,
    json_output: JsonOption = False,
    root: RootOption = None,
) -> int:
    """Restore the drop-in byte for byte (or remove it if there was none) and the live values
    recorded in a backup. Repeated reverts walk back the stack of backups. A drop-in that is no
    longer what the apply wrote is left alone unless --force. Live values set in another network
    namespace (apply --runtime-only with --netns or --pid) are reverted there only: give the same
    --netns or --pid before the command."""
    system = open_system(ctx, root, enters=True)
    check_lock_wait(lock_wait)
    with render.fitted_stdout() as stream:
        return run_revert(
            system,
            backup_id,
            dry_run=dry_run,
            force=force,
            lock_wait=lock_wait,
            json_output=json_output,
            stream=stream,
        )


def run_revert(
    system: System,
    backup_id: str | None,
    *,
    dry_run: bool,
    force: bool = False,
    lock_wait: float,
    json_output: bool,
    stream: IO[str],
) -> int:
    # Refused before anything is read: the backups are readable by root alone.
    if not dry_run and system.live and not running_as_root():
        raise EnvironmentProblem(
            "revert changes the kernel and /etc/sysctl.d: run it as root",
            hint="or preview with --dry-run",
        )
    # A first look, before the lock: a missing or invalid backup is reported with nothing created.
    _, plan, doc = choose(system, backup_id, dry_run=dry_run, force=force)
    if dry_run:
        if json_output:
            render.write_json(stream, "revert", {**doc, "exit_code": 0})
        else:
            write_revert_plan(doc, stream)
        return EXIT_OK
    if not force:
        transaction.refuse_changed(plan)
    with transaction.locked(system, lock_wait):
        # Chosen again under the lock: an apply that finished while this one waited for the lock
        # made the newest backup, and that is the one to undo.
        backup, plan, doc = choose(system, backup_id, dry_run=False, force=force)
        if not force:
            transaction.refuse_changed(plan)
        outcome = transaction.revert(system, plan, force=force)
    code = EXIT_OK if outcome.ok else EXIT_ENVIRONMENT
    saved = str(outcome.saved) if outcome.saved is not None else None
    if json_output:
        results = render.results_json(outcome.results)
        render.write_json(
            stream,
            "revert",
            {
                **doc,
                "saved": saved,
                "drop_in_written": outcome.drop_in_written,
                "results": results,
                "exit_code": code,
            },
        )
        return code
    write_revert_plan(doc, stream)
    if saved is not None:
        stream.write(f"saved the changed {doc['drop_in']['path']} as {saved}\n")
    render.write_results(stream, outcome.results, width=10)
    if outcome.ok:
        stream.write(f"reverted backup {backup['id']}\n")
    else:
        stream.write(f"revert incomplete; fix the cause and run: tcptune revert {backup['id']}\n")
    return code


def choose(
    system: System, backup_id: str | None, *, dry_run: bool, force: bool = False
) -> tuple[dict[str, Any], transaction.RevertPlan, dict[str, Any]]:
    """The backup to revert (`backup_id`, or the newest not yet reverted), the plan, and the
    plan as a JSON-able document."""
    backup = (
        transaction.load_backup(system, backup_id)
        if backup_id is not None  # "" is an invalid id, not "the newest"
        else transaction.newest_unreverted(system)
    )
    elsewhere = transaction.other_netns(backup, system)
    if elsewhere is not None:
        raise BadInput(
            f"backup {backup['id']} holds the live values of {elsewhere}, not of the network "
            "namespace this revert runs in; reverting it here would write them into the wrong one",
            hint=f"revert it there while it exists: tcptune --netns /proc/PID/ns/net revert "
            f"{backup['id']} (a container's values go with the container)",
        )
    plan = transaction.plan_revert(system, backup)
    doc = {
        "backup_id": backup["id"],
        "profile": backup["profile"]["name"],
        "already_reverted": backup["reverted"],
        "drop_in": {
            "path": backup["drop_in"]["path"],
            "action": plan.drop_in_action,
            "changed": plan.changed,
            "why_changed": plan.why_changed() if plan.changed else None,
        },
        "netns": backup.get("netns"),
        "runtime": [{"key": k, "now": now, "restore": prev} for k, now, prev in plan.runtime],
        "dry_run": dry_run,
        "force": force,
    }
    return backup, plan, doc


def write_revert_plan(doc: dict, stream: IO[str]) -> None:
    colour = render.wants_colour(stream)
    title = " (dry run: nothing is written)" if doc["dry_run"] else ""
    render.write_line(
        stream, f"tcptune revert {doc['backup_id']} ({doc['profile']}){title}", colour, "bold"
    )
    if doc["already_reverted"]:
        stream.write(f"note: this backup was already reverted at {doc['already_reverted']}\n")
    action = doc["drop_in"]["action"]
    verb = {
        "restore": "restore its previous content",
        "remove": "remove it (it did not exist)",
        "keep": "leave it (the apply did not change it)",
    }[action]
    stream.write(f"{doc['drop_in']['path']}: {verb}\n")
    if doc["drop_in"]["changed"]:
        what = (
            "--force saves it next to the backups first"
            if doc["force"]
            else "revert refuses that without --force (which saves it next to the backups first)"
        )
        stream.write(f"warning: {doc['drop_in']['why_changed']}; {what}.\n")
    from tcptune.layout import Column

    table = render.Table([Column(name="KEY", keep=True), "NOW", "RESTORE"])
    for item in doc["runtime"]:
        table.add(
            [
                item["key"],
                item["now"] if item["now"] is not None else "-",
                item["restore"] if item["restore"] is not None else "-",
            ]
        )
    table.write(stream, colour)
