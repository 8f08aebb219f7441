"""The tcptune command line: one Typer app, its commands in the order a reader meets them.

`tcptune.cli.main:main` is the console script; `python -m tcptune` runs the same.
"""

import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext, redirect_stdout
from typing import IO, Annotated

import typer

from tcptune import __version__
from tcptune.cli import (
    apply,
    backups,
    check,
    completion,
    explain,
    export,
    options,
    profiles,
    revert,
    sockets,
)
from tcptune.cli.core import Command, Group
from tcptune.cli.options import RootOption


class Tcptune(Group):
    order = (
        "check",
        "explain",
        "profiles",
        "apply",
        "revert",
        "backups",
        "sockets",
        "export",
        "completion",
    )


app = typer.Typer(
    name="tcptune",
    cls=Tcptune,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
    add_completion=False,  # `tcptune completion SHELL` instead
    pretty_exceptions_enable=False,  # a bug prints a plain traceback and exits 4
    rich_markup_mode=None,  # plain help unless on a terminal: see core.CommandMixin
    epilog=options.epilog(
        [
            "tcptune check",
            "tcptune check --json --strict",
            "tcptune explain tcp_tw_reuse",
            "tcptune check server-profile",
            "tcptune apply server-profile --dry-run",
            "sudo tcptune apply server-profile",
            "sudo tcptune revert",
            "tcptune sockets --top 5",
        ],
        {
            0: "ok",
            1: "drift from a profile, error-level findings, or warning-level findings with "
            "--strict",
            2: "bad input (command line, unknown key, invalid profile)",
            3: "environment error (cannot read, permission denied, read-only /proc/sys)",
            4: "internal error (a bug in tcptune: please report it)",
            130: "interrupted (Ctrl-C)",
        },
    ),
)


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"tcptune {__version__}")
        raise typer.Exit()


VersionOption = Annotated[
    bool,
    typer.Option(
        "--version", callback=show_version, is_eager=True, help="print the version and exit"
    ),
]


@app.callback()
def tcptune(root: RootOption = None, version: VersionOption = False) -> None:
    """Inspect and tune Linux TCP TIME_WAIT / CLOSE_WAIT related sysctls: what the kernel runs
    with, what it means, profiles to compare with and apply, and a socket census."""


def add_command(function: Callable[..., int], short_help: str, epilog: str) -> None:
    app.command(function.__name__, cls=Command, short_help=short_help, epilog=epilog)(function)


add_command(check.check, check.SHORT_HELP, check.EPILOG)
add_command(explain.explain, explain.SHORT_HELP, explain.EPILOG)
app.add_typer(profiles.app, name="profiles", short_help=profiles.SHORT_HELP)
add_command(apply.apply, apply.SHORT_HELP, apply.EPILOG)
add_command(revert.revert, revert.SHORT_HELP, revert.EPILOG)
add_command(backups.backups, backups.SHORT_HELP, backups.EPILOG)
add_command(sockets.sockets, sockets.SHORT_HELP, sockets.EPILOG)
add_command(export.export, export.SHORT_HELP, export.EPILOG)
app.command(
    "completion",
    cls=Command,
    short_help="print a completion script for bash, zsh or fish",
    epilog=options.epilog(
        [
            "source <(tcptune completion bash)",
            "tcptune completion bash > /etc/bash_completion.d/tcptune",
            'tcptune completion zsh > "${fpath[1]}/_tcptune"',
            "tcptune completion fish > ~/.config/fish/completions/tcptune.fish",
        ],
        {0: "ok", 2: "bad input: the command line (an unknown shell)"},
    ),
)(completion.completion)


def command_paths() -> list[str]:
    """Every command and sub-command, as typed after `tcptune`: ["check", ..., "profiles list",
    ...], in the order of the help."""
    top = typer.main.get_command(app)
    paths = []
    with top.make_context("tcptune", [], resilient_parsing=True) as ctx:
        for name in top.list_commands(ctx):  # type: ignore[attr-defined]
            paths.append(name)
            group = top.get_command(ctx, name)  # type: ignore[attr-defined]
            paths += [f"{name} {sub}" for sub in getattr(group, "commands", {})]
    return paths


def main(argv: Sequence[str] | None = None, stdout: IO[str] | None = None) -> int:
    """Run tcptune with `argv` (default: the process's arguments); return its exit code.
    With `stdout`, the commands write there instead of sys.stdout."""
    command = typer.main.get_command(app)
    with redirect_stdout(stdout) if stdout is not None else nullcontext():
        return command.main(args=argv, standalone_mode=False)


if __name__ == "__main__":
    sys.exit(main())
