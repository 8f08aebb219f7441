"""`check PROFILE` and `profiles list|show|validate|capture` through the command line."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest
from conftest import TCPTUNE, FakeMachine, run_cli, run_tcptune

from tcptune import profiles


def check_profile(machine: FakeMachine, name: str, *extra: str) -> tuple[int, dict]:
    result = run_cli("--root", str(machine.root), "check", name, "--json", *extra)
    return result.code, json.loads(result.out)


def test_in_sync_tree_exits_0(modern: FakeMachine) -> None:
    code, doc = check_profile(modern, "kernel-defaults")
    assert code == 0
    assert doc["in_sync"] is True
    assert doc["profile"]["name"] == "kernel-defaults"
    statuses = {s["key"]: s["status"] for s in doc["settings"]}
    # tcp_tw_recycle = 0 is skipped on a kernel without the key, with the reason.
    recycle = next(s for s in doc["settings"] if s["key"] == "net.ipv4.tcp_tw_recycle")
    assert recycle["status"] == "missing"
    assert "removed in 4.12" in recycle["reason"]
    assert recycle["in_sync"] is None
    assert set(statuses.values()) == {"ok", "missing"}
    for setting in doc["settings"]:
        assert {"key", "value", "target", "status", "in_sync", "origin"} <= set(setting)


def test_drift_exits_1_and_names_each_key(modern: FakeMachine) -> None:
    modern.set("net.ipv4.tcp_fin_timeout", "30").set("net.ipv4.ip_local_port_range", "1025 65000")
    code, doc = check_profile(modern, "kernel-defaults")
    assert code == 1
    assert doc["in_sync"] is False
    drifted = {
        s["key"]: (s["value"], s["target"]) for s in doc["settings"] if s["status"] == "drift"
    }
    assert drifted == {
        "net.ipv4.tcp_fin_timeout": ("30", "60"),
        "net.ipv4.ip_local_port_range": ("1025 65000", "32768 60999"),
    }


def test_old_kernel_skips_what_it_cannot_have(old: FakeMachine) -> None:
    old.set("net.ipv4.tcp_tw_reuse", "0")
    code, doc = check_profile(old, "kernel-defaults")
    by_key = {s["key"]: s for s in doc["settings"]}
    assert by_key["net.ipv4.tcp_tw_reuse_delay"]["status"] == "missing"
    assert "added in 6.14" in by_key["net.ipv4.tcp_tw_reuse_delay"]["reason"]
    assert by_key["net.ipv4.tcp_tw_reuse"]["status"] == "missing"
    assert "needs kernel 4.18" in by_key["net.ipv4.tcp_tw_reuse"]["reason"]
    assert by_key["net.ipv4.tcp_tw_recycle"]["status"] == "ok"  # present on 4.9, and 0
    assert by_key["net.core.somaxconn"]["status"] == "drift"  # 128 on this old kernel
    assert code == 1


def test_whitespace_and_vector_form_compare_equal(modern: FakeMachine, tmp_path: Path) -> None:
    path = tmp_path / "ports.toml"
    path.write_text('description = "p"\n[sysctl]\n"net.ipv4.ip_local_port_range" = "32768 60999"\n')
    modern.set("net.ipv4.ip_local_port_range", "32768\t\t60999")
    code, doc = check_profile(modern, str(path))
    assert code == 0
    assert doc["settings"][0]["status"] == "ok"


def test_unreadable_key_is_not_in_sync_and_exits_3(modern: FakeMachine) -> None:
    target = modern.root / "proc/sys/net/ipv4/tcp_fin_timeout"
    target.unlink()
    target.mkdir()
    code, doc = check_profile(modern, "kernel-defaults")
    assert code == 3
    assert doc["in_sync"] is False


def test_check_text_output_for_a_profile(modern: FakeMachine) -> None:
    modern.set("net.ipv4.tcp_tw_reuse", "0")
    result = run_cli("--root", str(modern.root), "check", "proxy-profile")
    assert result.code == 1
    assert "tcptune check proxy-profile <- server-profile" in result.out
    assert "NOT in sync" in result.out
    line = next(x for x in result.out.splitlines() if x.startswith("net.ipv4.tcp_tw_reuse"))
    assert line.split() == [
        "net.ipv4.tcp_tw_reuse",
        "0",
        "1",
        "drift",
        "not",
        "persisted",
        "proxy-profile",
    ]
    header = next(x for x in result.out.splitlines() if x.startswith("KEY"))
    assert header.split() == ["KEY", "LIVE", "TARGET", "STATUS", "AT", "BOOT", "FROM"]


def test_invalid_profile_is_exit_2_one_line_before_reading(
    modern: FakeMachine, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('description = "x"\n[sysctl]\n"kernel.core_pattern" = "|/tmp/x"\n')
    done = run_tcptune("--root", str(modern.root), "check", str(bad))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "kernel.core_pattern: only network keys" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_profile_suggests(modern: FakeMachine) -> None:
    done = run_tcptune("--root", str(modern.root), "check", "server-profil")
    assert done.returncode == 2
    assert "did you mean server-profile" in done.stderr


def test_profiles_list(tmp_path: Path) -> None:
    local = profiles.local_dir(tmp_path)
    local.mkdir(parents=True)
    (local / "mine.toml").write_text('description = "my box"\n')
    (local / "broken.toml").write_text("description = \n")
    result = run_cli("--root", str(tmp_path), "profiles", "list", "--json")
    rows = {row["name"]: row for row in json.loads(result.out)["profiles"]}
    assert {"kernel-defaults", "server-profile", "client-profile", "proxy-profile", "mine"} <= set(
        rows
    )
    assert rows["mine"]["description"] == "my box" and rows["mine"]["shipped"] is False
    assert rows["server-profile"]["shipped"] is True
    assert rows["broken"]["valid"] is False and "invalid TOML" in rows["broken"]["problem"]
    text = run_cli("--root", str(tmp_path), "profiles", "list").out
    assert "INVALID" in text and "my box" in text


def test_profiles_show_json(tmp_path: Path) -> None:
    result = run_cli("--root", str(tmp_path), "profiles", "show", "proxy-profile", "--json")
    doc = json.loads(result.out)
    assert doc["name"] == "proxy-profile"
    assert doc["extends"] == ["server-profile"]
    assert doc["sysctl"]["net.ipv4.ip_local_port_range"] == "10240 65535"
    assert doc["origin"]["net.ipv4.ip_local_port_range"] == "proxy-profile"
    assert doc["origin"]["net.core.somaxconn"] == "server-profile"


def test_profiles_validate_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('description = "g"\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = 30\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('[sysctl]\n"net.ipv4.tcp_tw_recycle" = 1\n"vm.swappiness" = 1\n')
    assert run_cli("profiles", "validate", str(good)).code == 0
    result = run_cli("profiles", "validate", str(good), str(bad))
    assert result.code == 2
    assert f"{good}: valid" in result.out
    assert f"error: {bad}: net.ipv4.tcp_tw_recycle: 1 is refused" in result.out
    assert f"error: {bad}: vm.swappiness: only network keys" in result.out
    assert f"error: {bad}: description: missing" in result.out


def test_capture_round_trips(modern: FakeMachine) -> None:
    modern.set("net.ipv4.tcp_fin_timeout", "31").set("net.ipv4.ip_local_port_range", "20000 50001")
    result = run_cli("--root", str(modern.root), "profiles", "capture", "golden", "--json")
    assert result.code == 0
    doc = json.loads(result.out)
    path = Path(doc["path"])
    assert path == profiles.local_dir(modern.root) / "golden.toml"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert profiles.validate(str(path), modern.root) == ([], [])
    text = path.read_text()
    assert "kernel 6.18.44-generic" in text
    captured = tomllib.loads(text)["sysctl"]
    assert captured["net.ipv4.ip_local_port_range"] == [20000, 50001]
    assert captured["net.ipv4.tcp_fin_timeout"] == 31
    assert "net.ipv4.tcp_tw_recycle" not in captured
    code, check_doc = check_profile(modern, "golden")
    assert code == 0 and check_doc["in_sync"] is True
    modern.set("net.ipv4.tcp_fin_timeout", "60")
    assert check_profile(modern, "golden")[0] == 1


def test_capture_refuses_to_overwrite(modern: FakeMachine, tmp_path: Path) -> None:
    out = tmp_path / "out.toml"
    out.write_text("precious\n")
    done = run_tcptune("--root", str(modern.root), "profiles", "capture", "x", "--output", str(out))
    assert done.returncode == 2
    assert "already exists" in done.stderr and "--force" in done.stderr
    assert out.read_text() == "precious\n"
    forced = run_cli(
        "--root", str(modern.root), "profiles", "capture", "x", "--output", str(out), "--force"
    )
    assert forced.code == 0
    assert out.read_text() != "precious\n"


@pytest.mark.parametrize("name", ["../evil", "Bad", ""])
def test_capture_rejects_bad_names(modern: FakeMachine, name: str) -> None:
    done = run_tcptune("--root", str(modern.root), "profiles", "capture", name)
    assert done.returncode == 2
    assert "profile name" in done.stderr
    assert not (modern.root / "etc").exists()


def test_capture_leaves_out_tw_recycle(old: FakeMachine) -> None:
    old.set("net.ipv4.tcp_tw_recycle", "1")
    result = run_cli("--root", str(old.root), "profiles", "capture", "old-box", "--json")
    path = Path(json.loads(result.out)["path"])
    assert "tcp_tw_recycle" not in path.read_text()
    assert profiles.validate(str(path), old.root)[0] == []


def test_capture_leaves_out_live_values_that_break_the_rules_between_keys(
    modern: FakeMachine,
) -> None:
    """A machine whose live values a profile may not hold together (ports from 500, tw_reuse 1
    with timestamps off, tcp_rmem out of order): the captured profile leaves out the key each
    rule names, says why, validates, and `check` against it is in sync."""
    modern.set("net.ipv4.ip_local_port_range", "500\t60999")
    modern.set("net.ipv4.tcp_timestamps", "0").set("net.ipv4.tcp_tw_reuse", "1")
    modern.set("net.ipv4.tcp_rmem", "4096\t1\t2")
    result = run_cli("--root", str(modern.root), "profiles", "capture", "odd", "--json")
    assert result.code == 0
    doc = json.loads(result.out)
    left_out = {line.split(":")[0] for line in doc["skipped"]}
    assert {
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_tw_reuse",
        "net.ipv4.tcp_rmem",
    } <= left_out
    captured = tomllib.loads(Path(doc["path"]).read_text())["sysctl"]
    assert captured["net.ipv4.tcp_timestamps"] == 0
    assert not left_out & set(captured)
    assert profiles.validate(doc["path"], modern.root) == ([], [])
    assert run_cli("--root", str(modern.root), "check", "odd").code == 0


@pytest.mark.parametrize("umask", [0o000, 0o002, 0o077])
def test_capture_modes_do_not_depend_on_the_umask(modern: FakeMachine, umask: int) -> None:
    old = os.umask(umask)
    try:
        assert run_cli("--root", str(modern.root), "profiles", "capture", "golden").code == 0
    finally:
        os.umask(old)
    local = profiles.local_dir(modern.root)
    modes = {p: oct(p.stat().st_mode & 0o777) for p in (local.parent, local, local / "golden.toml")}
    assert list(modes.values()) == ["0o755", "0o755", "0o644"], modes


@pytest.mark.netns
def test_capture_in_a_network_namespace_names_global_keys(netns, tmp_path: Path) -> None:
    """Inside a new network namespace (a container's view) the kernel hides global keys such as
    tcp_max_orphans: capture says so, as check does, instead of "no such key on this kernel"."""
    out = tmp_path / "pod.toml"
    done = subprocess.run(
        [
            "unshare",
            "-n",
            str(TCPTUNE),
            "profiles",
            "capture",
            "pod",
            "--output",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    skipped = json.loads(done.stdout)["skipped"]
    assert (
        "net.ipv4.tcp_max_orphans: global key, not visible in this network namespace "
        "(capture on the host)" in skipped
    )
    assert not [s for s in skipped if "no such key" in s and "tcp_max_orphans" in s]
    assert "tcp_max_orphans" not in out.read_text()
