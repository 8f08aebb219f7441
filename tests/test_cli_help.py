"""Help: every command and sub-command has a description, ends with its examples and the exit
codes it can return (only those), and is plain text off a terminal, rich on one."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import TCPTUNE, run_cli, run_in_pty, run_tcptune
from typer.main import get_command

from tcptune import __version__
from tcptune.cli.main import app, command_paths

# What each command can return, read from its code: 1 only where findings or drift decide it,
# 3 only where something is read or written that may fail. (4, a bug, and 130, Ctrl-C, are
# listed once, in `tcptune --help`.)
EXIT_CODES = {
    "check": {0, 1, 2, 3},
    "explain": {0, 2, 3},
    "profiles": {0, 2, 3},
    "profiles list": {0, 2, 3},
    "profiles show": {0, 2, 3},
    "profiles validate": {0, 2, 3},
    "profiles capture": {0, 2, 3},
    "apply": {0, 1, 2, 3},
    "revert": {0, 2, 3},
    "backups": {0, 2, 3},
    "sockets": {0, 1, 2, 3},
    "export": {0, 2, 3},
    "completion": {0, 2},
}
ORDER = [
    "check",
    "explain",
    "profiles",
    "apply",
    "revert",
    "backups",
    "sockets",
    "export",
    "completion",
]


def sections(help_text: str) -> tuple[list[str], set[int], str]:
    """The example lines, the exit codes listed, and what comes after the exit codes."""
    examples = re.search(r"^examples:\n((?:  .*\n)+)", help_text, flags=re.M)
    codes = re.search(r"^exit codes:\n((?:  .*\n?)+)", help_text, flags=re.M)
    assert examples and codes, help_text
    listed = {int(m) for m in re.findall(r"^  (\d+)  ", codes.group(1), flags=re.M)}
    return examples.group(1).splitlines(), listed, help_text[codes.end() :]


def test_every_command_has_a_row_here() -> None:
    assert set(command_paths()) == set(EXIT_CODES)


@pytest.mark.parametrize("path", list(EXIT_CODES))
def test_help_ends_with_examples_and_only_its_exit_codes(path: str) -> None:
    done = run_tcptune(*path.split(), "--help")
    assert done.returncode == 0 and done.stderr == ""
    examples, codes, rest = sections(done.stdout)
    shown = re.compile(rf"\btcptune (--(root|pid|netns) \S+ )?{path}\b")
    assert examples and all(shown.search(line) for line in examples), examples
    assert codes == EXIT_CODES[path]
    assert rest.strip() == ""  # nothing after the exit codes
    assert done.stdout.index("examples:") > done.stdout.index("Options:")


def test_program_help_lists_the_commands_in_order_and_every_exit_code() -> None:
    done = run_tcptune("--help")
    assert done.returncode == 0
    listing = done.stdout.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    assert re.findall(r"^  (\S+)", listing, flags=re.M) == ORDER
    _, codes, _ = sections(done.stdout)
    assert codes == {0, 1, 2, 3, 4, 130}


def test_every_command_has_a_description_and_a_short_help() -> None:
    top = get_command(app)

    def walk(command, path: str):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}".strip())

    for path, command in walk(top, ""):
        assert command.help and len(command.help.split()) >= 8, path
        if path:
            assert command.get_short_help_str(80), path


@pytest.mark.parametrize("path", ["", "check", "profiles capture"])
def test_descriptions_are_wrapped_to_the_help_width(path: str) -> None:
    done = run_tcptune(*path.split(), "--help", env={"COLUMNS": "60"})
    assert done.returncode == 0
    assert max(len(line) for line in done.stdout.splitlines()) <= 60, done.stdout


def test_help_through_the_cli_runner_is_plain() -> None:
    result = run_cli("apply", "--help")
    assert result.code == 0
    assert "\x1b[" not in result.out and "─" not in result.out
    assert "  tcptune apply server-profile --dry-run\n" in result.out


def terminal_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM", "COLUMNS")}
    return {**env, "TERM": "xterm-256color", **extra}


def test_help_on_a_terminal_is_rich_and_keeps_the_examples() -> None:
    _, out = run_in_pty([str(TCPTUNE), "sockets", "--help"], terminal_env())
    assert "\x1b[" in out and "─" in out  # colour and boxes
    text = re.sub(r"\x1b\[[0-9;]*m", "", out).replace("\r\n", "\n")
    assert "   tcptune sockets --json | jq '.close_wait_owners'" in text
    codes = text.split("exit codes:", 1)[1]
    assert re.findall(r"^ +(\d) +", codes, flags=re.M) == ["0", "1", "2", "3"]
    assert "\n --watch" not in codes  # a wrapped meaning stays under its text


@pytest.mark.parametrize("path", list(EXIT_CODES))
def test_rich_help_of_every_command(path: str) -> None:
    """On a terminal every help renders (no markup in the texts trips rich) and keeps its
    examples and exit codes."""
    _, out = run_in_pty([str(TCPTUNE), *path.split(), "--help"], terminal_env())
    text = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "Traceback" not in text and "─" in text
    assert "examples:" in text and "exit codes:" in text
    assert f"tcptune {path}" in text


@pytest.mark.parametrize("extra", [{"NO_COLOR": "1"}, {"TERM": "dumb"}])
def test_help_on_a_terminal_is_plain_with_no_color_or_a_dumb_terminal(extra) -> None:
    _, out = run_in_pty([str(TCPTUNE), "sockets", "--help"], terminal_env(**extra))
    assert "\x1b[" not in out and "─" not in out
    assert "tcptune sockets --watch 2" in out


def test_usage_errors_never_print_clicks_blocks() -> None:
    for argv in (["check", "--jsno"], ["profiles"], ["export", "x"], ["chek"]):
        done = run_tcptune(*argv)
        assert "Usage:" not in done.stdout + done.stderr
        assert "Error" not in done.stderr and "Aborted" not in done.stderr


def test_no_typer_completion_options() -> None:
    for option in ("--install-completion", "--show-completion"):
        done = run_tcptune(option)
        assert done.returncode == 2 and f"no such option: {option}" in done.stderr
    assert "--install-completion" not in run_tcptune("--help").stdout


def run_module(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tcptune", *argv], capture_output=True, text=True, timeout=60
    )


def test_python_dash_m_runs_the_same_app() -> None:
    assert run_module("--version").stdout == run_tcptune("--version").stdout
    assert run_tcptune("--version").stdout == f"tcptune {__version__}\n"
    assert run_module("--help").stdout == run_tcptune("--help").stdout
    assert run_module("chek").stderr == run_tcptune("chek").stderr


def test_dash_h_is_help_too() -> None:
    for argv in ([], ["check"], ["profiles"], ["profiles", "show"]):
        assert run_tcptune(*argv, "-h").stdout == run_tcptune(*argv, "--help").stdout
