"""--netns PATH and --pid PID, given before the command: which namespace they name, and the
refusal of a command that cannot look there. Shared by options.open_system and the completion
command (which never opens the machine)."""

import typer

from tcptune.errors import BadInput


def namespace_option(ctx: typer.Context) -> tuple[str, str] | None:
    """--netns PATH or --pid PID as given before the command: ("--pid", "4242"), or None."""
    top = ctx.find_root()
    netns, pid = top.params.get("netns"), top.params.get("pid")
    if netns is not None and pid is not None:
        raise BadInput("--netns and --pid each name a namespace", hint="give one of them")
    if netns is not None:
        return "--netns", netns
    if pid is not None:
        return "--pid", str(pid)
    return None


def refused(ctx: typer.Context, option: str, why: tuple[str, str] | None) -> BadInput:
    """--netns/--pid given to a command that does not look into a network namespace."""
    reason, hint = why or ("it reads nothing from a network namespace", f"drop {option}")
    return BadInput(f"{option} does not apply to `{ctx.command_path}`: {reason}", hint=hint)


def refuse_namespace(ctx: typer.Context, why: tuple[str, str] | None = None) -> None:
    """For commands that never open the machine (completion): refuse --netns/--pid."""
    target = namespace_option(ctx)
    if target is not None:
        raise refused(ctx, target[0], why)
