"""apply / revert against the real kernel and the real sysctl loaders, inside `unshare -n -m`
with tmpfs over the sysctl.d directories, /etc/sysctl.conf and /var/lib/tcptune (see
tests/inside_namespace.py). The host's sysctls and /etc are never touched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_in_namespace

pytestmark = pytest.mark.netns

SCRIPT = Path(__file__).resolve().parent / "inside_namespace.py"


def run_scenario(name: str) -> dict:
    return run_in_namespace(["-n", "-m"], [str(SCRIPT), name])


def test_apply_then_reboot_loaders_then_revert(netns) -> None:
    result = run_scenario("apply")
    targets = result["targets"]
    assert result["apply"]["code"] == 0, result["apply"]["err"]
    assert "Traceback" not in result["apply"]["err"]
    # The running kernel has the profile's values...
    assert result["after_apply"] == targets
    assert result["before"] != targets
    # ...and so does a fresh namespace after the real loaders read the written configuration.
    assert result["procps"]["code"] == 0, result["procps"]["stderr"]
    assert result["procps"]["values"] == targets
    if result["systemd_sysctl"]:
        assert result["systemd"]["values"] == targets, result["systemd"]["stderr"]
    elif os.environ.get("CI"):
        pytest.fail("systemd-sysctl is expected on CI machines")
    assert result["check"]["code"] == 0 and result["check"]["doc"]["in_sync"] is True
    # revert: live values and files as before.
    assert result["revert"]["code"] == 0, result["revert"]["err"]
    assert result["after_revert"] == result["before"]
    assert result["sysctl_d_after_revert"] == []


def test_kernel_rejecting_a_value_half_way_then_revert(netns) -> None:
    result = run_scenario("reject")
    applied = result["apply"]
    assert applied["code"] == 3
    outcomes = {r["key"]: r["outcome"] for r in applied["doc"]["results"]}
    assert outcomes == {
        "net.ipv4.tcp_fin_timeout": "written",
        "net.ipv4.tcp_congestion_control": "failed",
        "net.ipv4.tcp_keepalive_time": "not reached",
    }
    failed = next(r for r in applied["doc"]["results"] if r["outcome"] == "failed")
    assert "No such file or directory" in failed["detail"] or "not permitted" in failed["detail"]
    assert result["during"]["net.ipv4.tcp_fin_timeout"] == "25"
    assert result["revert"]["code"] == 0, result["revert"]["err"]
    assert result["after"] == result["before"]
    assert result["sysctl_d"] == []


def test_precedence_model_matches_the_real_loaders(netns) -> None:
    result = run_scenario("precedence")
    layouts = {k: v for k, v in result.items() if k != "systemd_sysctl"}
    assert len(layouts) >= 8
    for name, answer in layouts.items():
        assert answer["real"]["procps"] == answer["model"]["procps"], (name, answer)
        if "systemd" in answer["real"]:
            assert answer["real"]["systemd"] == answer["model"]["systemd"], (name, answer)
    # the layouts really discriminate between the rules
    assert layouts["sysctl.conf last for procps only"]["model"] == {"procps": "36", "systemd": "35"}
    assert layouts["dev null mask"]["model"]["procps"] == "60"


def test_read_only_proc_sys_dry_run_as_unprivileged_user(netns) -> None:
    result = run_scenario("read-only")
    unprivileged = result["unprivileged"]
    assert unprivileged["uid"] == 65534
    assert unprivileged["code"] == 0, unprivileged["err"]
    assert "dry run: nothing is written" in unprivileged["out"]
    assert "+net.ipv4.tcp_keepalive_time = 600" in unprivileged["out"]
    root = result["root"]
    assert root["code"] == 3
    assert "read-only" in root["err"] and "--persist-only" in root["err"]
    assert root["err"].count("\n") == 1
    persist = result["persist_only"]
    assert persist["code"] == 0, persist["err"]
    assert persist["doc"]["drop_in_written"] is True
