"""`tcptune explain KEY`: what a key really does, its values, default, history and sources.

`explain` is the command; `run` does its work and is what the tests call without the command
line.
"""

import sys
import textwrap
from typing import IO, Annotated, Any

import typer

from tcptune import keys, netns, render
from tcptune.cli.options import BAD_INPUT, JsonOption, RootOption, epilog, open_system
from tcptune.errors import EXIT_OK, BadInput, printable
from tcptune.kernel import format_version, parse_release
from tcptune.model import PRESENT
from tcptune.system import System, describe_netns

SHORT_HELP = "what a key really does: values, default, kernel history, sources"
EPILOG = epilog(
    [
        "tcptune explain tcp_tw_reuse",
        "tcptune explain net.ipv4.tcp_fin_timeout",
        "tcptune explain /proc/sys/net/ipv4/tcp_tw_recycle --json",
        "sudo tcptune --pid 4242 explain tcp_fin_timeout",
    ],
    {
        0: "ok",
        2: f"{BAD_INPUT}, or a key tcptune does not know",
        3: "environment error: the --root directory cannot be looked at; --netns or --pid "
        "without root",
    },
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
    return run(key, open_system(ctx, root, enters=True), json_output=json_output, stream=sys.stdout)


def run(key: str, system: System | None, *, json_output: bool, stream: IO[str]) -> int:
    spec = resolve(key)
    doc = describe(spec, system)
    if json_output:
        render.write_json(stream, "explain", doc)
    else:
        write_text(doc, stream)
    return EXIT_OK


def resolve(text: str) -> keys.KeySpec:
    spec = keys.lookup(text)
    if spec is not None:
        return spec
    matches = keys.close_matches(text) if keys.is_key_shaped(text) else []
    hint = (
        f"did you mean {', '.join(matches)}?"
        if matches
        else "list the known keys with: tcptune check"
    )
    raise BadInput(f"unknown key {text!r}: tcptune has no knowledge of it", hint=hint)


def _range(spec: keys.KeySpec) -> str | None:
    if spec.minimum is None and spec.maximum is None:
        return None
    low = spec.minimum if spec.minimum is not None else "-"
    high = spec.maximum if spec.maximum is not None else "unbounded"
    each = "each number " if spec.type == keys.INT_VECTOR else ""
    return f"{each}{low}..{high}"


def _defaults(spec: keys.KeySpec) -> list[str]:
    lines = []
    for since, value in spec.defaults:
        shown = repr(value) if value == "" else value
        if value is None:
            shown = spec.default_note or "not recorded"
        prefix = f"since {format_version(since)}: " if since else ""
        if since is None and len(spec.defaults) > 1:
            prefix = "before " + format_version(spec.defaults[1][0]) + ": "  # type: ignore[arg-type]
        lines.append(prefix + shown)
    if spec.default_note and all(v is not None for _, v in spec.defaults):
        lines.append(spec.default_note)
    return lines


def describe(spec: keys.KeySpec, system: System | None) -> dict[str, Any]:
    live = None
    kernel_default = None
    release = None
    where = None
    scope = None
    if system is not None:
        reading = system.read_sysctl(spec.name)
        live = {"state": reading.state, "value": reading.value, "error": reading.error or None}
        release = system.kernel_release()
        kernel_default = spec.default_for(parse_release(release))
        scope = netns.key_scope(spec, parse_release(release))
        if getattr(system, "entered", None) is not None:
            initial = netns.is_initial(system.read_sysctl(netns.INITIAL_ONLY_KEY))
            where = describe_netns(system, initial=initial).to_json()
    return {
        "key": spec.name,
        "proc_path": "/" + spec.proc_path,
        "type": spec.type,
        "summary": spec.summary,
        "explanation": spec.explanation,
        "values": spec.values or None,
        "range": _range(spec),
        "length": spec.length,
        "defaults": _defaults(spec),
        "default_on_this_kernel": kernel_default,
        "kernel_release": release,
        "history": spec.history(),
        "per_netns": spec.netns_text(),
        "per_netns_since": format_version(spec.netns_since) if spec.netns_since else None,
        "misconceptions": list(spec.misconceptions),
        "sources": list(spec.sources),
        "live": live,
        "scope_on_this_kernel": scope,
        "netns": where,
    }


def write_text(doc: dict[str, Any], stream: IO[str]) -> None:
    colour = render.wants_colour(stream)
    wrap = render.width() - 4
    render.write_line(stream, doc["key"], colour, "bold")
    stream.write(f"  {doc['summary']}\n\n")

    def field(label: str, text: str) -> None:
        lines = textwrap.wrap(text, wrap - 16) or [""]
        stream.write(f"  {label:<14}{lines[0]}\n")
        for line in lines[1:]:
            stream.write(f"  {'':<14}{line}\n")

    field("path", doc["proc_path"])
    field("type", doc["type"])
    if doc["values"]:
        for i, (value, meaning) in enumerate(doc["values"].items()):
            field("values" if i == 0 else "", f"{value}: {meaning}")
    if doc["range"]:
        field("range", doc["range"])
    for i, line in enumerate(doc["defaults"]):
        field("default" if i == 0 else "", line)
    field("history", doc["history"])
    field("per netns", doc["per_netns"])
    live = doc["live"]
    if live is not None:
        if live["state"] == PRESENT:
            text = live["value"] if live["value"] != "" else '""'
            if doc["default_on_this_kernel"] is not None:
                same = "default" if live["value"] == doc["default_on_this_kernel"] else "changed"
                text += f" ({same}; kernel {doc['kernel_release']})"
        else:
            text = f"{live['state']}: {live['error']}"
        where = doc["netns"]
        if where is not None:
            owner = where["owner"]["name"]
            text += f"; in network namespace {where['inode']} ({owner}, {where['entered']})"
            if doc["scope_on_this_kernel"] == netns.GLOBAL:
                text += ": a global key, the host's, not this namespace's"
        field("live value", printable(text))
    stream.write("\n")
    for line in textwrap.wrap(doc["explanation"], wrap):
        stream.write(f"  {line}\n")
    if doc["misconceptions"]:
        stream.write("\n")
        render.write_line(stream, "  Misconceptions", colour, "bold")
        for item in doc["misconceptions"]:
            lines = textwrap.wrap(item, wrap - 4)
            stream.write(f"  - {lines[0]}\n")
            for line in lines[1:]:
                stream.write(f"    {line}\n")
    stream.write("\n")
    render.write_line(stream, "  Sources", colour, "bold")
    for source in doc["sources"]:
        stream.write(f"  - {source}\n")
