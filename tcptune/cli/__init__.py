"""The command line: one Typer application (main.py) with a module per command or group.

Each command's module holds the Typer command (a thin wrapper: it opens the machine below --root
and calls a plain function) and the plain functions that do the work, which tests call directly.
main.py imports a command's module only when a command line names it (or a help lists it).
"""
