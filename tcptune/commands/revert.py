"""`tcptune revert [BACKUP_ID]` and `tcptune backups`."""

from __future__ import annotations

from typing import IO

from tcptune import render
from tcptune.errors import EXIT_ENVIRONMENT, EXIT_OK, EnvironmentProblem
from tcptune.system import System, running_as_root
from tcptune.transaction import list_backups, load_backup, newest_unreverted, plan_revert, revert


def run_revert(
    system: System,
    backup_id: str | None,
    *,
    dry_run: bool,
    lock_wait: float,
    json_output: bool,
    stream: IO[str],
) -> int:
    backup = load_backup(system, backup_id) if backup_id else newest_unreverted(system)
    plan = plan_revert(system, backup)
    doc = {
        "backup_id": backup["id"],
        "profile": backup["profile"]["name"],
        "already_reverted": backup["reverted"],
        "drop_in": {"path": backup["drop_in"]["path"], "action": plan.drop_in_action},
        "runtime": [{"key": k, "now": now, "restore": prev} for k, now, prev in plan.runtime],
        "dry_run": dry_run,
    }
    if not dry_run and system.live and not running_as_root():
        raise EnvironmentProblem(
            "revert changes the kernel and /etc/sysctl.d: run it as root",
            hint="or preview with --dry-run",
        )
    if dry_run:
        if json_output:
            render.write_json(stream, "revert", {**doc, "exit_code": 0})
        else:
            write_revert_plan(doc, stream)
        return EXIT_OK
    outcome = revert(system, plan, lock_wait=lock_wait)
    code = EXIT_OK if outcome.ok else EXIT_ENVIRONMENT
    if json_output:
        results = [
            {"key": r.key, "outcome": r.outcome, "detail": r.detail or None}
            for r in outcome.results
        ]
        render.write_json(stream, "revert", {**doc, "results": results, "exit_code": code})
        return code
    write_revert_plan(doc, stream)
    for r in outcome.results:
        stream.write(f"  {r.outcome:<10} {r.key}" + (f": {r.detail}" if r.detail else "") + "\n")
    if outcome.ok:
        stream.write(f"reverted backup {backup['id']}\n")
    else:
        stream.write(f"revert incomplete; fix the cause and run: tcptune revert {backup['id']}\n")
    return code


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
    table = render.Table(["KEY", "NOW", "RESTORE"])
    for item in doc["runtime"]:
        table.add(
            [
                item["key"],
                item["now"] if item["now"] is not None else "-",
                item["restore"] if item["restore"] is not None else "-",
            ]
        )
    table.write(stream, colour)


def run_backups(system: System, *, json_output: bool, stream: IO[str]) -> int:
    rows = []
    for backup in list_backups(system):
        if "corrupt" in backup:
            rows.append({"id": backup["id"], "corrupt": backup["corrupt"]})
            continue
        rows.append(
            {
                "id": backup["id"],
                "created": backup["created"],
                "profile": backup["profile"]["name"],
                "keys": len(backup["runtime"]),
                "drop_in": backup["drop_in"]["path"],
                "reverted": backup["reverted"],
            }
        )
    if json_output:
        render.write_json(stream, "backups", {"backups": rows})
        return EXIT_OK
    if not rows:
        stream.write("no backups yet (each `tcptune apply` that changes something makes one)\n")
        return EXIT_OK
    table = render.Table(["ID", "CREATED", "PROFILE", "KEYS", "REVERTED"])
    for row in rows:
        if "corrupt" in row:
            table.add(
                [row["id"], "CORRUPT", row["corrupt"], "", ""], [None, "red", "red", None, None]
            )
        else:
            table.add(
                [
                    row["id"],
                    row["created"],
                    row["profile"],
                    str(row["keys"]),
                    row["reverted"] or "no",
                ]
            )
    table.write(stream, render.wants_colour(stream))
    return EXIT_OK
