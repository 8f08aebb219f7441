"""`tcptune profiles list|show|validate|capture`: a group of its own (a Typer sub-app).

`list_profiles`, `show`, `validate` and `capture` are the commands; `run_list`, `run_show`,
`run_validate` and `run_capture` do their work and are what the tests call without the command
line.
"""

from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Annotated, Any

import tomli_w
import typer

import tcptune.profiles  # by its full name: `profiles` in this module is the group
from tcptune import keys, render
from tcptune.cli.core import Command, Group
from tcptune.cli.options import (
    BAD_INPUT,
    JsonOption,
    ProfileArgument,
    RootOption,
    epilog,
    open_system,
)
from tcptune.errors import EXIT_BAD_INPUT, EXIT_OK, BadInput, EnvironmentProblem, printable
from tcptune.model import MISSING, PRESENT
from tcptune.system import (
    System,
    atomic_write,
    exists,
    host_name,
    is_dir,
    is_file,
    make_dirs,
)

SHORT_HELP = "list, show, validate and capture profiles"
INVALID = "an unknown or invalid profile"

app = typer.Typer(
    cls=Group,
    add_completion=False,
    rich_markup_mode=None,
    epilog=epilog(
        [
            "tcptune profiles list",
            "tcptune profiles show proxy-profile",
            "tcptune profiles validate ./my-profile.toml",
            "tcptune profiles capture golden-box",
        ],
        {
            0: "ok",
            2: f"{BAD_INPUT}, {INVALID}",
            3: "environment error (capture): cannot read /proc/sys or write the profile",
        },
    ),
)


@app.callback()
def profiles(root: RootOption = None) -> None:
    """Profiles are TOML files naming target values for network sysctls: the shipped ones, and
    yours in /etc/tcptune/profiles (a local profile shadows a shipped one of the same name)."""


@app.command(
    "list",
    cls=Command,
    short_help="name, description and source of every profile",
    epilog=epilog(
        ["tcptune profiles list", "tcptune profiles list --json"],
        {
            0: "ok (an invalid profile is listed as such)",
            2: BAD_INPUT,
            3: "environment error: --root, a profile directory or a file cannot be read",
        },
    ),
)
def list_profiles(
    ctx: typer.Context, json_output: JsonOption = False, root: RootOption = None
) -> int:
    """List every profile tcptune finds, shipped and in {root}/etc/tcptune/profiles: name,
    description and file."""
    with render.fitted_stdout() as stream:
        return run_list(open_system(ctx, root), json_output=json_output, stream=stream)


@app.command(
    "show",
    cls=Command,
    short_help="a profile merged with its extends chain, and where each value came from",
    epilog=epilog(
        ["tcptune profiles show proxy-profile", "tcptune profiles show ./my-profile.toml --json"],
        {
            0: "ok",
            2: f"{BAD_INPUT}, {INVALID}",
            3: "environment error: --root, a profile directory or a file cannot be read",
        },
    ),
)
def show(
    ctx: typer.Context,
    name: ProfileArgument,
    json_output: JsonOption = False,
    root: RootOption = None,
) -> int:
    """Show a profile merged with the profiles it extends, and which file each value came
    from."""
    with render.fitted_stdout() as stream:
        return run_show(open_system(ctx, root), name, json_output=json_output, stream=stream)


PathsArgument = Annotated[
    list[str],
    typer.Argument(metavar="PATH...", help="profile files (or names)", show_default=False),
]


@app.command(
    "validate",
    cls=Command,
    short_help="check profile files; exit 0 when all are valid, 2 when one is not",
    epilog=epilog(
        [
            "tcptune profiles validate ./my-profile.toml",
            "tcptune profiles validate /etc/tcptune/profiles/*.toml --json",
        ],
        {
            0: "every profile is valid",
            2: f"a profile is invalid, or {BAD_INPUT}",
            3: "environment error: --root, a profile directory or a file cannot be read",
        },
    ),
)
def validate(
    ctx: typer.Context,
    paths: PathsArgument,
    json_output: JsonOption = False,
    root: RootOption = None,
) -> int:
    """Check profile files: TOML syntax, known keys, types, ranges and the extends chain. Each
    problem is one line naming the file, the line and the key."""
    with render.fitted_stdout() as stream:
        return run_validate(open_system(ctx, root), paths, json_output=json_output, stream=stream)


NameArgument = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="profile name: lower-case letters, digits, '-' and '_'",
        show_default=False,
    ),
]
OutputOption = Annotated[
    str | None,
    typer.Option("--output", metavar="PATH", help="write here instead", show_default=False),
]
ForceOption = Annotated[bool, typer.Option("--force", help="overwrite an existing file")]


@app.command(
    "capture",
    cls=Command,
    short_help="write this machine's live values as a new profile",
    epilog=epilog(
        [
            "tcptune profiles capture golden-box",
            "tcptune profiles capture golden-box --output ./golden-box.toml --force",
            "sudo tcptune --pid 4242 profiles capture web-pod",
        ],
        {
            0: "the profile is written",
            2: f"{BAD_INPUT}, an invalid NAME, or the file exists (without --force)",
            3: "environment error: /proc/sys cannot be read, or the file cannot be written; "
            "--netns or --pid without root",
        },
    ),
)
def capture(
    ctx: typer.Context,
    name: NameArgument,
    output: OutputOption = None,
    force: ForceOption = False,
    json_output: JsonOption = False,
    root: RootOption = None,
) -> int:
    """Write the live values of the watched keys as a profile, by default to
    {root}/etc/tcptune/profiles/NAME.toml, where `tcptune check NAME` finds it. With --netns
    or --pid (before the command), the values of that network namespace (a container's)."""
    with render.fitted_stdout() as stream:
        return run_capture(
            open_system(ctx, root, enters=True),
            name,
            output=output,
            force=force,
            json_output=json_output,
            stream=stream,
        )


def run_list(system: System, *, json_output: bool, stream: IO[str]) -> int:
    found = tcptune.profiles.available(system.root)
    shipped = tcptune.profiles.shipped_dir()
    rows: list[dict[str, Any]] = []
    for name, path in sorted(found.items()):
        profile, problems = tcptune.profiles.try_load(str(path), system.root)
        description = profile.description if profile else ""
        problem = str(problems[0]) if problems else None
        rows.append(
            {
                "name": name,
                "description": description,
                "path": str(path),
                "shipped": path.parent == shipped,
                "valid": problem is None,
                "problem": problem,
            }
        )
    if json_output:
        render.write_json(stream, "profiles list", {"profiles": rows})
        return EXIT_OK
    colour = render.wants_colour(stream)
    from tcptune.layout import Column

    table = render.Table(
        [
            Column(name="NAME", keep=True),
            "DESCRIPTION",
            Column(name="SOURCE", shorten=True),
        ]
    )
    for row in rows:
        description = row["description"] if row["valid"] else f"INVALID: {row['problem']}"
        table.add(
            [row["name"], description, row["path"]], [None, None if row["valid"] else "red", "dim"]
        )
    table.write(stream, colour)
    return EXIT_OK


def run_show(system: System, name: str, *, json_output: bool, stream: IO[str]) -> int:
    profile = tcptune.profiles.load(name, system.root)
    doc = {
        "name": profile.name,
        "path": str(profile.path),
        "description": profile.description,
        "extends": profile.chain[1:],
        "sysctl": profile.sysctl,
        "origin": profile.origin,
        "warnings": [str(w) for w in profile.warnings],
    }
    if json_output:
        render.write_json(stream, "profiles show", doc)
        return EXIT_OK
    colour = render.wants_colour(stream)
    render.write_line(stream, f"{profile.name}: {profile.description}", colour, "bold")
    stream.write(printable(f"file: {profile.path}") + "\n")
    if len(profile.chain) > 1:
        stream.write("extends: " + " <- ".join(profile.chain) + "\n")
    for warning in profile.warnings:
        stream.write(printable(f"warning: {warning}") + "\n")
    from tcptune.layout import Column

    table = render.Table([Column(name="KEY", keep=True), "VALUE", Column(name="FROM", drop=1)])
    for key, value in profile.sysctl.items():
        table.add([key, value if value != "" else '""', profile.origin[key]], [None, None, "dim"])
    table.write(stream, colour)
    return EXIT_OK


def run_validate(system: System, paths: list[str], *, json_output: bool, stream: IO[str]) -> int:
    results = []
    for argument in paths:
        problems, warnings = tcptune.profiles.validate(argument, system.root)
        results.append(
            {
                "profile": argument,
                "valid": not problems,
                "problems": [
                    {"file": p.path, "line": p.line, "key": p.key or None, "message": p.message}
                    for p in problems
                ],
                "warnings": [
                    {"file": w.path, "line": w.line, "key": w.key or None, "message": w.message}
                    for w in warnings
                ],
            }
        )
    code = EXIT_OK if all(r["valid"] for r in results) else EXIT_BAD_INPUT
    if json_output:
        render.write_json(stream, "profiles validate", {"results": results, "exit_code": code})
        return code
    colour = render.wants_colour(stream)
    for result, argument in zip(results, paths, strict=True):
        if result["valid"]:
            render.write_line(stream, f"{argument}: valid", colour, "green")
        for problem in result["problems"]:
            line = f":{problem['line']}" if problem["line"] else ""
            key = f" {problem['key']}:" if problem["key"] else ""
            render.write_line(
                stream, f"error: {problem['file']}{line}:{key} {problem['message']}", colour, "red"
            )
        for warning in result["warnings"]:
            where = warning["file"] + (f": {warning['key']}" if warning["key"] else "")
            render.write_line(stream, f"warning: {where}: {warning['message']}", colour, "yellow")
    return code


# --- capture ------------------------------------------------------------------------------------


def capture_values(system: System) -> tuple[dict[str, int | str | list[int]], list[str]]:
    """Live values of the knowledge-base keys, typed for TOML; and what was left out, with why."""
    values: dict[str, int | str | list[int]] = {}
    texts: dict[str, str] = {}  # the same values as profile text, for the rules between keys
    skipped = []
    for name, spec in keys.KEYS.items():
        if spec.removed is not None:
            continue  # gone from current kernels: a profile holding it would fail there
        reading = system.read_sysctl(name)
        if reading.state != PRESENT or reading.value is None:
            if reading.state == MISSING and spec.per_netns == "no":
                # as check says it: the kernel shows global keys in the initial namespace only
                why = "global key, not visible in this network namespace (capture on the host)"
            else:
                why = f"{reading.state} ({reading.error})"
            skipped.append(f"{name}: {why}")
            continue
        error, normalised = tcptune.profiles.normalise_for(spec, reading.value)
        if error:
            skipped.append(f"{name}: live value {reading.value!r} would not validate: {error}")
            continue
        texts[name] = normalised
        if spec.type == keys.INT_VECTOR:
            values[name] = [int(p) for p in normalised.split()]
        elif spec.type in (keys.INT, keys.BOOL, keys.ENUM):
            values[name] = int(normalised)
        else:
            values[name] = normalised
    # Live values can break the rules between keys (a port range from 500, tcp_tw_reuse = 1 with
    # timestamps off): the key a rule names is left out, so the profile validates.
    for _ in range(len(texts)):
        named = [p for p in tcptune.profiles.cross_key_problems(texts, "live") if p.key in texts]
        if not named:
            break
        for problem in named:
            if problem.key in texts:
                live = texts.pop(problem.key)
                del values[problem.key]
                skipped.append(
                    f"{problem.key}: live value {live!r} would not validate: {problem.message}"
                )
    return values, skipped


def run_capture(
    system: System,
    name: str,
    *,
    output: str | None,
    force: bool,
    json_output: bool,
    stream: IO[str],
) -> int:
    tcptune.profiles.check_name(name)
    system.require_proc_sys()
    if output == "":  # not "no --output": an empty variable would write to /etc/tcptune
        raise BadInput("--output is empty", hint="give a file path ending in .toml")
    path = (
        Path(output)
        if output is not None
        else tcptune.profiles.local_dir(system.root) / f"{name}.toml"
    )
    if output is not None and is_dir(path):
        raise BadInput(f"--output {output} is a directory", hint="give a file path ending in .toml")
    if exists(path) and not is_file(path):  # a FIFO, socket or device: never replaced
        raise BadInput(
            f"{path} is not a regular file; refusing to replace it",
            hint="give a file path ending in .toml",
        )
    if exists(path) and not force:
        raise BadInput(f"{path} already exists", hint="use --force to overwrite it")
    values, skipped = capture_values(system)
    if not values:
        raise EnvironmentProblem(
            f"no readable TCP setting under {system.path('proc/sys/net')}",
            hint="run where /proc/sys is readable, or fix --root",
        )
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")  # noqa: UP017
    release = system.kernel_release() or "unknown kernel"
    description = f"Captured from {host_name()} (kernel {release}) at {now}"
    entered = getattr(system, "entered", None)
    if entered is not None:
        from tcptune import netns
        from tcptune.system import describe_netns

        initial = netns.is_initial(system.read_sysctl(netns.INITIAL_ONLY_KEY))
        where = describe_netns(system, initial=initial)
        description += f", {printable(where.describe())}"
    header = (
        "# Captured by `tcptune profiles capture`: the live values of this machine's watched TCP\n"
        "# keys. Compare other machines with `tcptune check PROFILE`.\n"
    )
    body = tomli_w.dumps({"description": description, "sysctl": values})
    data = (header + body).encode()
    # The file must load back as a valid profile before it replaces anything.
    problems = tcptune.profiles.parse(data, path, name).problems
    if problems:  # a bug: capture must only write what validates
        raise AssertionError(f"captured profile does not validate: {problems}")
    try:
        make_dirs(path.parent)
        atomic_write(path, data, mode=0o644)
    except PermissionError as err:
        raise EnvironmentProblem(
            f"cannot write {path}: permission denied", hint="run as root or use --output"
        ) from err
    except OSError as err:
        raise EnvironmentProblem(
            f"cannot write {path}: {err.strerror or err}", hint="check the disk and the path"
        ) from err
    doc = {"name": name, "path": str(path), "keys": len(values), "skipped": skipped}
    if json_output:
        render.write_json(stream, "profiles capture", doc)
    else:
        stream.write(printable(f"captured {len(values)} keys into {path}") + "\n")
        for line in skipped:
            stream.write(f"  left out {line}\n")
    return EXIT_OK
