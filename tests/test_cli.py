"""The command line: exit codes, JSON envelope, text output, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ALL_KEYS, FakeMachine, run_cli, run_in_pty, run_tcptune

from tcptune import __version__


def check_json(machine: FakeMachine, *extra: str) -> tuple[int, dict]:
    result = run_cli("--root", str(machine.root), "check", "--json", *extra)
    return result.code, json.loads(result.out)


def test_check_json_envelope(modern: FakeMachine) -> None:
    code, doc = check_json(modern)
    assert code == 0
    assert doc["schema_version"] == 2
    assert doc["command"] == "check"
    assert doc["tool"] == {"name": "tcptune", "version": __version__}
    assert doc["kernel"] == {"release": "6.18.44-generic", "version": [6, 18, 44]}
    assert [s["key"] for s in doc["settings"]] == ALL_KEYS
    for item in doc["settings"]:
        assert {"key", "value", "default", "status"} <= set(item)
    for finding in doc["findings"]:
        assert set(finding) == {"severity", "key", "message", "source"}
        assert finding["source"]
    port_range = next(s for s in doc["settings"] if s["key"] == "net.ipv4.ip_local_port_range")
    assert port_range["value"] == "32768 60999"
    assert doc["exit_code"] == 0


def test_check_on_old_kernel_with_tw_recycle_exits_1(old: FakeMachine) -> None:
    old.set("net.ipv4.tcp_tw_recycle", "1")
    code, doc = check_json(old)
    assert code == 1
    errors = [f for f in doc["findings"] if f["severity"] == "error"]
    assert [f["key"] for f in errors] == ["net.ipv4.tcp_tw_recycle"]
    recycle = next(s for s in doc["settings"] if s["key"] == "net.ipv4.tcp_tw_recycle")
    assert recycle == {**recycle, "value": "1", "default": "0", "status": "error"}


def test_strict_turns_warnings_into_exit_1(modern: FakeMachine) -> None:
    modern.set("net.ipv4.ip_local_port_range", "60000 61001")
    assert check_json(modern)[0] == 0
    code, doc = check_json(modern, "--strict")
    assert code == 1
    assert doc["strict"] is True


def test_root_after_the_subcommand_and_from_the_environment(
    modern: FakeMachine, monkeypatch
) -> None:
    result = run_cli("check", "--json", "--root", str(modern.root))
    assert json.loads(result.out)["root"] == str(modern.root)
    monkeypatch.setenv("TCPTUNE_ROOT", str(modern.root))
    result = run_cli("check", "--json")
    assert json.loads(result.out)["kernel"]["release"] == "6.18.44-generic"


def test_text_output_is_plain_when_not_a_tty(old: FakeMachine) -> None:
    old.set("net.ipv4.tcp_tw_recycle", "1")
    result = run_cli("--root", str(old.root), "check")
    assert result.code == 1
    assert "\x1b[" not in result.out
    assert "kernel 4.9.0-19-amd64" in result.out
    assert "KEY" in result.out and "STATUS" in result.out
    assert "error   net.ipv4.tcp_tw_recycle" in result.out
    assert "source: " in result.out


@pytest.mark.parametrize(("no_color", "coloured"), [(None, True), ("1", False)])
def test_terminal_gets_colour_unless_no_color(modern: FakeMachine, no_color, coloured) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TCPTUNE_ROOT")}
    env["TERM"] = "xterm-256color"
    if no_color:
        env["NO_COLOR"] = no_color
    _, out = run_in_pty([sys.executable, "-m", "tcptune", "--root", str(modern.root), "check"], env)
    assert "net.ipv4.tcp_tw_reuse" in out
    assert ("\x1b[" in out) is coloured


def test_bad_root_is_one_line_exit_2(tmp_path) -> None:
    done = run_tcptune("--root", str(tmp_path / "nope"), "check")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "is not a directory" in done.stderr
    assert "Traceback" not in done.stderr


def test_root_without_proc_is_environment_error_exit_3(tmp_path) -> None:
    done = run_tcptune("--root", str(tmp_path), "check", "--json")
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.startswith("tcptune: error: ")
    assert "proc/sys/net does not exist" in done.stderr
    assert done.stderr.count("\n") == 1


def test_everything_unreadable_is_exit_3(modern: FakeMachine) -> None:
    for key in ALL_KEYS:
        path = modern.root / "proc/sys" / key.replace(".", "/")
        if path.exists():
            path.unlink()
        path.mkdir()
    result = run_tcptune("--root", str(modern.root), "check")
    assert result.returncode == 3
    assert "cannot read any TCP setting" in result.stderr


def test_bad_option_is_one_line_exit_2() -> None:
    done = run_tcptune("check", "--jsno")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "no such option: --jsno" in done.stderr


def test_no_command_prints_help_and_exits_2() -> None:
    result = run_cli()
    assert result.code == 2
    assert "check" in result.out and "explain" in result.out and "exit codes" in result.out


def test_version() -> None:
    done = run_tcptune("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"tcptune {__version__}"


def every_command() -> list[tuple[str, ...]]:
    from tcptune.cli.main import command_paths

    return [tuple(path.split()) for path in command_paths()]


@pytest.mark.parametrize("command", every_command(), ids=" ".join)
def test_every_command_help_has_an_example(command: tuple[str, ...]) -> None:
    done = run_tcptune(*command, "--help")
    assert done.returncode == 0
    assert "examples:" in done.stdout
    # the usage line names the command too: look only at the lines of the examples section
    section = done.stdout.split("examples:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip().removeprefix("sudo ") for line in section.splitlines() if line.strip()]
    wanted = ("tcptune", *command)
    assert any(line.split()[: len(wanted)] == list(wanted) for line in lines), section


def test_broken_pipe_is_quiet(modern: FakeMachine) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcptune", "--root", str(modern.root), "check"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()
    proc.wait(timeout=60)
    assert b"Traceback" not in proc.stderr.read()


@pytest.mark.parametrize(
    "form", ["tcp_fin_timeout", "net.ipv4.tcp_fin_timeout", "/proc/sys/net/ipv4/tcp_fin_timeout"]
)
def test_explain_accepts_every_form(modern: FakeMachine, form: str) -> None:
    modern.set("net.ipv4.tcp_fin_timeout", "30")
    result = run_cli("--root", str(modern.root), "explain", form)
    assert result.code == 0
    assert result.out.startswith("net.ipv4.tcp_fin_timeout\n")
    assert "does not shorten TIME_WAIT" in result.out
    assert "live value    30 (changed; kernel 6.18.44-generic)" in result.out
    assert "Misconceptions" in result.out and "Sources" in result.out


def test_explain_json(old: FakeMachine) -> None:
    result = run_cli("--root", str(old.root), "explain", "tcp_tw_recycle", "--json")
    doc = json.loads(result.out)
    assert doc["key"] == "net.ipv4.tcp_tw_recycle"
    assert doc["type"] == "bool"
    assert "removed in 4.12" in doc["history"]
    assert doc["live"] == {"state": "present", "value": "0", "error": None}
    assert doc["default_on_this_kernel"] == "0"
    assert any("4396e46187ca" in s for s in doc["sources"])


def test_explain_on_a_kernel_without_the_key(modern: FakeMachine) -> None:
    result = run_cli("--root", str(modern.root), "explain", "tcp_tw_recycle")
    assert "live value    missing: no such key on this kernel" in result.out


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("tcp_tw_reues", "net.ipv4.tcp_tw_reuse"),
        ("net.ipv4.tcp_fin_timeuot", "net.ipv4.tcp_fin_timeout"),
    ],
)
def test_explain_unknown_key_suggests_close_matches(key: str, suggestion: str) -> None:
    done = run_tcptune("explain", key)
    assert done.returncode == 2
    assert f"unknown key {key!r}" in done.stderr
    assert suggestion in done.stderr
    assert done.stderr.count("\n") == 1


def test_explain_nonsense_key_has_no_traceback() -> None:
    done = run_tcptune("explain", "../../etc/passwd")
    assert done.returncode == 2
    assert "unknown key" in done.stderr
    assert "Traceback" not in done.stderr


def default_shown(machine: FakeMachine, key: str) -> tuple[list[str], str | None]:
    out = run_cli("--root", str(machine.root), "check").out
    row = next(line for line in out.splitlines() if line.startswith(key + " "))
    doc = json.loads(run_cli("--root", str(machine.root), "check", "--json").out)
    return row.split(), next(s for s in doc["settings"] if s["key"] == key)["default"]


def test_a_key_this_kernel_lacks_has_no_default(modern: FakeMachine) -> None:
    """tcp_tw_recycle is gone on 6.18: its default is shown as "-" (null in JSON)."""
    shown = default_shown(modern, "net.ipv4.tcp_tw_recycle")
    assert shown == (["net.ipv4.tcp_tw_recycle", "-", "-", "missing"], None)


def test_a_key_this_kernel_has_shows_its_default(old: FakeMachine) -> None:
    """On 4.9, where tcp_tw_recycle exists, its default is 0."""
    row, default = default_shown(old, "net.ipv4.tcp_tw_recycle")
    assert row[2] == "0" and default == "0"
