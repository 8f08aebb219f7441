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


def test_apply_says_what_boot_will_do_and_the_real_loaders_agree(netns) -> None:
    """apply's boot answers, checked against what the real loaders then leave in a fresh network
    namespace: the overriding file per loader, and the boot value of keys a new profile drops."""
    result = run_scenario("agree")
    loaders = {"procps": result["procps"]}
    if result["systemd"] is not None:
        loaders["systemd"] = result["systemd"]
    elif os.environ.get("CI"):
        pytest.fail("systemd-sysctl is expected on CI machines")
    applied = result["apply"]
    assert applied["code"] == 1, applied["err"]  # applied, but it will not hold at boot
    assert applied["doc"]["changed"] is True
    named = {(o["loader"], o["key"]): o for o in applied["doc"]["overridden_at_boot"]}
    assert set(named) == {(loader, "net.ipv4.tcp_keepalive_time") for loader in loaders}
    for loader, after_boot in loaders.items():
        entry = named[(loader, "net.ipv4.tcp_keepalive_time")]
        assert entry["set_by"] == "/etc/sysctl.d/zz-site.conf:1"
        # what apply said the loader sets is what the real loader set
        assert after_boot["values"]["net.ipv4.tcp_keepalive_time"] == entry["value"] == "1800"
        for key, target in result["server"].items():
            if key != "net.ipv4.tcp_keepalive_time":
                assert after_boot["values"][key] == target, (loader, key)
    # a second run has nothing to do, and still says so, with the same exit status
    again = result["again"]
    assert again["code"] == 1 and "nothing to do" in again["out"]
    assert "will not hold after a reboot" in again["out"]
    assert "/etc/sysctl.d/zz-site.conf:1" in again["out"]
    # check PROFILE gives the same answer
    assert result["check"]["code"] == 1
    assert result["check"]["doc"]["in_sync"] is False

    # Switching to client-profile leaves server-profile's keys out of the drop-in.
    switch = result["switch"]
    assert switch["code"] == 0, switch["err"]
    removed = {r["key"]: r for r in switch["doc"]["drop_in"]["removed_keys"]}
    dropped = set(result["server"]) - set(result["client"])
    assert set(removed) == dropped
    for key in dropped:
        # the live value stays until a reboot, as the plan says
        assert result["live_after_switch"][key] == result["live_before_switch"][key]
        assert removed[key]["live"] == result["live_before_switch"][key]
        assert removed[key]["value"] == result["server"][key]
        boots = {b["loader"]: b for b in removed[key]["boot"]}
        after = {"procps": result["procps_after_switch"]}
        if result["systemd_after_switch"] is not None:
            after["systemd"] = result["systemd_after_switch"]
        for loader, loaded in after.items():
            said = boots[loader]
            expected = said["value"] if said["set_by"] else result["kernel_defaults"][key]
            assert loaded["values"][key] == expected, (loader, key, said)


def test_check_below_slash_refuses_a_planted_link_or_fifo_key(netns) -> None:
    """Below / each key is opened on its own (no walk per directory): a key that is a link, or a
    FIFO, is still refused, never followed or waited on, and every other key reads as it is."""
    result = run_scenario("planted")
    check = result["check"]
    assert check["doc"] is not None, check["err"]
    settings = {s["key"]: s for s in check["doc"]["settings"]}
    reuse = settings["net.ipv4.tcp_tw_reuse"]
    assert reuse["status"] == "unreadable" and "symlink" in reuse["error"], reuse
    fin = settings["net.ipv4.tcp_fin_timeout"]
    assert fin["status"] == "unreadable" and "not a regular file" in fin["error"], fin
    copied = result["copied"]
    for key, setting in settings.items():
        name = key.removeprefix("net.ipv4.")
        if key in ("net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_fin_timeout") or name not in copied:
            continue
        assert setting["value"] == " ".join(copied[name].split()), (key, setting)
