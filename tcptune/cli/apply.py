"""`tcptune apply PROFILE`: plan, show, then (unless --dry-run) back up and apply.

`apply` is the command; `run` does its work and is what the tests call without the command line.
"""

import re
from typing import IO, Annotated, Any

import typer

from tcptune import profiles, render
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
from tcptune.errors import (
    EXIT_DRIFT,
    EXIT_ENVIRONMENT,
    EXIT_OK,
    BadInput,
    EnvironmentProblem,
    printable,
)
from tcptune.kernel import parse_release
from tcptune.keys import is_key_shaped
from tcptune.plan import (
    CHANGE,
    DROP_IN_DIR,
    SKIP,
    Plan,
    RemovedKey,
    drop_in_values,
    is_ours,
    make_plan,
)
from tcptune.sysctld import boot_json, boot_summary
from tcptune.system import (
    MAX_DROP_IN_BYTES,
    System,
    proc_sys_read_only,
    read_bytes_no_follow,
    read_conf_files,
    read_kernel_cmdline,
    running_as_root,
)
from tcptune.transaction import FAILED, MISMATCH, NOT_REACHED, execute, locked, now_utc

SHORT_HELP = "make the kernel and /etc/sysctl.d match a profile (with a backup)"
EPILOG = epilog(
    [
        "tcptune apply server-profile --dry-run",
        "sudo tcptune apply server-profile",
        "sudo tcptune apply client-profile --persist-only",
        "sudo tcptune --pid 4242 apply client-profile --runtime-only",
    ],
    {
        0: "applied, or nothing to change, or --dry-run",
        1: "applied (or nothing to change), but another sysctl.d file sets a key differently "
        "at boot: the profile will not hold after a reboot (the overriding file is named)",
        2: f"{BAD_INPUT}, an unknown or invalid profile, a drop-in tcptune did not write "
        "(without --force), a symlink in the way; --netns or --pid without --runtime-only or "
        "--dry-run (a drop-in configures the host's boot, not a namespace)",
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
    revert`). With --netns or --pid (before the command): the live values of that network
    namespace, with --runtime-only or --dry-run."""
    system = open_system(
        ctx,
        root,
        enters=dry_run or (runtime_only and not persist_only),
        refusal=(
            "a drop-in in /etc/sysctl.d configures the host's boot, not a network namespace",
            "set its live values with --runtime-only, preview with --dry-run; a container "
            "keeps values only if its runtime sets them: tcptune export PROFILE --format "
            "k8s|docker",
        ),
    )
    check_lock_wait(lock_wait)
    with render.fitted_stdout() as stream:
        return run(
            system,
            profile,
            dry_run=dry_run,
            runtime_only=runtime_only,
            persist_only=persist_only,
            drop_in=drop_in,
            force=force,
            lock_wait=lock_wait,
            json_output=json_output,
            stream=stream,
        )


def run(
    system: System,
    profile_name: str,
    *,
    dry_run: bool,
    runtime_only: bool,
    persist_only: bool,
    drop_in: str,
    force: bool,
    lock_wait: float,
    json_output: bool,
    stream: IO[str],
) -> int:
    if runtime_only and persist_only:
        raise BadInput("--runtime-only and --persist-only exclude each other", hint="choose one")
    if getattr(system, "entered", None) is not None:
        runtime_only = True  # a namespace has live values only; the drop-in is the host's
    if not dry_run:
        require_root(system, profile_name)
    plan = build_plan(
        system, profile_name, drop_in=drop_in, runtime=not persist_only, persist=not runtime_only
    )
    where = namespace_of(system)
    if where is not None and not json_output:
        stream.write(printable(where.describe()) + " (live values only: --runtime-only)\n")
    doc = {**plan_to_json(plan), "netns": where.to_json() if where is not None else None}
    if dry_run:
        if json_output:
            render.write_json(
                stream, "apply", {**doc, "dry_run": True, "changed": False, "exit_code": 0}
            )
        else:
            write_plan_text(plan, stream, dry_run=True, boot=where is None)
        return EXIT_OK
    check_preconditions(system, plan, force)
    if not plan.nothing_to_do:
        with locked(system, lock_wait):
            # Plan again under the lock: another apply may have finished while this one waited.
            plan = build_plan(
                system,
                profile_name,
                drop_in=drop_in,
                runtime=not persist_only,
                persist=not runtime_only,
            )
            check_preconditions(system, plan, force)
            outcome = None if plan.nothing_to_do else execute(system, plan, system.kernel_release())
    boot_code = EXIT_DRIFT if plan.overridden_at_boot() else EXIT_OK
    netns_doc = doc["netns"]
    if plan.nothing_to_do or outcome is None:
        doc = {**plan_to_json(plan), "netns": netns_doc}
        if json_output:
            render.write_json(
                stream,
                "apply",
                {
                    **doc,
                    "dry_run": False,
                    "changed": False,
                    "backup_id": None,
                    "results": [],
                    "exit_code": boot_code,
                },
            )
        else:
            stream.write(f"{plan.profile}: nothing to do; {already(plan)}. No backup made.\n")
            write_boot_warning(plan, stream)
        return boot_code
    doc = {**plan_to_json(plan), "netns": netns_doc}
    code = boot_code if outcome.ok else EXIT_ENVIRONMENT
    if json_output:
        render.write_json(
            stream,
            "apply",
            {
                **doc,
                "dry_run": False,
                "changed": True,
                "backup_id": outcome.backup_id,
                "drop_in_written": outcome.drop_in_written,
                "results": render.results_json(outcome.results),
                "exit_code": code,
            },
        )
        return code
    write_plan_text(plan, stream, dry_run=False, boot=where is None)
    stream.write("\n")
    if outcome.drop_in_written:
        stream.write(f"wrote {plan.drop_in_path}\n")
    render.write_results(stream, outcome.results, width=11)
    stream.write(f"backup {outcome.backup_id}; undo with: tcptune revert {outcome.backup_id}\n")
    if not outcome.ok:
        bad = [r for r in outcome.results if r.outcome in (FAILED, MISMATCH, NOT_REACHED)]
        stream.write(
            f"apply stopped with {len(bad)} key(s) not applied; the backup restores everything: "
            f"tcptune revert {outcome.backup_id}\n"
        )
    write_boot_warning(plan, stream)
    return code


def namespace_of(system: System) -> Any:
    """The namespace --netns or --pid entered (tcptune.netns.Identity), None without them."""
    if getattr(system, "entered", None) is None:
        return None
    from tcptune import netns
    from tcptune.system import describe_netns

    initial = netns.is_initial(system.read_sysctl(netns.INITIAL_ONLY_KEY))
    return describe_netns(system, initial=initial)


def already(plan: Plan) -> str:
    """What a plan with nothing to do found already in place, for the parts it looks at."""
    if not plan.persist:
        return "the live values already match (--runtime-only: no drop-in is written)"
    if not plan.runtime:
        return f"{plan.drop_in_path} already says this (--persist-only: live values are not set)"
    return f"the live values and {plan.drop_in_path} already match"


def write_boot_warning(plan: Plan, stream: IO[str]) -> None:
    """One line per key that another file overrides at boot, naming the file per loader."""
    found = plan.overridden_at_boot()
    if not found:
        return
    stream.write(
        f"\nwarning: {len({k.key for k, _ in found})} key(s) will not hold after a reboot:\n"
    )
    for key_plan, check in found:
        answer = check.answer
        render.write_line(
            stream,
            f"  {key_plan.key} = {key_plan.target}: {check.loader} sets {answer.value!r} from "
            f"{answer.source}",
            colour=False,
        )
    stream.write(
        "  change or remove those lines (or give this profile's drop-in a name that sorts after "
        "them); `tcptune check PROFILE` shows the same\n"
    )


DROP_IN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.conf$")


def check_drop_in_name(name: str) -> None:
    if not DROP_IN_NAME.match(name) or ".." in name or len(name) > 128:
        raise BadInput(
            f"invalid --drop-in {name!r}",
            hint="a plain file name ending in .conf, e.g. 99-tcptune.conf",
        )


def build_plan(
    system: System, profile_name: str, *, drop_in: str, runtime: bool, persist: bool
) -> Plan:
    check_drop_in_name(drop_in)
    profile = profiles.load(profile_name, system.root)
    system.require_proc_sys()
    release = system.kernel_release()
    old = read_bytes_no_follow(system.path(f"{DROP_IN_DIR}/{drop_in}"), MAX_DROP_IN_BYTES)
    old_text = old.decode("utf-8", errors="replace") if old is not None else None
    # The keys the drop-in sets now are read too: those the profile leaves out keep their live
    # value until a reboot, and the plan says so.
    in_drop_in = [key for key in drop_in_values(old_text) if is_key_shaped(key)]
    readings = {key: system.read_sysctl(key) for key in [*profile.sysctl, *in_drop_in]}
    return make_plan(
        profile=profile.name,
        profile_path=str(profile.path),
        targets=profile.sysctl,
        origin=profile.origin,
        readings=readings,
        version=parse_release(release),
        release=release,
        old_text=old_text,
        # another namespace (--netns, --pid): the host's sysctl.d files do not configure it
        conf_files=read_conf_files(system) if getattr(system, "entered", None) is None else [],
        cmdline=read_kernel_cmdline(system) if getattr(system, "entered", None) is None else None,
        drop_in_name=drop_in,
        runtime=runtime,
        persist=persist,
        written_at=now_utc().isoformat(timespec="seconds"),
    )


def plan_to_json(plan: Plan) -> dict[str, Any]:
    return {
        "profile": {"name": plan.profile, "path": plan.profile_path},
        "keys": [
            {
                "key": k.key,
                "live": k.live,
                "target": k.target,
                "origin": k.origin,
                "action": k.action,
                "reason": k.reason or None,
                "boot": boot_json(k.persistence) if k.persistence else None,
                "boot_note": "; ".join(p.describe() for p in k.persistence) or None,
            }
            for k in plan.keys
        ],
        "runtime": plan.runtime,
        "persist": plan.persist,
        "drop_in": {
            "path": plan.drop_in_path,
            "exists": plan.old_text is not None,
            "foreign": plan.foreign,
            "masks": plan.masks,
            "changes": plan.persist and plan.drop_in_changes,
            "diff": plan.diff() if plan.persist and plan.drop_in_changes else "",
            "removed_keys": [
                {
                    "key": r.key,
                    "value": r.value,
                    "live": r.live,
                    "boot": [
                        {
                            "loader": b.loader,
                            "set_by": b.source,
                            "value": b.value,
                            "unknown": b.unknown or None,
                        }
                        for b in r.boot
                    ],
                }
                for r in plan.removed
            ],
        },
        "overridden_at_boot": [
            {
                "key": k.key,
                "target": k.target,
                "loader": p.loader,
                "set_by": p.answer.source,
                "value": p.answer.value,
            }
            for k, p in plan.overridden_at_boot()
        ],
        "nothing_to_do": plan.nothing_to_do,
    }


def write_plan_text(plan: Plan, stream: IO[str], dry_run: bool, boot: bool = True) -> None:
    """The plan as a table; `boot` false (another network namespace): no AT BOOT column, the
    host's sysctl.d files do not configure it."""
    colour = render.wants_colour(stream)
    title = "plan (dry run: nothing is written)" if dry_run else "plan"
    render.write_line(stream, f"tcptune apply {plan.profile}: {title}", colour, "bold")
    from tcptune.layout import Column

    table = render.Table(
        [
            Column(name="KEY", keep=True),
            "LIVE",
            "TARGET",
            Column(name="ACTION", note=True),
            *([Column(name="AT BOOT", note=True)] if boot else []),
        ]
    )
    for k in plan.keys:
        live = "-" if k.live is None else (k.live or '""')
        action = k.action if k.action != SKIP else f"skip ({k.reason})"
        if k.action == CHANGE and not plan.runtime:
            action = "drop-in only"
        style = {"change": "yellow", "unchanged": "green", "skip": "dim"}.get(k.action)
        at_boot = "" if k.action == SKIP else boot_summary(k.persistence, detailed=True)
        table.add(
            [k.key, live, k.target or '""', action, at_boot][: 5 if boot else 4],
            [None, None, None, style, None][: 5 if boot else 4],
        )
    for r in plan.removed:
        live = "-" if r.live is None else (r.live or '""')
        table.add(
            [
                r.key,
                live,
                "-",
                "removed from the drop-in (live value kept until reboot)",
                removed_boot(r),
            ],
            [None, None, None, "yellow", None],
        )
    table.write(stream, colour)
    if plan.persist:
        if plan.drop_in_changes:
            stream.write(f"\n{plan.drop_in_path}:\n")
            # the old drop-in's lines are text from a file: shown escaped, one line each
            stream.write("".join(printable(line) + "\n" for line in plan.diff().splitlines()))
        else:
            stream.write(f"\n{plan.drop_in_path} already says this; it is left as it is.\n")
    if plan.foreign:
        stream.write(
            f"\nwarning: {plan.drop_in_path} exists and was not written by tcptune; "
            "apply refuses to replace it without --force (it is backed up first).\n"
        )
    for hidden in plan.masks:
        stream.write(f"\nwarning: {masking(plan, hidden)}; apply refuses that without --force.\n")


def removed_boot(removed: RemovedKey) -> str:
    """Where a key left out of the drop-in comes from at boot, per loader."""
    parts = []
    for b in removed.boot:
        if b.unknown:
            parts.append(f"{b.loader}: unknown ({b.unknown})")
        elif b.value is None:
            parts.append(f"{b.loader}: kernel default")
        else:
            parts.append(f"{b.loader}: {b.value} from {b.source}")
    return "; ".join(parts)


def masking(plan: Plan, hidden: str) -> str:
    return (
        f"{plan.drop_in_path} would hide {hidden} from the loaders: a file in /etc/sysctl.d "
        "masks every file of the same name in the directories read after it"
    )


def require_root(system: System, profile_name: str) -> None:
    """Refused before anything is read: as another user even the profile may be unreadable."""
    if system.live and not running_as_root():
        raise EnvironmentProblem(
            "apply changes the kernel and /etc/sysctl.d: run it as root",
            hint=f"sudo tcptune apply {profile_name}, or preview with --dry-run",
        )


def check_preconditions(system: System, plan: Plan, force: bool) -> None:
    if plan.runtime and plan.runtime_changes and proc_sys_read_only(system):
        from tcptune import netns

        hint = "use --persist-only to write only the drop-in, or --dry-run to preview"
        if netns.is_initial(system.read_sysctl(netns.INITIAL_ONLY_KEY)) is False:
            hint += (
                "; in a container its runtime sets them: start it with them, see tcptune "
                f"export {plan.profile} --format k8s|docker"
            )
        raise EnvironmentProblem(
            f"{system.path('proc/sys')} is read-only here (a container?)", hint=hint
        )
    if plan.masks and not force and not is_ours(plan.old_text):
        raise BadInput(
            masking(plan, plan.masks[0]),
            hint="choose another --drop-in NAME, or --force to mask it on purpose",
        )
    if plan.persist and plan.foreign and plan.drop_in_changes and not force:
        raise BadInput(
            f"{plan.drop_in_path} exists and was not written by tcptune (no tcptune header)",
            hint="--force replaces it after backing it up, or choose another --drop-in NAME",
        )
