"""`tcptune export PROFILE --format sysctl|k8s|docker|ansible`: a profile for another tool.

`export` is the command; `run` does its work and is what the tests call without the command line.
"""

import sys
from typing import IO, Annotated, Literal

import typer

from tcptune import formats, profiles
from tcptune.cli.options import BAD_INPUT, ProfileArgument, RootOption, epilog, open_system
from tcptune.errors import EXIT_OK
from tcptune.system import System

SHORT_HELP = "a profile as sysctl.d text, a Kubernetes pod snippet, Docker flags or Ansible tasks"
EPILOG = epilog(
    [
        "tcptune export server-profile --format sysctl",
        "tcptune export client-profile --format k8s",
        "tcptune export client-profile --format docker",
        "tcptune export proxy-profile --format ansible > tasks/tcp.yml",
    ],
    {
        0: "ok",
        2: f"{BAD_INPUT}, an unknown or invalid profile",
        3: "environment error: --root, a profile directory or a file cannot be read",
    },
)

FormatOption = Annotated[
    Literal["sysctl", "k8s", "docker", "ansible"],
    typer.Option("--format", help="what to print", show_default=False),
]


def export(
    ctx: typer.Context,
    profile: ProfileArgument,
    fmt: FormatOption,
    root: RootOption = None,
) -> int:
    """Print a profile for another tool. k8s and docker accept only keys that are per network
    namespace, and mark the Kubernetes keys the kubelet treats as unsafe."""
    return run(open_system(ctx, root), profile, fmt=fmt, stream=sys.stdout)


def run(system: System, profile_name: str, *, fmt: str, stream: IO[str]) -> int:
    profile = profiles.load(profile_name, system.root)
    stream.write(formats.export(profile.name, profile.sysctl, fmt))
    return EXIT_OK
