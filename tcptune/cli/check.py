"""`tcptune check [PROFILE]`."""

import sys
from typing import Annotated

import typer

from tcptune.cli.completion import profile_names
from tcptune.cli.options import (
    BAD_INPUT,
    JsonOption,
    RootOption,
    StrictOption,
    epilog,
    open_system,
)

SHORT_HELP = "show the live TCP sysctls with kernel-aware findings"
EPILOG = epilog(
    [
        "tcptune check",
        "tcptune check --json | jq '.findings'",
        "tcptune check server-profile",
        "tcptune check ./my-profile.toml --json",
        "tcptune --root /srv/snapshot check --strict",
    ],
    {
        0: "ok: no error-level finding (with PROFILE: and every key in sync)",
        1: "error-level findings, warning-level ones with --strict, or drift from PROFILE",
        2: f"{BAD_INPUT}, an unknown or invalid profile",
        3: "environment error: no /proc/sys/net, or the settings cannot be read",
    },
)

OptionalProfile = Annotated[
    str | None,
    typer.Argument(
        metavar="PROFILE",
        help="compare with this profile (a name, or a path containing '/' or ending in .toml)",
        show_default=False,
        autocompletion=profile_names,
    ),
]


def check(
    ctx: typer.Context,
    profile: OptionalProfile = None,
    json_output: JsonOption = False,
    strict: StrictOption = False,
    root: RootOption = None,
) -> int:
    """Show the watched TCP sysctls, their defaults on this kernel, and findings (each with a
    severity and a source); with PROFILE, how far the machine is from that profile."""
    from tcptune.commands import check as command

    return command.run(
        open_system(ctx, root),
        json_output=json_output,
        strict=strict,
        stream=sys.stdout,
        profile_name=profile,
    )
