"""`tcptune check` against the real kernel, inside private network namespaces (`unshare -n`).

Values are set through /proc/sys of the new namespace only; the host's sysctls are never touched.
Traffic stays on the namespace's own loopback.
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest
from conftest import ALL_KEYS, run_in_namespace

pytestmark = pytest.mark.netns

# Runs inside the namespace: set values, run tcptune, read every key with sysctl -n.
INSIDE = textwrap.dedent(
    """
    import json, socket, subprocess, sys, time
    settings, keys, tw_sockets = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
    extra = json.loads(sys.argv[4])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for key, value in settings.items():
        with open("/proc/sys/" + key.replace(".", "/"), "w") as handle:
            handle.write(value)
        # closed explicitly by the with-block: a failed write raises here, not silently

    # Client-side close on loopback leaves the client socket in TIME_WAIT.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    for _ in range(tw_sockets):
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
        client.close()
        server.recv(1)
        server.close()
    time.sleep(0.2)

    env = dict(__import__("os").environ)
    env.pop("TCPTUNE_ROOT", None)
    check = subprocess.run([sys.executable, "-m", "tcptune", "check", *extra, "--json"],
                           capture_output=True, text=True, env=env, timeout=60)
    sysctl = {}
    for key in keys:
        done = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=30)
        sysctl[key] = done.stdout if done.returncode == 0 else None
    ss = subprocess.run(["ss", "-Htan", "state", "time-wait"], capture_output=True, text=True)
    print(json.dumps({"code": check.returncode, "check": check.stdout, "stderr": check.stderr,
                      "sysctl": sysctl, "ss_time_wait": len(ss.stdout.splitlines())}))
    """
)


def in_namespace(
    settings: dict[str, str], tw_sockets: int = 0, extra: tuple[str, ...] = ()
) -> dict:
    argv = [json.dumps(settings), json.dumps(ALL_KEYS), str(tw_sockets), json.dumps(list(extra))]
    result = run_in_namespace(["-n"], ["-c", INSIDE, *argv], timeout=120)
    assert "Traceback" not in result["stderr"], result["stderr"]
    result["doc"] = json.loads(result["check"])
    return result


def assert_matches_sysctl(result: dict) -> None:
    settings = {s["key"]: s for s in result["doc"]["settings"]}
    assert set(settings) == set(ALL_KEYS)
    for key, raw in result["sysctl"].items():
        if raw is None:
            assert settings[key]["status"] == "missing", key
            assert settings[key]["value"] is None
        else:
            assert settings[key]["value"] == " ".join(raw.split()), key
            assert settings[key]["status"] in ("ok", "warning", "error"), key


def test_check_reports_exactly_what_sysctl_reports(netns) -> None:
    changed = {
        "net.ipv4.tcp_tw_reuse": "1",
        "net.ipv4.tcp_fin_timeout": "17",
        "net.ipv4.ip_local_port_range": "20000 40001",
        "net.ipv4.ip_local_reserved_ports": "20000-20009,30000",
        "net.ipv4.tcp_keepalive_time": "600",
        "net.ipv4.tcp_keepalive_probes": "4",
        "net.ipv4.tcp_syncookies": "2",
        "net.core.somaxconn": "1024",
        "net.ipv4.tcp_rmem": "4096 65536 1048576",
        "net.ipv4.tcp_rfc1337": "1",
    }
    result = in_namespace(changed)
    assert_matches_sysctl(result)
    values = {s["key"]: s["value"] for s in result["doc"]["settings"]}
    for key, value in changed.items():
        assert values[key] == value, key
    # The real kernel on this machine is what the report is about.
    assert result["doc"]["kernel"]["release"] == os.uname().release
    # tcp_max_orphans is global: absent inside the namespace, and explained as such.
    orphans = next(s for s in result["doc"]["settings"] if s["key"] == "net.ipv4.tcp_max_orphans")
    if result["sysctl"]["net.ipv4.tcp_max_orphans"] is None:
        assert orphans["status"] == "missing"
        messages = [
            f["message"]
            for f in result["doc"]["findings"]
            if f["key"] == "net.ipv4.tcp_max_orphans"
        ]
        assert any("network namespace" in m for m in messages)


def test_warnings_from_real_values(netns) -> None:
    result = in_namespace(
        {
            "net.ipv4.tcp_tw_reuse": "1",
            "net.ipv4.tcp_timestamps": "0",
            "net.ipv4.ip_local_port_range": "61000 61599",
        }
    )
    assert_matches_sysctl(result)
    findings = result["doc"]["findings"]
    assert any(f["key"] == "net.ipv4.tcp_tw_reuse" and f["severity"] == "warning" for f in findings)
    assert any("only 600 usable ephemeral ports" in f["message"] for f in findings)
    assert result["code"] == 0


def test_time_wait_over_the_bucket_cap_is_seen_live(netns) -> None:
    """A real overflow: 5 buckets, 25 client-closed connections -> TCPTimeWaitOverflow rises."""
    result = in_namespace({"net.ipv4.tcp_max_tw_buckets": "5"}, tw_sockets=25)
    doc = result["doc"]
    assert result["ss_time_wait"] == 5  # the kernel kept only as many as the cap allows
    assert doc["sockstat_tcp"]["tw"] == 5
    tw = [f for f in doc["findings"] if f["key"] == "net.ipv4.tcp_max_tw_buckets"]
    assert tw[0]["severity"] == "error"
    assert "reached the cap of 5" in tw[0]["message"]
    overflow = [f for f in tw if "TCPTimeWaitOverflow = 20" in f["message"]]
    assert overflow, tw
    assert result["code"] == 1


def test_profile_drift_created_through_proc_sys_is_reported_exactly(netns) -> None:
    """kernel-defaults against a fresh namespace, then with three keys changed by hand."""
    baseline = in_namespace({}, extra=("kernel-defaults",))
    base_status = {s["key"]: s["status"] for s in baseline["doc"]["settings"]}
    assert "drift" not in base_status.values(), base_status
    assert baseline["code"] == 0 and baseline["doc"]["in_sync"] is True

    changed = {
        "net.ipv4.tcp_fin_timeout": "21",
        "net.ipv4.ip_local_port_range": "10000 20001",
        "net.ipv4.tcp_keepalive_probes": "3",
    }
    result = in_namespace(changed, extra=("kernel-defaults",))
    doc = result["doc"]
    drifted = {
        s["key"]: (s["value"], s["target"]) for s in doc["settings"] if s["status"] == "drift"
    }
    assert drifted == {
        "net.ipv4.tcp_fin_timeout": ("21", "60"),
        "net.ipv4.ip_local_port_range": ("10000 20001", "32768 60999"),
        "net.ipv4.tcp_keepalive_probes": ("3", "9"),
    }
    assert result["code"] == 1 and doc["in_sync"] is False
