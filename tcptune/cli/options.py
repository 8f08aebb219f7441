"""Options and arguments shared by several commands, each declared once; the help's epilog.

The commands take these as `Annotated` aliases, e.g. `json_output: JsonOption = False`.
"""

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from tcptune.cli.namespaces import namespace_option, refused
from tcptune.errors import BadInput

if TYPE_CHECKING:  # for the annotation only: --help, --version and completion never load it
    from tcptune.system import System


def positive_int(text: str) -> int:
    """--top N: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise typer.BadParameter(f"expected a whole number >= 1, got {str(text)!r}")
    return value


def positive_seconds(text: str) -> float:
    """--watch SECONDS: more than 0, less than a day."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 86400:  # also rejects nan and inf
        raise typer.BadParameter(f"expected seconds > 0 (e.g. 2 or 0.5), got {str(text)!r}")
    return value


def profile_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Profile names for a shell's completion request (tcptune.cli.completion answers; it is
    imported only when a shell asks)."""
    from tcptune.cli import completion

    return completion.profile_names(ctx, incomplete)


RootOption = Annotated[
    str | None,
    typer.Option(
        "--root",
        metavar="DIR",
        help="read the machine below DIR instead of / (also: TCPTUNE_ROOT)",
        show_default=False,
    ),
]


def process_id(text: str) -> int:
    """--pid PID: a whole number >= 1."""
    value = int(text) if text.isascii() and text.isdigit() and len(text) < 11 else 0
    if value < 1:
        raise typer.BadParameter(f"expected a process id (a whole number >= 1), got {str(text)!r}")
    return value


NetnsOption = Annotated[
    str | None,
    typer.Option(
        "--netns",
        metavar="PATH",
        help="look inside the network namespace of this file: /proc/PID/ns/net, "
        "/run/netns/NAME or a bind mount of one (check, explain, sockets, profiles capture, "
        "apply --runtime-only or --dry-run, revert; needs root)",
        show_default=False,
    ),
]
PidOption = Annotated[
    int | None,
    typer.Option(
        "--pid",
        metavar="PID",
        parser=process_id,
        help="look inside the network namespace of process PID, as nsenter -n -t PID (a "
        "container's: docker inspect -f '{{.State.Pid}}' NAME)",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON document")]
FormatOption = Annotated[
    Literal["text", "json", "prometheus"] | None,
    typer.Option(
        "--format",
        help="text (the default), json (as --json) or prometheus (the Prometheus text "
        "exposition format)",
        show_default=False,
    ),
]
OutputOption = Annotated[
    str | None,
    typer.Option(
        "--output",
        metavar="FILE",
        help="with --format prometheus: write FILE atomically (for node_exporter's textfile "
        "collector, e.g. /var/lib/prometheus/node-exporter/tcptune.prom) instead of printing",
        show_default=False,
    ),
]
StrictOption = Annotated[
    bool, typer.Option("--strict", help="exit 1 on warning-level findings too")
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="show what would change; write nothing")
]
LockWaitOption = Annotated[
    float,
    typer.Option(
        "--lock-wait",
        metavar="SECONDS",
        help="wait this long for another apply or revert to finish",
    ),
]
ProfileArgument = Annotated[
    str,
    typer.Argument(
        metavar="PROFILE",
        help="a profile name, or a path (containing '/' or ending in .toml)",
        show_default=False,
        autocompletion=profile_names,
    ),
]


def open_system(
    ctx: typer.Context,
    root: str | None,
    *,
    enters: bool = False,
    refusal: tuple[str, str] | None = None,
) -> "System":
    """The machine to read: --root after the command, else before it (`tcptune --root DIR
    check`, `tcptune profiles --root DIR list`), else TCPTUNE_ROOT, else /. With --netns or
    --pid (before the command), the running machine seen from inside that network namespace,
    entered here, before anything of it is opened; a command that cannot look there (`enters`
    false) refuses them with `refusal`: (why, how to fix)."""
    from tcptune.system import System, root_from

    target = namespace_option(ctx)
    if target is not None and not enters:
        raise refused(ctx, target[0], refusal)
    parent = ctx.parent
    while root is None and parent is not None:
        root = parent.params.get("root")
        parent = parent.parent
    chosen = root_from(root)
    if target is None:
        return System(chosen)
    option, value = target
    if str(chosen) != "/":
        raise BadInput(
            f"{option} looks into a namespace of the running kernel; it cannot be combined with "
            f"--root {chosen} (or TCPTUNE_ROOT)",
            hint="drop one of them",
        )
    from tcptune import system

    if option == "--pid":
        return system.enter_netns_of_pid(int(value))
    return system.enter_netns_file(value)


TEXT, JSON, PROMETHEUS = "text", "json", "prometheus"


def output_format(json_output: bool, fmt: str | None, output: str | None) -> str:
    """What to print: --format, or --json (its synonym for json), else text. --output writes
    the Prometheus format only."""
    if json_output and fmt not in (None, JSON):
        raise BadInput(f"--json and --format {fmt} contradict each other", hint="give one of them")
    chosen = JSON if json_output else fmt or TEXT
    if output is not None:
        if output == "":  # an unset variable in quotes: never a file name
            raise BadInput("--output is empty", hint="give a file path ending in .prom")
        if chosen != PROMETHEUS:
            raise BadInput("--output writes the Prometheus format", hint="add --format prometheus")
    return chosen


MAX_LOCK_WAIT = 86400


def check_lock_wait(seconds: float) -> None:
    if not 0 <= seconds <= MAX_LOCK_WAIT:  # also nan and inf
        raise BadInput(
            f"--lock-wait must be 0 to {MAX_LOCK_WAIT} seconds (a day)", hint="e.g. --lock-wait 30"
        )


# --- help ---------------------------------------------------------------------------------------

BAD_INPUT = "bad input: the command line or --root"


def epilog(examples: list[str], exit_codes: dict[int, str]) -> str:
    """The end of a command's help: its examples, then the exit codes it can return."""
    width = max(len(str(code)) for code in exit_codes)
    lines = ["examples:", *(f"  {example}" for example in examples), "", "exit codes:"]
    lines += [f"  {code:<{width}}  {meaning}" for code, meaning in sorted(exit_codes.items())]
    return "\n".join(lines)
