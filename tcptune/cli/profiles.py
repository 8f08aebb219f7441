"""`tcptune profiles list|show|validate|capture`: a group of its own (a Typer sub-app)."""

import sys
from typing import Annotated

import typer

from tcptune.cli.core import Command, Group
from tcptune.cli.options import (
    BAD_INPUT,
    JsonOption,
    ProfileArgument,
    RootOption,
    epilog,
    open_system,
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
        {0: "ok (an invalid profile is listed as such)", 2: BAD_INPUT},
    ),
)
def list_profiles(
    ctx: typer.Context, json_output: JsonOption = False, root: RootOption = None
) -> int:
    """List every profile tcptune finds, shipped and in {root}/etc/tcptune/profiles: name,
    description and file."""
    from tcptune.commands import profiles as command

    return command.run_list(open_system(ctx, root), json_output=json_output, stream=sys.stdout)


@app.command(
    "show",
    cls=Command,
    short_help="a profile merged with its extends chain, and where each value came from",
    epilog=epilog(
        ["tcptune profiles show proxy-profile", "tcptune profiles show ./my-profile.toml --json"],
        {0: "ok", 2: f"{BAD_INPUT}, {INVALID}"},
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
    from tcptune.commands import profiles as command

    return command.run_show(
        open_system(ctx, root), name, json_output=json_output, stream=sys.stdout
    )


PathsArgument = Annotated[
    list[str],
    typer.Argument(metavar="PATH...", help="profile files (or names)", show_default=False),
]


@app.command(
    "validate",
    cls=Command,
    short_help="check profile files; exit 0 when all are valid, 2 otherwise",
    epilog=epilog(
        [
            "tcptune profiles validate ./my-profile.toml",
            "tcptune profiles validate /etc/tcptune/profiles/*.toml --json",
        ],
        {0: "every profile is valid", 2: f"a profile is invalid, or {BAD_INPUT}"},
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
    from tcptune.commands import profiles as command

    return command.run_validate(
        open_system(ctx, root), paths, json_output=json_output, stream=sys.stdout
    )


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
        ],
        {
            0: "the profile is written",
            2: f"{BAD_INPUT}, an invalid NAME, or the file exists (without --force)",
            3: "environment error: /proc/sys cannot be read, or the file cannot be written",
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
    {root}/etc/tcptune/profiles/NAME.toml, where `tcptune check NAME` finds it."""
    from tcptune.commands import profiles as command

    return command.run_capture(
        open_system(ctx, root),
        name,
        output=output,
        force=force,
        json_output=json_output,
        stream=sys.stdout,
    )
