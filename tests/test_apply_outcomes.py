"""What apply says it did, on temporary roots: a key another file overrides at boot (exit 1, the
file named per loader), keys a new profile leaves out of the drop-in, and the wording of each
"nothing to do". The same answers against the real loaders: tests/test_apply_netns.py."""

from __future__ import annotations

import json

import pytest
from conftest import FakeMachine, row_with_notes, run_cli

OVERRIDE = "etc/sysctl.d/zz-site.conf"


@pytest.fixture
def machine(modern: FakeMachine) -> FakeMachine:
    (modern.root / "etc/sysctl.d").mkdir(parents=True)
    return modern


def apply(machine: FakeMachine, *args: str) -> tuple[int, str, str]:
    result = run_cli("--root", str(machine.root), "apply", *args)
    assert "Traceback" not in result.err
    return result.code, result.out, result.err


def live(machine: FakeMachine, key: str) -> str:
    return " ".join((machine.root / "proc/sys" / key.replace(".", "/")).read_text().split())


def test_a_later_file_overriding_a_key_at_boot_is_named_and_exits_1(machine: FakeMachine) -> None:
    (machine.root / OVERRIDE).write_text("# site\nnet.ipv4.tcp_keepalive_time = 1800\n")
    code, out, _ = apply(machine, "server-profile")
    assert code == 1
    assert "1 key(s) will not hold after a reboot" in out
    for loader in ("procps", "systemd"):
        assert (
            f"net.ipv4.tcp_keepalive_time = 600: {loader} sets '1800' from /etc/sysctl.d/"
            "zz-site.conf:2" in out
        )
    assert live(machine, "net.ipv4.tcp_keepalive_time") == "600"  # the live value was set
    # check PROFILE agrees: drift, exit 1
    assert run_cli("--root", str(machine.root), "check", "server-profile").code == 1
    # nothing left to do: the same exit status and the same warning
    code, out, _ = apply(machine, "server-profile")
    assert code == 1 and "nothing to do" in out and "zz-site.conf:2" in out


def test_override_in_json_dry_run_and_runtime_only(machine: FakeMachine) -> None:
    (machine.root / OVERRIDE).write_text("net.ipv4.tcp_keepalive_time = 1800\n")
    code, out, _ = apply(machine, "server-profile", "--dry-run", "--json")
    assert code == 0  # a preview: the plan says it, the exit status does not
    doc = json.loads(out)
    assert {
        (o["loader"], o["key"], o["set_by"], o["value"]) for o in doc["overridden_at_boot"]
    } == {
        (loader, "net.ipv4.tcp_keepalive_time", "/etc/sysctl.d/zz-site.conf:1", "1800")
        for loader in ("procps", "systemd")
    }
    # --runtime-only persists nothing and so claims nothing about boot
    code, out, _ = apply(machine, "server-profile", "--runtime-only", "--json")
    assert code == 0 and json.loads(out)["overridden_at_boot"] == []
    code, out, _ = apply(machine, "server-profile", "--json")
    assert code == 1 and json.loads(out)["exit_code"] == 1


def test_an_earlier_file_does_not_override(machine: FakeMachine) -> None:
    """A file that sorts before the drop-in loses to it: nothing to warn about."""
    (machine.root / "etc/sysctl.d/10-site.conf").write_text("net.ipv4.tcp_keepalive_time = 1800\n")
    code, out, _ = apply(machine, "server-profile")
    assert code == 0 and "will not hold" not in out


def test_keys_a_new_profile_leaves_out_are_shown_with_their_boot_value(
    machine: FakeMachine,
) -> None:
    assert apply(machine, "server-profile")[0] == 0
    (machine.root / "etc/sysctl.d/10-site.conf").write_text("net.core.somaxconn = 1024\n")
    kept = live(machine, "net.ipv4.tcp_rfc1337")
    code, out, _ = apply(machine, "client-profile", "--dry-run", "--json")
    assert code == 0
    removed = {r["key"]: r for r in json.loads(out)["drop_in"]["removed_keys"]}
    assert set(removed) == {
        "net.core.somaxconn",
        "net.ipv4.tcp_max_syn_backlog",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.tcp_rfc1337",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_slow_start_after_idle",
    }  # server-profile's keys but tcp_timestamps, which client-profile sets too
    assert removed["net.ipv4.tcp_rfc1337"] == {
        "key": "net.ipv4.tcp_rfc1337",
        "value": "1",
        "live": kept,
        "boot": [
            {"loader": "procps", "set_by": None, "value": None, "unknown": None},
            {"loader": "systemd", "set_by": None, "value": None, "unknown": None},
        ],
    }
    assert removed["net.core.somaxconn"]["boot"][0] == {
        "loader": "procps",
        "set_by": "/etc/sysctl.d/10-site.conf:1",
        "value": "1024",
        "unknown": None,
    }
    code, out, _ = apply(machine, "client-profile")
    assert code == 0
    row = row_with_notes(out, "net.ipv4.tcp_rfc1337")
    assert "removed from the drop-in (live value kept until reboot)" in row
    assert "procps: kernel default; systemd: kernel default" in row
    row = row_with_notes(out, "net.core.somaxconn")
    assert "procps: 1024 from /etc/sysctl.d/10-site.conf:1" in row
    assert live(machine, "net.ipv4.tcp_rfc1337") == kept  # the live value stays
    drop_in = (machine.root / "etc/sysctl.d/99-tcptune.conf").read_text()
    assert "tcp_rfc1337" not in drop_in


def test_runtime_only_never_mentions_removed_keys(machine: FakeMachine) -> None:
    assert apply(machine, "server-profile")[0] == 0
    code, out, _ = apply(machine, "client-profile", "--runtime-only", "--json")
    assert code == 0 and json.loads(out)["drop_in"]["removed_keys"] == []


def test_each_nothing_to_do_says_what_it_looked_at(machine: FakeMachine) -> None:
    drop_in = machine.root / "etc/sysctl.d/99-tcptune.conf"
    assert apply(machine, "server-profile", "--runtime-only")[0] == 0
    code, out, _ = apply(machine, "server-profile", "--runtime-only")
    assert code == 0 and not drop_in.exists()
    assert out == (
        "server-profile: nothing to do; the live values already match (--runtime-only: no "
        "drop-in is written). No backup made.\n"
    )
    assert apply(machine, "client-profile", "--persist-only")[0] == 0
    code, out, _ = apply(machine, "client-profile", "--persist-only")
    assert code == 0
    assert out == (
        "client-profile: nothing to do; /etc/sysctl.d/99-tcptune.conf already says this "
        "(--persist-only: live values are not set). No backup made.\n"
    )
    assert apply(machine, "client-profile")[0] == 0
    code, out, _ = apply(machine, "client-profile")
    assert out == (
        "client-profile: nothing to do; the live values and /etc/sysctl.d/99-tcptune.conf "
        "already match. No backup made.\n"
    )


def test_the_old_drop_ins_lines_are_shown_escaped_in_the_diff(machine: FakeMachine) -> None:
    """The diff shows the drop-in's current lines, text from a file: an escape sequence or a
    stray byte in it is shown escaped, never sent to the terminal; each line stays one line."""
    drop_in = machine.root / "etc/sysctl.d/99-tcptune.conf"
    drop_in.write_bytes(
        b"# Managed by tcptune: profile x.\nnet.ipv4.\x1b[31mred = 1\nnet.ipv4.a = 1\rkernel.x = 2\n"
    )
    code, out, _ = apply(machine, "server-profile", "--dry-run")
    assert code == 0
    assert "\x1b" not in out and "\r" not in out
    assert "-net.ipv4.\\x1b[31mred = 1\n" in out
    assert "-net.ipv4.a = 1" in out and "kernel.x = 2" in out  # a bare CR never moves the cursor
