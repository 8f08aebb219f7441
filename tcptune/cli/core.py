"""How the command line behaves around the commands: help and usage errors.

- Help is plain text when stdout is not a terminal, NO_COLOR is set or TERM=dumb, and Typer's
  rich help on a terminal. Epilogs (examples, exit codes) keep their lines as written.
- Parsing runs without click's standalone mode: click never prints its own "Usage:/Error:"
  block or "Aborted!". A usage error becomes one line on stderr naming the help to read,
  `tcptune: error: ... (see 'tcptune CMD --help')`, and exit 2; every other error goes through
  tcptune.errors.error_handler, the one place that maps errors to exit codes.
"""

import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer import _click
from typer._click.exceptions import (
    BadParameter,
    MissingParameter,
    NoArgsIsHelpError,
    NoSuchOption,
    UsageError,
)
from typer.core import TyperCommand, TyperGroup

from tcptune import errors

PROG = "tcptune"


class UsageProblem(errors.BadInput):
    """A command line that does not parse: what is wrong, and whose --help to read."""

    @classmethod
    def from_click(cls, err: UsageError) -> "UsageProblem":
        where = err.ctx.command_path if err.ctx is not None else PROG
        return cls(usage_message(err), hint=f"see '{where} --help'")


def usage_message(err: UsageError) -> str:
    """click's message for a usage error, as one lower-case line without control characters."""
    if isinstance(err, NoSuchOption):
        text = f"no such option: {err.option_name}"
        if err.possibilities:
            text += f"; did you mean {' or '.join(sorted(err.possibilities))}?"
    elif isinstance(err, MissingParameter) and err.param is not None:
        text = f"missing {err.param_type or err.param.param_type_name} {param_name(err.param)}"
        choices = getattr(err.param.type, "choices", None)
        if choices:
            text += f": one of {', '.join(map(str, choices))}"
    elif isinstance(err, BadParameter) and err.param is not None:
        text = f"invalid value for {param_name(err.param)}: {err.message.removesuffix('.')}"
    else:  # e.g. "No such command 'chek'. Did you mean 'check'?", "Missing command."
        text = err.format_message().removesuffix(".").replace(". Did you mean", "; did you mean")
        text = text[:1].lower() + text[1:]
    return one_line(text)


def param_name(param: _click.Parameter) -> str:
    """--top for an option, PROFILE for an argument."""
    if param.param_type_name == "option" and param.opts:
        return max(param.opts, key=len)
    return param.metavar or (param.name or "").upper()


def one_line(text: str) -> str:
    """Whitespace runs become one space; other control characters are shown escaped."""
    return errors.printable(" ".join(text.split()))


def plain_help() -> bool:
    from tcptune.render import wants_colour

    return not wants_colour(sys.stdout)


class CommandMixin:
    """What every tcptune command and group does: help, plain or rich, decided when it is
    shown, its epilog printed line by line; usage errors that know their command."""

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc]
        except UsageError as err:
            if err.ctx is None:  # e.g. "option '--output' requires an argument"
                err.ctx = ctx
            raise

    def get_help_option_names(self, ctx: _click.Context) -> list[str]:
        """-h and --help, in that order (click's own answer is a set: its order varies)."""
        taken = {opt for param in self.params for opt in (*param.opts, *param.secondary_opts)}  # type: ignore[attr-defined]
        return [name for name in ctx.help_option_names if name not in taken]

    def get_help_option(self, ctx: _click.Context) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.help = "show this help and exit"
        return option

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        if plain_help():
            _click.Command.format_help(self, ctx, formatter)  # type: ignore[arg-type]
            return
        rich_utils = import_rich_utils()
        width = help_width()
        epilog: str | None = getattr(self, "epilog", None)
        if epilog:  # rich pads the epilog by one column on each side
            self.epilog = "\n".join(wrap_epilog(epilog, width - 2))
        max_width, rich_utils.MAX_WIDTH = rich_utils.MAX_WIDTH, width
        try:
            rich_utils.rich_format_help(obj=self, ctx=ctx, markup_mode="rich")  # type: ignore[arg-type]
        finally:
            self.epilog = epilog
            rich_utils.MAX_WIDTH = max_width

    def format_epilog(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        epilog: str | None = getattr(self, "epilog", None)
        if epilog:
            formatter.write_paragraph()
            for line in wrap_epilog(epilog, formatter.width):
                formatter.write(f"{line}\n")


MIN_HELP_WIDTH = 40
MAX_HELP_WIDTH = 200


def help_width() -> int:
    """The width of the rich help: TERMINAL_WIDTH, else COLUMNS, else the terminal's, kept
    within 40..200 columns whatever the environment says (0, 1, 10**20, "abc")."""
    import shutil

    text = os.environ.get("TERMINAL_WIDTH", "").strip()
    columns = int(text) if text.isdecimal() and len(text) < 6 else 0
    if columns <= 0:
        columns = shutil.get_terminal_size().columns
    return min(max(columns, MIN_HELP_WIDTH), MAX_HELP_WIDTH)


def import_rich_utils() -> Any:
    """typer.rich_utils, which reads TERMINAL_WIDTH as a number when imported: a value that is
    not one is hidden from it (help_width decides the width)."""
    saved = os.environ.pop("TERMINAL_WIDTH", None)
    try:
        from typer import rich_utils
    finally:
        if saved is not None:
            os.environ["TERMINAL_WIDTH"] = saved
    return rich_utils


def wrap_epilog(epilog: str, width: int) -> list[str]:
    """The epilog line by line; a line wider than `width` is wrapped under the text that
    follows its first word (`  2  bad input: ...`)."""
    import re
    import textwrap

    lines = []
    for line in epilog.splitlines():
        hanging = re.match(r" *\S+ +", line)
        if len(line) <= width or hanging is None:
            lines.append(line)
            continue
        lines += textwrap.wrap(
            line[hanging.end() :],
            width,
            initial_indent=hanging.group(),
            subsequent_indent=" " * hanging.end(),
            break_on_hyphens=False,
        )
    return lines


class Command(CommandMixin, TyperCommand):
    """A tcptune command."""


class Group(CommandMixin, TyperGroup):
    """The tcptune program, and its command groups (profiles)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Parse `args` and run the command they name; its exit code is the result (with
        standalone_mode, the process exits with it, as click does)."""
        try:
            with errors.error_handler(), errors.guarded_stdout():
                code = self.run(list(sys.argv[1:] if args is None else args), complete_var, extra)
                sys.stdout.flush()  # a reader that went away shows here, inside the handler
        except SystemExit as done:
            if standalone_mode:
                raise
            return done.code
        if standalone_mode:
            sys.exit(code)
        return code

    def run(self, args: list[str], complete_var: str | None, extra: dict[str, Any]) -> int:
        # The completion request of a shell (an environment variable, and no arguments: the
        # scripts run plain `tcptune`) is answered and exits. A command line with arguments
        # runs as written, whatever the environment holds.
        complete_var = complete_var or "_TCPTUNE_COMPLETE"
        instruction = os.environ.get(complete_var)
        if instruction and not args:
            from tcptune.cli.completion import check_instruction  # registers the answering side

            check_instruction(complete_var, instruction)
            self._main_shell_completion(extra, PROG, complete_var)
        try:
            with self.make_context(PROG, args, **extra) as ctx:
                code = self.invoke(ctx)
        except NoArgsIsHelpError as err:  # `tcptune` alone: the help, but not a success
            typer.echo(err.ctx.get_help() if err.ctx else "")
            return errors.EXIT_BAD_INPUT
        except UsageError as err:
            raise UsageProblem.from_click(err) from None
        except typer.Exit as done:  # --help, --version
            return done.exit_code
        return errors.EXIT_OK if code is None else int(code)
