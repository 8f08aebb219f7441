"""The command line under hostile or unlucky conditions: a closed or full stdout or stderr,
terminal widths from the environment, shell-completion instructions, and empty option values.
Each case gets its documented exit code and at most one line on stderr, never a traceback, and
writes nothing it was not asked to."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import TCPTUNE, FakeMachine, run_in_pty, run_tcptune

import tcptune


def run_shell(command: str, *argv: str, env: dict[str, str] | None = None):
    """Run tcptune through `sh -c COMMAND` ("$@" is tcptune and argv): redirections such as
    `>&-` that subprocess cannot express. The command line is passed as arguments, never as
    shell text."""
    full_env = {k: v for k, v in os.environ.items() if k != "TCPTUNE_ROOT"}
    full_env.update(env or {})
    return subprocess.run(
        ["sh", "-c", command, "sh", str(TCPTUNE), *argv],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def one_error_line(stderr: str) -> bool:
    return stderr.startswith("tcptune: error: ") and stderr.count("\n") == 1


def files_below(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# --- stdout closed or full ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["check"], ["completion", "bash"], ["apply", "client-profile"]],
    ids=" ".join,
)
def test_a_closed_stdout_is_an_environment_error_before_anything_runs(
    modern: FakeMachine, argv: list[str]
) -> None:
    (modern.root / "etc/sysctl.d").mkdir(parents=True)
    before = files_below(modern.root)
    done = run_shell('exec "$@" >&-', "--root", str(modern.root), *argv)
    assert done.returncode == 3, done.stderr
    assert one_error_line(done.stderr) and "Traceback" not in done.stderr
    assert "standard output is closed" in done.stderr
    assert files_below(modern.root) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["check"],
        ["check", "--json"],
        ["completion", "bash"],
        ["explain", "tcp_tw_reuse"],
        ["profiles", "list"],
        [],
    ],
    ids=lambda argv: " ".join(argv) or "no arguments",
)
def test_a_full_stdout_is_an_environment_error(modern: FakeMachine, argv: list[str]) -> None:
    argv = ["--root", str(modern.root), *argv] if argv else []  # none: the help, on stdout
    done = run_shell('exec "$@" >/dev/full', *argv)
    assert done.returncode == 3, done.stderr
    assert one_error_line(done.stderr) and "Traceback" not in done.stderr
    assert "cannot write to standard output: No space left on device" in done.stderr


def test_a_reader_that_goes_away_is_still_not_an_error(modern: FakeMachine) -> None:
    done = run_shell('"$@" | head -c 1 >/dev/null', "--root", str(modern.root), "check")
    assert done.returncode == 0 and done.stderr == ""


@pytest.mark.parametrize("redirect", ["2>&-", "2>/dev/full"])
def test_a_closed_or_full_stderr_keeps_the_exit_code(modern: FakeMachine, redirect: str) -> None:
    root = str(modern.root)
    assert run_shell(f'exec "$@" {redirect}', "chek").returncode == 2
    assert run_shell(f'exec "$@" {redirect}', "--root", "/nonexistent", "check").returncode == 2
    empty = modern.root / "empty"
    empty.mkdir()
    assert run_shell(f'exec "$@" {redirect}', "--root", str(empty), "check").returncode == 3
    done = run_shell(f'exec "$@" {redirect}', "--root", root, "check", "--json")
    assert done.returncode == 0 and done.stdout.startswith("{")


# --- the rich help on a terminal whose width comes from the environment -------------------------


@pytest.mark.parametrize(
    "width",
    [
        {"COLUMNS": "0"},
        {"COLUMNS": "1"},
        {"COLUMNS": "2"},
        {"COLUMNS": "10000"},
        {"COLUMNS": "99999999999999999999"},
        {"COLUMNS": "abc"},
        {"TERMINAL_WIDTH": "abc"},
        {"TERMINAL_WIDTH": "0"},
        {"TERMINAL_WIDTH": "-3"},
        {"TERMINAL_WIDTH": "99999999999999999999"},
    ],
    ids=lambda width: " ".join(f"{k}={v}" for k, v in width.items()),
)
@pytest.mark.parametrize("argv", [["--help"], ["apply", "-h"], ["profiles", "capture", "-h"]])
def test_rich_help_at_any_width_from_the_environment(
    width: dict[str, str], argv: list[str]
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM", "COLUMNS")}
    env.update({"TERM": "xterm-256color", **width})
    code, out = run_in_pty([str(TCPTUNE), *argv], env)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out).replace("\r\n", "\n")
    assert code == 0, text[-2000:]
    assert "Traceback" not in text
    assert "Usage:" in text and "exit codes:" in text
    assert max(len(line) for line in text.splitlines()) <= 200


# --- shell-completion instructions in the environment -------------------------------------------


@pytest.mark.parametrize(
    "instruction", ["bogus", "source", "bash_source", "complete_powershell", "source_tcsh"]
)
def test_an_unknown_completion_instruction_is_one_line_and_exit_2(
    instruction: str, tmp_path: Path
) -> None:
    done = run_tcptune(env={"_TCPTUNE_COMPLETE": instruction}, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert one_error_line(done.stderr), done.stderr
    assert "_TCPTUNE_COMPLETE" in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("instruction", ["source_bash", "complete_bash", "bogus"])
def test_a_completion_variable_left_in_the_environment_does_not_replace_a_command(
    modern: FakeMachine, instruction: str, tmp_path: Path
) -> None:
    """The shells ask with no arguments; a command line with arguments runs as written, so a
    stray `export _TCPTUNE_COMPLETE=...` cannot turn `tcptune apply` into a silent success."""
    env = {"_TCPTUNE_COMPLETE": instruction, "_TCPTUNE_COMPLETE_ARGS": "tcptune "}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = run_tcptune("--root", str(modern.root), "check", "--json", env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("{") and '"command": "check"' in done.stdout
    assert list(cwd.iterdir()) == []


def test_the_version_option_answers_nothing_to_a_completion_request() -> None:
    env = {"_TCPTUNE_COMPLETE": "complete_bash", "_TCPTUNE_COMPLETE_ARGS": "tcptune --version "}
    done = run_tcptune(env=env)
    assert done.returncode == 0
    assert done.stdout and all(line.startswith("plain\t") for line in done.stdout.splitlines())


# CPython itself reports a KeyboardInterrupt that lands inside its import lock's clean-up as
# "Exception ignored in: <function _get_module_lock.<locals>.cb ...>" and goes on: the
# interpreter's own message, which no Python code can intercept.
IMPORT_LOCK_NOTICE = re.compile(
    r"Exception ignored in: <function _get_module_lock\.<locals>\.cb at 0x[0-9a-f]+>\n"
    r"Traceback \(most recent call last\):\n(  .*\n)+KeyboardInterrupt: ?\n"
)


# A SIGINT that lands before tcptune's entry point runs ends the program as CPython ends it:
# while the interpreter starts ("Fatal Python error: init_...", exit 1, or a bare
# KeyboardInterrupt), or while the console script pip generated imports `tcptune.cli` (Python's
# traceback through importlib, death by SIGINT). Which is which is told by the frames: none of
# them may be in tcptune's own files.
TCPTUNE_DIR = str(Path(tcptune.__file__).parent)


def before_tcptune_ran(code: int, stderr: str) -> bool:
    import signal

    frames = re.findall(r'^  File "([^"]+)"', stderr, flags=re.MULTILINE)
    if any(frame.startswith(TCPTUNE_DIR) for frame in frames):
        return False
    lines = stderr.splitlines()
    if code == 1 and lines and lines[0].startswith("Fatal Python error: init_"):
        return True
    if code == 1 and lines == ["KeyboardInterrupt"]:
        return True
    return (
        code == -signal.SIGINT
        and bool(lines)
        and lines[0] == "Traceback (most recent call last):"
        and lines[-1] == "KeyboardInterrupt"
        and frames[:1] == [str(TCPTUNE)]
        and all(f == str(TCPTUNE) or f.startswith("<frozen ") for f in frames)
    )


@pytest.mark.parametrize("delay_ms", [15, 30, 50, 80, 120])
def test_ctrl_c_while_starting_is_one_line_and_130(modern: FakeMachine, delay_ms: int) -> None:
    """SIGINT at moments while the interpreter loads Typer and the command (from 15 ms: the
    interpreter's own start comes first): never a traceback of tcptune's. The process ends with
    130 and `tcptune: interrupted`, or, signalled before Python's own handler exists, dies of
    SIGINT silently; a run that finished first keeps its own code."""
    import signal

    env = {k: v for k, v in os.environ.items() if k != "TCPTUNE_ROOT"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    proc = subprocess.Popen(
        [str(TCPTUNE), "--root", str(modern.root), "check", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(delay_ms / 1000)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    stderr = IMPORT_LOCK_NOTICE.sub("", stderr)
    if before_tcptune_ran(proc.returncode, stderr):
        return
    assert "Traceback" not in stderr
    if proc.returncode == 130:
        assert stderr == "tcptune: interrupted\n"
    else:
        assert proc.returncode in (0, -signal.SIGINT), (proc.returncode, stderr)
        assert stderr == ""
