"""The command line: one Typer application (main.py) with a module per command or group.

Each command's module holds the Typer command (a thin wrapper: it opens the machine below --root
and calls a plain function) and the plain functions that do the work, which tests call directly.
main.py imports a command's module only when a command line names it (or a help lists it).
"""


def main() -> int:
    """The console script and `python -m tcptune`. Loading Typer and building the command take a
    moment: Ctrl-C then ends the program as it does later, with one line and exit 130, not a
    traceback."""
    try:
        from tcptune.cli.main import main as run

        return run()
    except KeyboardInterrupt:
        from tcptune import errors

        errors.say("interrupted")
        return errors.EXIT_INTERRUPTED
    except RuntimeError as err:  # Ctrl-C while Python creates a class, reported as this
        from tcptune import errors

        if not errors.caused_by_interrupt(err):
            raise
        errors.say("interrupted")
        return errors.EXIT_INTERRUPTED
