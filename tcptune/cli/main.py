"""The tcptune command line: one Typer app, its commands in the order a reader meets them.

`tcptune.cli.main:main` is the console script; `python -m tcptune` runs the same.
"""

import sys
from collections.abc import Sequence
from contextlib import nullcontext, redirect_stdout
from importlib import import_module
from typing import IO, Annotated

import typer
from typer._click import Command as ClickCommand
from typer._click import Context
from typer._click.exceptions import UsageError

from tcptune import __version__
from tcptune.cli import options
from tcptune.cli.core import Command, Group
from tcptune.cli.options import NetnsOption, PidOption, RootOption

# The commands, in the order of the help. Each lives in tcptune/cli/NAME.py, which is imported,
# and the command built, only when a command line names it or a help lists it (click's "lazily
# loading subcommands" pattern): `tcptune check` pays for check alone.
COMMANDS = (
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


class Tcptune(Group):
    """The program: its commands are added to the app, and built, on first use."""

    def list_commands(self, ctx: Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Context, cmd_name: str) -> ClickCommand | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands[cmd_name] = build(cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, ClickCommand | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except UsageError:  # an unknown command: "did you mean" needs every name loaded
            for name in COMMANDS:
                self.get_command(ctx, name)
            return super().resolve_command(ctx, args)


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
            "sudo tcptune --pid 4242 sockets",
            "sudo tcptune sockets --all-netns",
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


def show_version(ctx: typer.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:  # not while a shell's completion request parses
        typer.echo(f"tcptune {__version__}")
        raise typer.Exit()


VersionOption = Annotated[
    bool,
    typer.Option(
        "--version", callback=show_version, is_eager=True, help="print the version and exit"
    ),
]


@app.callback()
def tcptune(
    root: RootOption = None,
    netns: NetnsOption = None,
    pid: PidOption = None,
    version: VersionOption = False,
) -> None:
    """Inspect and tune Linux TCP TIME_WAIT / CLOSE_WAIT related sysctls: what the kernel runs
    with, what it means, profiles to compare with and apply, and a socket census."""


COMPLETION_HELP = "print a completion script for bash, zsh or fish"
COMPLETION_EPILOG = options.epilog(
    [
        "source <(tcptune completion bash)",
        "tcptune completion bash > /etc/bash_completion.d/tcptune",
        'tcptune completion zsh > "${fpath[1]}/_tcptune"',
        "tcptune completion fish > ~/.config/fish/completions/tcptune.fish",
    ],
    {0: "ok", 2: "bad input: the command line (an unknown shell)"},
)


def register(name: str) -> None:
    """Add command `name`, from its module tcptune/cli/NAME.py, to the app (once)."""
    if name in {info.name for info in app.registered_commands + app.registered_groups}:
        return
    module = import_module(f"tcptune.cli.{name}")
    if name == "profiles":  # a group: a Typer app of its own
        app.add_typer(module.app, name=name, short_help=module.SHORT_HELP)
        return
    short_help, epilog = (
        (COMPLETION_HELP, COMPLETION_EPILOG)
        if name == "completion"
        else (module.SHORT_HELP, module.EPILOG)
    )
    app.command(name, cls=Command, short_help=short_help, epilog=epilog)(getattr(module, name))


def build(name: str) -> ClickCommand:
    """The click command (or group) of command `name`, as typer.main.get_command builds it."""
    register(name)
    for info in app.registered_groups:
        if info.name == name:
            return typer.main.get_group_from_info(
                info,
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=app.rich_markup_mode,
                suggest_commands=app.suggest_commands,
            )
    (info,) = (info for info in app.registered_commands if info.name == name)
    return typer.main.get_command_from_info(
        info,
        pretty_exceptions_short=app.pretty_exceptions_short,
        rich_markup_mode=app.rich_markup_mode,
    )


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
