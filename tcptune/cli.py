"""Command line: argument parsing and dispatch only; the work lives in tcptune.commands.

argparse rather than Typer: importing Typer costs about 95 ms on our reference machine, which alone
is 6x a bare interpreter start and breaks the `tcptune check --json` speed budget (see README).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tcptune import __version__
from tcptune.errors import EXIT_BAD_INPUT, BadInput, run_guarded

TYPE_CHECKING = False  # typing costs ~3 ms at start-up; annotations are never evaluated
if TYPE_CHECKING:
    from typing import IO, NoReturn

EXIT_CODES_HELP = """\
exit codes:
  0  ok
  1  drift from a profile, error-level findings, or warning-level findings with --strict
  2  bad input (command line, unknown key, invalid profile)
  3  environment error (cannot read, permission denied, read-only /proc/sys)
  4  internal error (a bug in tcptune: please report it)
"""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"tcptune: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_BAD_INPUT)


def _root_option(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--root",
        metavar="DIR",
        default=default,
        help="read the machine below DIR instead of / (also: TCPTUNE_ROOT)",
    )


COMMANDS = (
    "check",
    "explain",
    "profiles",
    "apply",
    "revert",
    "backups",
    "export",
    "completion",
    "sockets",
)


def command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line, if any (skipping --root DIR)."""
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token == "--root":
            skip = True
        elif not token.startswith("-"):
            return token if token in COMMANDS else None
    return None


def build_parser(command: str | None = None) -> Parser:
    """The full parser; with `command` (a known subcommand), only that one's sub-parser, since
    building every argparse sub-parser costs several milliseconds at each start."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = Parser(
        prog="tcptune",
        description="Inspect and tune Linux TCP TIME_WAIT / CLOSE_WAIT related sysctls.",
        epilog="examples:\n  tcptune check\n  tcptune check --json --strict\n"
        "  tcptune explain tcp_tw_reuse\n  tcptune check server-profile\n"
        "  tcptune apply server-profile --dry-run\n  sudo tcptune apply server-profile\n"
        "  sudo tcptune revert\n  tcptune sockets --top 5\n\n" + EXIT_CODES_HELP,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"tcptune {__version__}")
    _root_option(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    check = _sub(
        sub,
        command,
        "check",
        help="show the live TCP sysctls with kernel-aware findings",
        description="Show the watched TCP sysctls, their defaults on this kernel, and findings "
        "(each with a severity and a source).",
        epilog="examples:\n  tcptune check\n  tcptune check --json | jq '.findings'\n"
        "  tcptune check server-profile\n  tcptune check ./my-profile.toml --json\n"
        "  tcptune --root /srv/snapshot check --strict\n\n" + EXIT_CODES_HELP,
        formatter_class=formatter,
    )
    check.add_argument(
        "profile",
        nargs="?",
        metavar="PROFILE",
        help="compare with this profile (a name, or a path with '/' or ending in .toml)",
    )
    check.add_argument("--json", action="store_true", help="print one JSON document")
    check.add_argument("--strict", action="store_true", help="exit 1 on warning-level findings too")
    _root_option(check, argparse.SUPPRESS)

    explain = _sub(
        sub,
        command,
        "explain",
        help="what a key really does: values, default, kernel history, sources",
        description="Explain one sysctl: meaning, values, default, kernel history, "
        "misconceptions and sources, with its live value on this machine.",
        epilog="examples:\n  tcptune explain tcp_tw_reuse\n"
        "  tcptune explain net.ipv4.tcp_fin_timeout\n"
        "  tcptune explain /proc/sys/net/ipv4/tcp_tw_recycle --json\n\n" + EXIT_CODES_HELP,
        formatter_class=formatter,
    )
    explain.add_argument(
        "key", metavar="KEY", help="net.ipv4.tcp_tw_reuse, tcp_tw_reuse or a /proc/sys path"
    )
    explain.add_argument("--json", action="store_true", help="print one JSON document")
    _root_option(explain, argparse.SUPPRESS)
    _apply_parsers(sub, command, formatter)
    if command in (None, "profiles"):
        _profiles_parser(sub, formatter)
    export = _sub(
        sub,
        command,
        "export",
        help="a profile as sysctl.d text, a Kubernetes pod snippet, Docker flags or Ansible tasks",
        description="Print a profile for another tool. k8s and docker accept only keys that are "
        "per network namespace, and mark the Kubernetes keys the kubelet treats as unsafe.",
        epilog="examples:\n  tcptune export server-profile --format sysctl\n"
        "  tcptune export client-profile --format k8s\n"
        "  tcptune export client-profile --format docker\n"
        "  tcptune export proxy-profile --format ansible > tasks/tcp.yml\n\n" + EXIT_CODES_HELP,
        formatter_class=formatter,
    )
    export.add_argument("profile", metavar="PROFILE", help="a profile name or a path")
    export.add_argument(
        "--format",
        required=True,
        choices=("sysctl", "k8s", "docker", "ansible"),
        help="what to print",
    )
    _root_option(export, argparse.SUPPRESS)
    completion = _sub(
        sub,
        command,
        "completion",
        help="print a shell completion script",
        description="Print a bash completion script (zsh: run `autoload -U bashcompinit && "
        "bashcompinit` first).",
        epilog="examples:\n  tcptune completion bash > /etc/bash_completion.d/tcptune\n"
        '  eval "$(tcptune completion bash)"',
        formatter_class=formatter,
    )
    completion.add_argument("shell", choices=("bash",), help="the shell")

    sockets = _sub(
        sub,
        command,
        "sockets",
        help="TIME_WAIT / CLOSE_WAIT census: states, port pressure, CLOSE_WAIT owners",
        description="Count TCP sockets per state (IPv4 and IPv6), TIME_WAIT against "
        "tcp_max_tw_buckets, ephemeral port pressure per destination and the processes that "
        "hold CLOSE_WAIT sockets, with findings that name the cause and the remedy. Reads the "
        "kernel over NETLINK_SOCK_DIAG, or /proc/net/tcp and tcp6.",
        epilog="examples:\n  tcptune sockets\n  tcptune sockets --top 3\n"
        "  tcptune sockets --json | jq '.close_wait_owners'\n  tcptune sockets --watch 2\n"
        "  tcptune --root /srv/snapshot sockets --source proc\n\n" + EXIT_CODES_HELP,
        formatter_class=formatter,
    )
    sockets.add_argument("--json", action="store_true", help="print one JSON document")
    sockets.add_argument(
        "--top",
        type=_positive_int,
        default=10,
        metavar="N",
        help="show the N largest port-pressure groups and CLOSE_WAIT owners (default 10)",
    )
    sockets.add_argument(
        "--watch",
        type=_positive_seconds,
        metavar="SECONDS",
        help="refresh every SECONDS until Ctrl-C",
    )
    sockets.add_argument(
        "--source",
        choices=("auto", "netlink", "proc"),
        default="auto",
        help="where to read the sockets: netlink (the kernel, as ss does), proc "
        "(/proc/net/tcp and tcp6), or auto: netlink on the live machine, else proc",
    )
    _root_option(sockets, argparse.SUPPRESS)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 86400:  # also rejects nan and inf
        raise argparse.ArgumentTypeError(f"expected seconds > 0 (e.g. 2 or 0.5), got {text!r}")
    return value


PROFILES_HELP = "list, show, validate and capture profiles"


class _Ignored:
    """Stands in for a sub-parser that this run does not need."""

    def add_argument(self, *args: object, **kwargs: object) -> None:
        pass


def _sub(sub: argparse._SubParsersAction, wanted: str | None, name: str, **kwargs: object):
    """A sub-parser, or nothing when the command line names another (known) command: its
    arguments cannot matter to this run."""
    if wanted in (None, name):
        return sub.add_parser(name, **kwargs)
    return _Ignored()


def _profiles_parser(sub: argparse._SubParsersAction, formatter: type) -> None:
    group = sub.add_parser(
        "profiles",
        help=PROFILES_HELP,
        description="Profiles are TOML files naming target values for network sysctls.",
        epilog="examples:\n  tcptune profiles list\n  tcptune profiles show proxy-profile\n"
        "  tcptune profiles validate ./my-profile.toml\n  tcptune profiles capture golden-box\n\n"
        + EXIT_CODES_HELP,
        formatter_class=formatter,
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    listing = actions.add_parser(
        "list",
        help="name, description and source of every profile",
        epilog="examples:\n  tcptune profiles list\n  tcptune profiles list --json",
        formatter_class=formatter,
    )
    show = actions.add_parser(
        "show",
        help="a profile merged with its extends chain, and where each value came from",
        epilog="examples:\n  tcptune profiles show proxy-profile\n"
        "  tcptune profiles show ./my-profile.toml --json",
        formatter_class=formatter,
    )
    show.add_argument("name", metavar="PROFILE", help="a profile name or a path")
    validate = actions.add_parser(
        "validate",
        help="check profile files; exit 0 when all are valid, 2 otherwise",
        epilog="examples:\n  tcptune profiles validate ./my-profile.toml\n"
        "  tcptune profiles validate /etc/tcptune/profiles/*.toml --json",
        formatter_class=formatter,
    )
    validate.add_argument("paths", metavar="PATH", nargs="+", help="profile files (or names)")
    capture = actions.add_parser(
        "capture",
        help="write this machine's live values as a new profile",
        description="Write the live values of the watched keys as a profile, by default to "
        "{root}/etc/tcptune/profiles/NAME.toml, where `tcptune check NAME` finds it.",
        epilog="examples:\n  tcptune profiles capture golden-box\n"
        "  tcptune profiles capture golden-box --output ./golden-box.toml --force",
        formatter_class=formatter,
    )
    capture.add_argument("name", metavar="NAME", help="profile name: [a-z0-9][a-z0-9_-]*")
    capture.add_argument("--output", metavar="PATH", help="write here instead")
    capture.add_argument("--force", action="store_true", help="overwrite an existing file")
    for action in (listing, show, validate, capture):
        action.add_argument("--json", action="store_true", help="print one JSON document")
        _root_option(action, argparse.SUPPRESS)
    _root_option(group, argparse.SUPPRESS)


def _lock_wait_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lock-wait",
        metavar="SECONDS",
        type=float,
        default=30.0,
        help="wait this long for another apply/revert (default 30)",
    )


def _apply_parsers(sub: argparse._SubParsersAction, command: str | None, formatter: type) -> None:
    apply = _sub(
        sub,
        command,
        "apply",
        help="make the kernel and /etc/sysctl.d match a profile (with a backup)",
        description="Plan, show and apply a profile: write the drop-in atomically, set each "
        "runtime value and read it back. Every apply that changes something is backed up first.",
        epilog="examples:\n  tcptune apply server-profile --dry-run\n"
        "  sudo tcptune apply server-profile\n"
        "  sudo tcptune apply client-profile --persist-only\n\n" + EXIT_CODES_HELP,
        formatter_class=formatter,
    )
    apply.add_argument("profile", metavar="PROFILE", help="a profile name or a path")
    apply.add_argument(
        "--dry-run", action="store_true", help="print the plan and the drop-in diff; write nothing"
    )
    apply.add_argument(
        "--runtime-only", action="store_true", help="set live values only; no drop-in"
    )
    apply.add_argument(
        "--persist-only", action="store_true", help="write the drop-in only; no live values"
    )
    apply.add_argument(
        "--drop-in",
        metavar="NAME",
        default="99-tcptune.conf",
        help="drop-in file name in /etc/sysctl.d (default 99-tcptune.conf)",
    )
    apply.add_argument(
        "--force",
        action="store_true",
        help="replace a drop-in tcptune did not write (it is backed up)",
    )
    _lock_wait_option(apply)
    apply.add_argument("--json", action="store_true", help="print one JSON document")
    _root_option(apply, argparse.SUPPRESS)

    revert = _sub(
        sub,
        command,
        "revert",
        help="undo an apply from its backup (the newest not yet reverted by default)",
        description="Restore the drop-in byte for byte (or remove it if there was none) and the "
        "live values recorded in a backup. Repeated reverts walk back the stack.",
        epilog="examples:\n  sudo tcptune revert\n  tcptune revert --dry-run\n"
        "  sudo tcptune revert 20261125T140102123456Z\n\n" + EXIT_CODES_HELP,
        formatter_class=formatter,
    )
    revert.add_argument("backup_id", metavar="BACKUP_ID", nargs="?", help="from `tcptune backups`")
    revert.add_argument("--dry-run", action="store_true", help="show what would be restored")
    _lock_wait_option(revert)
    revert.add_argument("--json", action="store_true", help="print one JSON document")
    _root_option(revert, argparse.SUPPRESS)

    backups = _sub(
        sub,
        command,
        "backups",
        help="list the backups made by apply",
        epilog="examples:\n  tcptune backups\n  tcptune backups --json",
        formatter_class=formatter,
    )
    backups.add_argument("--json", action="store_true", help="print one JSON document")
    _root_option(backups, argparse.SUPPRESS)


def dispatch(args: argparse.Namespace, stdout: IO[str]) -> int:
    if args.command == "completion":
        from tcptune.completion import bash

        stdout.write(bash(build_parser()))
        return 0
    from tcptune.system import System, root_from

    system = System(root_from(args.root))
    if getattr(args, "lock_wait", 0) < 0:
        raise BadInput("--lock-wait must be 0 or more seconds", hint="e.g. --lock-wait 30")
    if args.command == "check":
        from tcptune.commands import check

        return check.run(
            system,
            json_output=args.json,
            strict=args.strict,
            stream=stdout,
            profile_name=args.profile,
        )
    if args.command == "explain":
        from tcptune.commands import explain

        return explain.run(args.key, system, json_output=args.json, stream=stdout)
    if args.command == "apply":
        from tcptune.commands import apply

        return apply.run(
            system,
            args.profile,
            dry_run=args.dry_run,
            runtime_only=args.runtime_only,
            persist_only=args.persist_only,
            drop_in=args.drop_in,
            force=args.force,
            lock_wait=args.lock_wait,
            json_output=args.json,
            stream=stdout,
        )
    if args.command == "revert":
        from tcptune.commands import revert

        return revert.run_revert(
            system,
            args.backup_id,
            dry_run=args.dry_run,
            lock_wait=args.lock_wait,
            json_output=args.json,
            stream=stdout,
        )
    if args.command == "backups":
        from tcptune.commands import revert

        return revert.run_backups(system, json_output=args.json, stream=stdout)
    if args.command == "export":
        from tcptune.commands import export

        return export.run(system, args.profile, fmt=args.format, stream=stdout)
    if args.command == "profiles":
        from tcptune.commands import profiles

        if args.action == "list":
            return profiles.run_list(system, json_output=args.json, stream=stdout)
        if args.action == "show":
            return profiles.run_show(system, args.name, json_output=args.json, stream=stdout)
        if args.action == "validate":
            return profiles.run_validate(system, args.paths, json_output=args.json, stream=stdout)
        if args.action == "capture":
            return profiles.run_capture(
                system,
                args.name,
                output=args.output,
                force=args.force,
                json_output=args.json,
                stream=stdout,
            )
        raise BadInput("missing action", hint="tcptune profiles list|show|validate|capture")
    if args.command == "sockets":
        from tcptune.commands import sockets

        return sockets.run(
            system,
            json_output=args.json,
            top=args.top,
            watch=args.watch,
            source=args.source,
            stream=stdout,
        )
    raise BadInput(f"unknown command {args.command!r}", hint="see 'tcptune --help'")


def main(argv: Sequence[str] | None = None, stdout: IO[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_in(arguments))
    args = parser.parse_args(arguments)
    if args.command is None:
        parser.print_help(stdout or sys.stdout)
        return EXIT_BAD_INPUT
    out = stdout or sys.stdout
    code = run_guarded(lambda: dispatch(args, out))
    if stdout is None:
        _flush_or_silence()
    return code


def _flush_or_silence() -> None:
    """`tcptune check | head`: a closed pipe is not an error worth a traceback at exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    raise SystemExit(main())
