"""The command line: one Typer application (main.py) with a module per command or group.

Each command is a thin wrapper: it opens the machine (--root) and calls the plain function in
tcptune.commands that does the work, imported when the command runs so that start-up stays cheap.
"""
