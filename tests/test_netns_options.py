"""--pid and --netns against the real kernel: a process in a network namespace of its own (made
by `unshare -n`) with odd values and a few hundred TIME_WAIT and CLOSE_WAIT sockets. What tcptune
shows from the host must equal `sysctl -n` and `ss` run inside that namespace with nsenter, name
the CLOSE_WAIT holder with its exact count, and leave the host's own values as they were. apply
and revert run in a private mount namespace (tmpfs over /var/lib/tcptune) and network namespace,
so no backup lands on the host and a wrong revert could only hit a namespace of the test's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from conftest import TCPTUNE, run_tcptune
from netns_targets import host_values, inside, ss_counts, start_target, sysctl_inside

pytestmark = pytest.mark.netns

ODD = {
    "net.ipv4.tcp_fin_timeout": "53",
    "net.ipv4.tcp_tw_reuse": "0",
    "net.ipv4.ip_local_port_range": "40000 44999",
    "net.ipv4.tcp_max_tw_buckets": "4321",
    "net.ipv4.tcp_keepalive_time": "1234",
    "net.core.somaxconn": "777",
}
TIME_WAIT, CLOSE_WAIT = 300, 200
COMM = "cw-holder"


@pytest.fixture
def target(netns):
    before = host_values(list(ODD))
    assert all(before[k] != v for k, v in ODD.items()), before  # odd means odd
    made = start_target(TIME_WAIT, CLOSE_WAIT, COMM, ODD)
    try:
        yield made
    finally:
        made.stop()
    assert host_values(list(ODD)) == before  # the host's values untouched


def tcptune_json(*argv: str) -> tuple[int, object, str]:
    done = run_tcptune(*argv)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr


def test_check_through_pid_and_netns_equals_sysctl_inside(target) -> None:
    for option in (["--pid", str(target.pid)], ["--netns", f"/proc/{target.pid}/ns/net"]):
        code, doc, err = tcptune_json(*option, "check", "--json")
        assert code in (0, 1), err
        assert doc["netns"]["inode"] == str(target.inode)
        assert doc["netns"]["entered"] == " ".join(option)
        assert doc["netns"]["initial"] is False
        owner = doc["netns"]["owner"]
        assert (owner["kind"], owner["pid"], owner["processes"]) == ("process", target.pid, 2)
        settings = {s["key"]: s for s in doc["settings"]}
        for key, value in ODD.items():
            assert settings[key]["value"] == value
        compared = 0
        for key, setting in settings.items():
            assert setting["value"] == sysctl_inside(target.pid, key), key
            compared += setting["value"] is not None
        assert compared >= 20
        orphans = settings["net.ipv4.tcp_max_orphans"]
        assert (orphans["status"], orphans["scope"]) == ("missing", "global")
        assert settings["net.ipv4.tcp_fin_timeout"]["scope"] == "netns"
        assert doc["sockstat_tcp_scope"] == {
            "inuse": "netns",
            "orphan": "global",
            "tw": "netns",
            "alloc": "global",
            "mem": "global",
        }
        assert doc["sockstat_tcp"]["tw"] == int(
            inside(target.pid, "cat", "/proc/net/sockstat").split(" tw ")[1].split()[0]
        )


def test_check_profile_and_explain_look_inside(target) -> None:
    code, doc, err = tcptune_json("--pid", str(target.pid), "check", "client-profile", "--json")
    assert code == 1, err  # the odd port range and tcp_tw_reuse=0 drift
    settings = {s["key"]: s for s in doc["settings"]}
    assert settings["net.ipv4.ip_local_port_range"]["value"] == "40000 44999"
    assert settings["net.ipv4.tcp_tw_reuse"]["status"] == "drift"
    assert doc["boot"].startswith("not read: /etc/sysctl.d configures the host's boot")
    assert all(s["boot"] is None for s in doc["settings"])
    text = run_tcptune("--pid", str(target.pid), "check")
    assert f"network namespace {target.inode}: process python" in text.stdout
    assert "host's global" in text.stdout and "SCOPE" in text.stdout
    code, doc, err = tcptune_json(
        "--netns", f"/proc/{target.pid}/ns/net", "explain", "tcp_fin_timeout", "--json"
    )
    assert code == 0, err
    assert doc["live"]["value"] == "53" and doc["netns"]["inode"] == str(target.inode)
    said = run_tcptune("--pid", str(target.pid), "explain", "tcp_keepalive_time").stdout
    assert "1234 (changed" in said and f"in network namespace {target.inode}" in said


def test_sockets_through_pid_equals_ss_inside_and_names_the_holder(target) -> None:
    code, doc, err = tcptune_json("--pid", str(target.pid), "sockets", "--json")
    assert code in (0, 1), err
    assert doc["states"] == ss_counts(target.pid)
    states = doc["states"]
    assert states["TIME_WAIT"] == TIME_WAIT and states["CLOSE_WAIT"] == CLOSE_WAIT
    assert states["FIN_WAIT2"] == CLOSE_WAIT and states["LISTEN"] == 2
    (owner,) = doc["close_wait_owners"]
    assert (owner["pid"], owner["command"], owner["count"]) == (target.holder, COMM, CLOSE_WAIT)
    assert doc["sysctl"]["net.ipv4.tcp_max_tw_buckets"] == "4321"
    assert doc["port_pressure"]["range"] == [40000, 44999]
    assert doc["netns"]["inode"] == str(target.inode)
    (finding,) = [f for f in doc["findings"] if f["key"] == "CLOSE_WAIT"]
    assert f"program {COMM} (" in finding["message"]  # the command, with its arguments
    assert f"(pid {target.holder}) holds {CLOSE_WAIT} CLOSE_WAIT" in finding["message"]


BIND_MOUNTED = """
set -e
mount --make-rprivate /
touch "$1"
mount --bind "/proc/$2/ns/net" "$1"
exec "$3" --netns "$1" sockets --json
"""


def test_netns_through_a_bind_mount_as_cni_makes_them(target, tmp_path: Path) -> None:
    """A namespace file bind-mounted elsewhere (as CNI and `ip netns add` do), in a private
    mount namespace: the bind mount is gone with it."""
    path = tmp_path / "cni-netns"
    before = ss_counts(target.pid)
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", BIND_MOUNTED, "-", str(path), str(target.pid), TCPTUNE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr
    doc = json.loads(done.stdout)
    assert doc["netns"]["inode"] == str(target.inode)
    assert doc["netns"]["entered"] == f"--netns {path}"
    after = ss_counts(target.pid)
    assert doc["states"]["CLOSE_WAIT"] == CLOSE_WAIT
    # TIME_WAIT sockets only ever leave (after 60 s, or killed): tcptune's count lies between
    # what ss saw inside just before and just after it, and is the whole table on a calm machine
    assert before["TIME_WAIT"] >= doc["states"]["TIME_WAIT"] >= after["TIME_WAIT"]
    assert before["TIME_WAIT"] == TIME_WAIT or after["TIME_WAIT"] < TIME_WAIT


def test_profiles_capture_takes_the_namespaces_values(target, tmp_path: Path) -> None:
    output = tmp_path / "pod.toml"
    done = run_tcptune(
        "--pid", str(target.pid), "profiles", "capture", "pod", "--output", str(output)
    )
    assert done.returncode == 0, done.stderr
    captured = tomllib.loads(output.read_text())
    assert f"network namespace {target.inode}" in captured["description"]
    values = captured["sysctl"]
    assert values["net.ipv4.tcp_fin_timeout"] == 53
    assert values["net.ipv4.ip_local_port_range"] == [40000, 44999]
    assert values["net.core.somaxconn"] == 777
    assert "net.ipv4.tcp_max_orphans" not in values  # global: left out, with why
    assert "tcp_max_orphans: global key" in done.stdout


# Runs under `unshare -n -m`: tcptune's state on a tmpfs, the network namespace a fresh one that
# stands for the host. apply --runtime-only through --pid; then revert without and with --pid.
APPLY_AND_REVERT = textwrap.dedent(
    """
    import json, os, subprocess, sys
    tcptune, pid = sys.argv[1], sys.argv[2]
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=30)
    run("mount", "--make-rprivate", "/")
    state = "/var/lib/tcptune" if os.path.isdir("/var/lib/tcptune") else "/var/lib"
    run("mount", "-t", "tmpfs", "tmpfs", state)
    def cli(*argv):
        done = subprocess.run([tcptune, *argv], capture_output=True, text=True, timeout=60)
        return {"code": done.returncode, "out": done.stdout, "err": done.stderr}
    def here(key):
        with open("/proc/sys/" + key.replace(".", "/")) as handle:
            return " ".join(handle.read().split())
    keys = ["net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_fin_timeout"]
    before = {k: here(k) for k in keys}
    result = {
        "persist": cli("--pid", pid, "apply", "client-profile"),
        "dry": cli("--pid", pid, "apply", "client-profile", "--dry-run", "--json"),
        "apply": cli("--pid", pid, "apply", "client-profile", "--runtime-only", "--json"),
        "there": subprocess.run(
            ["nsenter", "-t", pid, "-n", "sysctl", "-n", *keys[:2]],
            capture_output=True, text=True, timeout=30,
        ).stdout.splitlines(),
        "backups": cli("backups", "--json"),
        "revert_here": cli("revert"),
    }
    backup = json.loads(result["apply"]["out"])["backup_id"]
    result["revert_id_here"] = cli("revert", backup)
    result["revert_there"] = cli("--pid", pid, "revert", "--json")
    result["here_before"], result["here_after"] = before, {k: here(k) for k in keys}
    print(json.dumps(result))
    """
)


def test_apply_runtime_only_in_a_namespace_and_revert_only_there(target) -> None:
    def values() -> dict[str, str | None]:
        keys = ("ip_local_port_range", "tcp_tw_reuse")
        return {k: sysctl_inside(target.pid, f"net.ipv4.{k}") for k in keys}

    assert values() == {"ip_local_port_range": "40000 44999", "tcp_tw_reuse": "0"}
    done = subprocess.run(
        ["unshare", "-n", "-m", sys.executable, "-c", APPLY_AND_REVERT, TCPTUNE, str(target.pid)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    persist = result["persist"]
    assert persist["code"] == 2 and "--pid does not apply to `tcptune apply`" in persist["err"]
    assert "export PROFILE --format k8s|docker" in persist["err"]
    dry = json.loads(result["dry"]["out"])
    assert result["dry"]["code"] == 0 and dry["persist"] is False and dry["dry_run"] is True
    assert dry["netns"]["inode"] == str(target.inode)
    applied = json.loads(result["apply"]["out"])
    assert result["apply"]["code"] == 0, result["apply"]["err"]
    assert applied["changed"] and applied["drop_in_written"] is False
    assert {r["key"]: r["outcome"] for r in applied["results"]} == {
        "net.ipv4.ip_local_port_range": "written",
        "net.ipv4.tcp_tw_reuse": "written",
    }
    assert [" ".join(v.split()) for v in result["there"][:2]] == ["10240 65535", "1"]
    (backup,) = json.loads(result["backups"]["out"])["backups"]
    assert backup["netns"]["inode"] == str(target.inode)
    assert backup["netns"]["entered"] == f"--pid {target.pid}"
    # Without --pid, revert is in another namespace: it neither picks nor takes that backup.
    assert result["revert_here"]["code"] == 2
    assert "nothing to revert in this network namespace" in result["revert_here"]["err"]
    assert result["revert_id_here"]["code"] == 2
    assert (
        "reverting it here would write them into the wrong one" in (result["revert_id_here"]["err"])
    )
    assert result["here_after"] == result["here_before"]
    reverted = json.loads(result["revert_there"]["out"])
    assert result["revert_there"]["code"] == 0, result["revert_there"]["err"]
    assert reverted["backup_id"] == applied["backup_id"]
    assert values() == {"ip_local_port_range": "40000 44999", "tcp_tw_reuse": "0"}


def test_a_process_that_exits_is_an_environment_error(netns) -> None:
    """A zombie (exited, not yet reaped) has no namespace any more: exit 3, one line."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline_hit = True
    for _ in range(200):  # bounded: a child that exits at once is a zombie within a second
        with open(f"/proc/{child.pid}/stat") as handle:
            if handle.read().split(") ", 1)[1].startswith("Z"):
                deadline_hit = False
                break
        os.sched_yield()
        subprocess.run(["sleep", "0.01"], check=True)
    assert not deadline_hit
    try:
        done = run_tcptune("--pid", str(child.pid), "check")
    finally:
        child.wait(timeout=30)
    assert done.returncode == 3, done.stderr
    assert done.stderr == (
        f"tcptune: error: process {child.pid} exited while tcptune entered its network "
        "namespace (run it again with the pid of a running process)\n"
    )


def sockstat_tcp(text: str) -> dict[str, int]:
    words = next(line for line in text.splitlines() if line.startswith("TCP:")).split()[1:]
    return {name: int(value) for name, value in zip(words[::2], words[1::2], strict=True)}


def test_probe_which_sockstat_counters_are_global(target) -> None:
    """docs/kernel-facts.md: sockstat's orphan, alloc and mem count the whole kernel's sockets,
    inuse and tw the namespace's: a fresh namespace without a socket still sees the others'."""

    def fresh() -> dict[str, int]:
        done = subprocess.run(
            ["unshare", "-n", "cat", "/proc/net/sockstat"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return sockstat_tcp(done.stdout)

    there = sockstat_tcp(inside(target.pid, "cat", "/proc/net/sockstat"))
    # tcp_fin_timeout 53 (not above 60): the orphaned FIN_WAIT2 sockets are TIME_WAIT
    # minisockets already, in tw and no longer full sockets (inuse: the listeners and CLOSE_WAIT)
    assert (there["tw"], there["inuse"]) == (TIME_WAIT + CLOSE_WAIT, 2 + CLOSE_WAIT)
    empty = fresh()
    assert (empty["tw"], empty["inuse"]) == (0, 0)
    assert empty["alloc"] >= 2 + CLOSE_WAIT and empty["mem"] > 0
    # Orphans that stay full sockets (tcp_fin_timeout above 60) are counted in every namespace.
    longer = start_target(10, 40, "orphan-maker", {"net.ipv4.tcp_fin_timeout": "120"})
    try:
        assert sockstat_tcp(inside(longer.pid, "cat", "/proc/net/sockstat"))["orphan"] >= 40
        assert fresh()["orphan"] >= 40
    finally:
        longer.stop()
    _, doc, _ = tcptune_json("--pid", str(target.pid), "check", "--json")
    scope = doc["sockstat_tcp_scope"]
    assert [k for k, v in scope.items() if v == "global"] == ["orphan", "alloc", "mem"]
