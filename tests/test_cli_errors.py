"""Usage errors, exit codes, Ctrl-C and --root: through typer.testing.CliRunner (in-process) and
the installed console script (a real process)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import TCPTUNE, FakeMachine, run_cli, run_tcptune

USAGE_ERRORS = [
    # argv, what the line says, whose help it names
    (["check", "--jsno"], "no such option: --jsno; did you mean --json?", "tcptune check"),
    (["--jsno", "check"], "no such option: --jsno", "tcptune"),
    (["explain"], "missing argument KEY", "tcptune explain"),
    (["explain", "a", "b"], "unexpected extra argument", "tcptune explain"),
    (["profiles"], "missing command", "tcptune profiles"),
    (["--root", "/"], "missing command", "tcptune"),
    (["--root"], "option '--root' requires an argument", "tcptune"),
    (["profiles", "show"], "missing argument PROFILE", "tcptune profiles show"),
    (["profiles", "validate"], "missing argument PATH...", "tcptune profiles validate"),
    (
        ["profiles", "capture", "x", "--output"],
        "'--output' requires an argument",
        "tcptune profiles capture",
    ),
    (["profiles", "list", "--force"], "no such option: --force", "tcptune profiles list"),
    (
        ["export", "client-profile"],
        "missing option --format: one of sysctl, k8s, docker, ansible",
        "tcptune export",
    ),
    (
        ["export", "x", "--format", "helm"],
        "invalid value for --format: 'helm' is not one of",
        "tcptune export",
    ),
    (
        ["sockets", "--top", "0"],
        "invalid value for --top: expected a whole number >= 1",
        "tcptune sockets",
    ),
    (
        ["sockets", "--watch", "inf"],
        "invalid value for --watch: expected seconds > 0",
        "tcptune sockets",
    ),
    (
        ["sockets", "--source", "ss"],
        "invalid value for --source: 'ss' is not one of",
        "tcptune sockets",
    ),
    (
        ["apply", "x", "--lock-wait", "soon"],
        "invalid value for --lock-wait: 'soon' is not a valid float",
        "tcptune apply",
    ),
    (["revert", "a", "b"], "unexpected extra argument", "tcptune revert"),
    (["backups", "--dry-run"], "no such option: --dry-run", "tcptune backups"),
    (["completion", "tcsh"], "invalid value for SHELL: 'tcsh' is not one of", "tcptune completion"),
    (["completion"], "missing argument SHELL", "tcptune completion"),
]


@pytest.mark.parametrize(("argv", "message", "command"), USAGE_ERRORS, ids=" ".join)
def test_usage_error_is_one_line_naming_the_help_to_read(
    argv: list[str], message: str, command: str
) -> None:
    done = run_tcptune(*argv)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("tcptune: error: ") and done.stderr.count("\n") == 1
    assert message in done.stderr
    assert done.stderr.endswith(f" (see '{command} --help')\n")


@pytest.mark.parametrize(("argv", "message", "command"), USAGE_ERRORS[:6], ids=" ".join)
def test_usage_error_in_process(argv: list[str], message: str, command: str) -> None:
    result = run_cli(*argv)
    assert result.code == 2 and result.out == ""
    assert result.err.startswith("tcptune: error: ") and result.err.count("\n") == 1
    assert message in result.err and result.err.endswith(f" (see '{command} --help')\n")


@pytest.mark.parametrize(
    ("argv", "typo", "suggestion", "command"),
    [
        (["chek"], "chek", "check", "tcptune"),
        (["sokets", "--json"], "sokets", "sockets", "tcptune"),
        (["--root", "/", "exlpain", "x"], "exlpain", "explain", "tcptune"),
        (["profiles", "lst"], "lst", "list", "tcptune profiles"),
        (["profiles", "captur", "x"], "captur", "capture", "tcptune profiles"),
    ],
)
def test_a_mistyped_command_gets_did_you_mean(
    argv: list[str], typo: str, suggestion: str, command: str
) -> None:
    done = run_tcptune(*argv)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"tcptune: error: no such command {typo!r}; did you mean {suggestion!r}? "
        f"(see '{command} --help')\n"
    )


def test_a_command_far_from_every_other_gets_no_suggestion() -> None:
    done = run_tcptune("frobnicate")
    assert done.returncode == 2
    assert done.stderr == "tcptune: error: no such command 'frobnicate' (see 'tcptune --help')\n"


def test_control_characters_in_a_bad_option_stay_on_one_line() -> None:
    done = run_tcptune("check", "--x\n\x1b[31mred")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "\x1b" not in done.stderr and "\\x1b" in done.stderr


def test_no_arguments_prints_the_help_and_exits_2() -> None:
    done = run_tcptune()
    assert done.returncode == 2 and done.stderr == ""
    assert done.stdout.startswith("Usage: tcptune [OPTIONS] COMMAND")


# --- exit codes ---------------------------------------------------------------------------------


def test_exit_codes_0_1_2_3(modern: FakeMachine, tmp_path: Path) -> None:
    root = str(modern.root)
    assert run_tcptune("--root", root, "check", "--json").returncode == 0
    modern.set("net.ipv4.ip_local_port_range", "60000 61001")  # a warning
    assert run_tcptune("--root", root, "check", "--json", "--strict").returncode == 1
    assert run_tcptune("--root", root, "explain", "tcp_nothing").returncode == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_tcptune("--root", str(empty), "check").returncode == 3


def test_a_bug_prints_the_traceback_and_exits_4(modern: FakeMachine, monkeypatch) -> None:
    from tcptune.cli import check

    def broken(*args, **kwargs):
        return {}["a bug"]

    monkeypatch.setattr(check, "run", broken)
    result = run_cli("--root", str(modern.root), "check")
    assert result.code == 4
    assert "Traceback (most recent call last):" in result.err and "KeyError" in result.err
    assert result.err.endswith(
        "tcptune: internal error (a bug in tcptune); please report it with the traceback above\n"
    )
    assert "╭" not in result.err  # no pretty exceptions


def test_main_returns_the_exit_code_and_writes_to_the_given_stream(modern: FakeMachine) -> None:
    import io

    from tcptune.cli.main import main

    out = io.StringIO()
    assert main(["--root", str(modern.root), "check", "--json"], stdout=out) == 0
    assert json.loads(out.getvalue())["command"] == "check"
    assert main(["--version"], stdout=out) == 0


def hold_lock(root: Path) -> int:
    directory = root / "var/lib/tcptune"
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def waits_on(proc: subprocess.Popen, path: Path, seconds: float = 30) -> bool:
    """Wait (bounded) until the running process holds `path` open."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        for fd in Path(f"/proc/{proc.pid}/fd").glob("*"):
            with contextlib.suppress(OSError):
                if os.readlink(fd) == str(path):
                    return True
        time.sleep(0.05)
    return False


def test_ctrl_c_exits_130_with_one_line(modern: FakeMachine) -> None:
    """A real process waiting for the apply lock, sent SIGINT (what Ctrl-C sends)."""
    (modern.root / "etc/sysctl.d").mkdir(parents=True)
    lock = hold_lock(modern.root)
    try:
        proc = subprocess.Popen(
            [str(TCPTUNE), "--root", str(modern.root), "apply", "client-profile"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert waits_on(proc, modern.root / "var/lib/tcptune/lock")
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    finally:
        os.close(lock)
    assert proc.returncode == 130
    assert err == "tcptune: interrupted\n"
    assert not (modern.root / "etc/sysctl.d/99-tcptune.conf").exists()
    assert not list((modern.root / "var/lib/tcptune").glob("backups/*.json"))


# --- --root -------------------------------------------------------------------------------------


def root_in(result) -> str:
    return json.loads(result.out)["root"]


def test_root_before_or_after_the_command(modern: FakeMachine, tmp_path: Path) -> None:
    root = str(modern.root)
    other = tmp_path / "other"
    other.mkdir()
    assert root_in(run_cli("--root", root, "check", "--json")) == root
    assert root_in(run_cli("check", "--json", "--root", root)) == root
    # both: the one after the command wins
    assert root_in(run_cli("--root", str(other), "check", "--root", root, "--json")) == root


@pytest.mark.parametrize(
    "argv",
    [
        ["--root", "{root}", "profiles", "list", "--json"],
        ["profiles", "--root", "{root}", "list", "--json"],
        ["profiles", "list", "--json", "--root", "{root}"],
    ],
    ids=["before profiles", "before list", "after list"],
)
def test_root_at_every_level_of_profiles(modern: FakeMachine, argv: list[str]) -> None:
    local = modern.root / "etc/tcptune/profiles/mine.toml"
    local.parent.mkdir(parents=True)
    local.write_text('description = "mine"\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = 30\n')
    os.chmod(local, 0o644)
    result = run_cli(*[a.replace("{root}", str(modern.root)) for a in argv])
    assert result.code == 0, result.err
    names = [p["name"] for p in json.loads(result.out)["profiles"]]
    assert "mine" in names


def test_tcptune_root_from_the_environment(modern: FakeMachine, tmp_path: Path) -> None:
    env = {"TCPTUNE_ROOT": str(modern.root)}
    done = run_tcptune("check", "--json", env=env)
    assert done.returncode == 0 and json.loads(done.stdout)["root"] == str(modern.root)
    # --root beats the environment
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_tcptune("--root", str(empty), "check", env=env)
    assert done.returncode == 3 and str(empty) in done.stderr
    done = run_tcptune("check", env={"TCPTUNE_ROOT": str(tmp_path / "nowhere")})
    assert done.returncode == 2
    assert (
        done.stderr.startswith("tcptune: error: TCPTUNE_ROOT ") and "not a directory" in done.stderr
    )


def test_ctrl_c_reported_by_python_as_another_error_is_an_interrupt(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A KeyboardInterrupt while Python creates a class comes out of Python 3.11 as
    "RuntimeError: Error calling __set_name__ ..."; it is an interrupt (130, one line), not a
    bug (4, a traceback)."""
    from tcptune import errors

    class Interrupting:
        def __set_name__(self, owner: type, name: str) -> None:
            raise KeyboardInterrupt

    with pytest.raises(SystemExit) as done, errors.error_handler():
        try:
            type("Victim", (), {"attribute": Interrupting()})
        except KeyboardInterrupt:  # Python 3.12+ no longer wraps it: the same outcome
            raise RuntimeError("Error calling __set_name__") from KeyboardInterrupt()
    assert done.value.code == errors.EXIT_INTERRUPTED
    assert capsys.readouterr().err == "tcptune: interrupted\n"
    with pytest.raises(SystemExit) as done, errors.error_handler():
        raise RuntimeError("a real bug")
    assert done.value.code == errors.EXIT_BUG
