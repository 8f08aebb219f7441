"""`tcptune explain KEY`."""

import sys
from typing import Annotated

import typer

from tcptune.cli.options import BAD_INPUT, JsonOption, RootOption, epilog, open_system

SHORT_HELP = "what a key really does: values, default, kernel history, sources"
EPILOG = epilog(
    [
        "tcptune explain tcp_tw_reuse",
        "tcptune explain net.ipv4.tcp_fin_timeout",
        "tcptune explain /proc/sys/net/ipv4/tcp_tw_recycle --json",
    ],
    {0: "ok", 2: f"{BAD_INPUT}, or a key tcptune does not know"},
)

KeyArgument = Annotated[
    str,
    typer.Argument(
        metavar="KEY",
        help="net.ipv4.tcp_tw_reuse, tcp_tw_reuse or /proc/sys/net/ipv4/tcp_tw_reuse",
        show_default=False,
    ),
]


def explain(
    ctx: typer.Context,
    key: KeyArgument,
    json_output: JsonOption = False,
    root: RootOption = None,
) -> int:
    """Explain one sysctl: its meaning, values, default, kernel history, misconceptions and
    sources, with its live value on this machine."""
    from tcptune.commands import explain as command

    return command.run(key, open_system(ctx, root), json_output=json_output, stream=sys.stdout)
