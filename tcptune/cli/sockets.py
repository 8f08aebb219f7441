"""`tcptune sockets`."""

import sys
from typing import Annotated, Literal

import typer

from tcptune.cli.options import (
    BAD_INPUT,
    JsonOption,
    RootOption,
    epilog,
    open_system,
    positive_int,
    positive_seconds,
)

SHORT_HELP = "TIME_WAIT / CLOSE_WAIT census: states, port pressure, CLOSE_WAIT owners"
EPILOG = epilog(
    [
        "tcptune sockets",
        "tcptune sockets --top 3",
        "tcptune sockets --json | jq '.close_wait_owners'",
        "tcptune sockets --watch 2",
        "tcptune --root /srv/snapshot sockets --source proc",
    ],
    {
        0: "ok: no error-level finding (and --watch ended with Ctrl-C)",
        1: "an error-level finding",
        2: f"{BAD_INPUT}, --source netlink below --root, --watch with --json",
        3: "environment error: no socket table to read, or netlink refused (--source netlink)",
    },
)

TopOption = Annotated[
    int,
    typer.Option(
        "--top",
        metavar="N",
        parser=positive_int,
        help="show the N largest port-pressure groups and CLOSE_WAIT owners",
    ),
]
WatchOption = Annotated[
    float | None,
    typer.Option(
        "--watch",
        metavar="SECONDS",
        parser=positive_seconds,
        help="refresh every SECONDS until Ctrl-C",
        show_default=False,
    ),
]
SourceOption = Annotated[
    Literal["auto", "netlink", "proc"],
    typer.Option(
        "--source",
        help="where to read the sockets: netlink (the kernel, as ss does), proc "
        "(/proc/net/tcp and tcp6), or auto: netlink on the live machine, else proc",
    ),
]


def sockets(
    ctx: typer.Context,
    json_output: JsonOption = False,
    top: TopOption = 10,
    watch: WatchOption = None,
    source: SourceOption = "auto",
    root: RootOption = None,
) -> int:
    """Count TCP sockets per state (IPv4 and IPv6), TIME_WAIT against tcp_max_tw_buckets,
    ephemeral port pressure per destination and the processes that hold CLOSE_WAIT sockets,
    with findings that name the cause and the remedy. Reads the kernel over NETLINK_SOCK_DIAG,
    or /proc/net/tcp and tcp6."""
    from tcptune.commands import sockets as command

    return command.run(
        open_system(ctx, root),
        json_output=json_output,
        top=top,
        watch=watch,
        source=source,
        stream=sys.stdout,
    )
