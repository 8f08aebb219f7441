"""integrations/ansible over real SSH: three hosts made as network namespaces, each running Debian's
sshd in its own mount namespace, and the controller in a fourth namespace.

Each host namespace is joined to the controller's by a veth pair addressed from 192.0.2.0/24
(documentation addresses, on those veths only), so no packet leaves the namespaces made here. A
host's sshd runs with tmpfs over /run, the sysctl.d directories, /var/lib (or /var/lib/tcptune) and
/var/log, and an empty file over /etc/sysctl.conf: tcptune there runs with --root / against the
real kernel of that network namespace, and nothing it writes reaches the machine's own files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_ansible import (
    ANSIBLE_PLAYBOOK,
    APPLY,
    CHECK,
    SSH_ENV,
    TCPTUNE,
    Run,
    fleet_inventory,
    playbook,
)

from tcptune.profiles import load as load_profile

pytestmark = pytest.mark.netns

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
HOSTS = ("h1", "h2", "h3")
DROP_IN = "/etc/sysctl.d/99-tcptune.conf"
STATE = "/var/lib/tcptune"
CONF_DIRS = ("/etc/sysctl.d", "/usr/lib/sysctl.d", "/usr/local/lib/sysctl.d", "/lib/sysctl.d")

# Run by `ip netns exec HOST unshare -m --propagation private sh -c HOST_SETUP sh CONFIG`: the
# host's own mounts, then sshd in the foreground (exec: the process the test started is sshd).
HOST_SETUP = r"""
set -eu
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -m 0755 /run/sshd /run/sysctl.d
for dir in /etc/sysctl.d /usr/lib/sysctl.d /usr/local/lib/sysctl.d; do
    if [ -d "$dir" ]; then mount -t tmpfs tmpfs "$dir"; fi
done
: > /run/empty-sysctl.conf
if [ -e /etc/sysctl.conf ]; then mount --bind /run/empty-sysctl.conf /etc/sysctl.conf; fi
if [ -d /var/lib/tcptune ]; then
    mount -t tmpfs tmpfs /var/lib/tcptune
else
    mount -t tmpfs tmpfs /var/lib
fi
mount -t tmpfs tmpfs /var/log
/usr/sbin/sshd -t -f "$1"
exec /usr/sbin/sshd -D -e -f "$1"
"""


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done


@pytest.fixture(scope="module", autouse=True)
def sshd_available() -> None:
    """openssh-server comes from `make system-deps`; on CI its absence is a failure."""
    missing = [str(p) for p in (SSHD, Path(SSH_KEYGEN), ANSIBLE_PLAYBOOK) if not p.exists()]
    missing += [tool for tool in ("ip", "nsenter", "unshare", "ssh") if not shutil.which(tool)]
    if not missing:
        return
    message = f"missing {', '.join(missing)}: run `make dev system-deps`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Host:
    name: str
    netns: str
    address: str
    sshd: subprocess.Popen | None = None
    log: Path | None = None

    def sysctl(self, key: str) -> str:
        done = sh("ip", "netns", "exec", self.netns, "sysctl", "-n", key)
        return " ".join(done.stdout.split())

    def inside(self, *argv: str) -> subprocess.CompletedProcess:
        """A command in this host's mount namespace (sshd's, which every login it serves shares)."""
        assert self.sshd is not None
        return sh("nsenter", "-m", "-t", str(self.sshd.pid), *argv, check=False)

    def read(self, path: str) -> bytes | None:
        done = self.inside("cat", path)
        return done.stdout.encode() if done.returncode == 0 else None

    def backups(self) -> list[str]:
        done = self.inside("ls", f"{STATE}/backups")
        return sorted(done.stdout.split()) if done.returncode == 0 else []


@dataclass
class Fleet:
    controller: str
    hosts: list[Host]
    key: Path
    inventory: str
    namespaces: list[str] = field(default_factory=list)


def wait_listening(host: Host, deadline_s: float = 15) -> None:
    """Until sshd listens on its address (bounded), or fail with its log."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert host.sshd is not None and host.log is not None
        if host.sshd.poll() is not None:
            pytest.fail(
                f"sshd on {host.name} exited {host.sshd.returncode}: {host.log.read_text()}"
            )
        listening = sh("ip", "netns", "exec", host.netns, "ss", "-Hltn", check=False).stdout
        if f"{host.address}:22 " in listening:
            return
        time.sleep(0.1)
    pytest.fail(
        f"sshd on {host.name} is not listening after {deadline_s} s: {host.log.read_text()}"
    )


def stop(namespaces: list[str], hosts: list[Host]) -> None:
    """Stop every sshd, then anything else left in the namespaces made here, then the namespaces."""
    for host in hosts:
        if host.sshd is not None and host.sshd.poll() is None:
            host.sshd.terminate()
            try:
                host.sshd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                host.sshd.kill()
                host.sshd.wait(timeout=10)
    for name in namespaces:
        pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        sh("ip", "netns", "delete", name, check=False)


@pytest.fixture
def fleet(tmp_path: Path, netns) -> Iterator[Fleet]:
    tag = f"tcptune{os.getpid()}"
    controller = f"{tag}-ctl"
    hosts = [Host(name, f"{tag}-{name}", f"192.0.2.{4 * i + 2}") for i, name in enumerate(HOSTS)]
    namespaces: list[str] = []
    try:
        sh("ip", "netns", "add", controller)
        namespaces.append(controller)
        sh("ip", "-n", controller, "link", "set", "lo", "up")
        key = tmp_path / "ssh/id_ed25519"
        key.parent.mkdir(mode=0o700)
        sh(SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "tcptune-test", "-f", str(key))
        for i, host in enumerate(hosts):
            sh("ip", "netns", "add", host.netns)
            namespaces.append(host.netns)
            link = f"to-{host.name}"
            # Both ends are made inside the namespaces: the machine's own never sees them.
            veth = ["type", "veth", "peer", "name", "eth0", "netns", host.netns]
            sh("ip", "-n", controller, "link", "add", link, *veth)
            sh("ip", "-n", controller, "addr", "add", f"192.0.2.{4 * i + 1}/30", "dev", link)
            sh("ip", "-n", controller, "link", "set", link, "up")
            sh("ip", "-n", host.netns, "addr", "add", f"{host.address}/30", "dev", "eth0")
            sh("ip", "-n", host.netns, "link", "set", "eth0", "up")
            sh("ip", "-n", host.netns, "link", "set", "lo", "up")

            home = tmp_path / "ssh" / host.name
            home.mkdir(mode=0o700)
            sh(SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(home / "host_key"))
            shutil.copy(key.with_suffix(".pub"), home / "authorized_keys")
            config = home / "sshd_config"
            config.write_text(
                f"ListenAddress {host.address}:22\n"
                f"HostKey {home / 'host_key'}\n"
                f"PidFile {home / 'sshd.pid'}\n"
                f"AuthorizedKeysFile {home / 'authorized_keys'}\n"
                "PermitRootLogin prohibit-password\n"
                "PubkeyAuthentication yes\n"
                "PasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\n"
                "UsePAM no\n"
                "StrictModes no\n"
                "UseDNS no\n"
                "PrintMotd no\n"
                "PrintLastLog no\n"
                "LogLevel VERBOSE\n"
            )
            host.log = home / "sshd.log"
            with host.log.open("w") as log:
                enter = ["ip", "netns", "exec", host.netns, "unshare", "-m"]
                host.sshd = subprocess.Popen(
                    [*enter, "--propagation", "private", "sh", "-c", HOST_SETUP, "sh", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        for host in hosts:
            wait_listening(host)
        inventory = fleet_inventory(
            tmp_path / "inventory.json",
            {host.name: {"ansible_host": host.address} for host in hosts},
            ansible_connection="ssh",
            ansible_user="root",
            ansible_ssh_private_key_file=str(key),
            # the test's venv: its python and tcptune are on the filesystem the hosts share
            tcptune_root="/",
        )
        yield Fleet(controller, hosts, key, inventory, namespaces)
    finally:
        stop(namespaces, hosts)
    assert all(host.sshd is None or host.sshd.poll() is not None for host in hosts)
    assert not any(name in sh("ip", "netns", "list").stdout for name in namespaces)


def run_fleet(tmp_path: Path, fleet: Fleet, *args: str, **extra) -> Run:
    """The playbook from the controller's namespace, over ssh to the three hosts."""
    return playbook(
        tmp_path,
        *args,
        extra=extra,
        inventory=fleet.inventory,
        connection=None,
        prefix=["ip", "netns", "exec", fleet.controller],
        env={**SSH_ENV, "ANSIBLE_PIPELINING": "True"},
    )


def machine_state(keys: list[str]) -> dict:
    """What must not change on this machine: its own values of the keys, its sysctl.d files and
    tcptune's state directory."""
    values = {key: " ".join(sh("sysctl", "-n", key).stdout.split()) for key in keys}
    files = {}
    for directory in (*CONF_DIRS, STATE):
        root = Path(directory)
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                files[str(path)] = path.read_bytes() if path.is_file() else None
    sysctl_conf = Path("/etc/sysctl.conf")
    files[str(sysctl_conf)] = sysctl_conf.read_bytes() if sysctl_conf.exists() else None
    return {"values": values, "files": files}


def test_playbook_over_ssh_on_three_hosts(tmp_path: Path, fleet: Fleet) -> None:
    targets = load_profile("server-profile", Path("/")).sysctl
    other = load_profile("client-profile", Path("/")).sysctl
    keys = sorted({*targets, *other})
    machine_before = machine_state(keys)
    started = {host.name: {key: host.sysctl(key) for key in keys} for host in fleet.hosts}
    for host in fleet.hosts:
        assert any(started[host.name][key] != value for key, value in targets.items())
        assert host.read(DROP_IN) is None and host.backups() == []

    # 1. Apply on all three.
    summary_file = tmp_path / "summary.json"
    first = run_fleet(
        tmp_path, fleet, tcptune_profile="server-profile", tcptune_summary_file=str(summary_file)
    )
    assert first.code == 0, first.output
    drop_ins = {}
    for host in fleet.hosts:
        assert first.recap[host.name]["failures"] == 0, first.output
        assert first.recap[host.name]["unreachable"] == 0, first.output
        apply = first.task(APPLY, host.name)
        assert apply["status"] == "changed", first.output
        assert apply["cmd"] == [str(TCPTUNE), "--root", "/", "apply", "server-profile", "--json"]
        assert {key: host.sysctl(key) for key in targets} == targets, host.name
        drop_in = host.read(DROP_IN)
        assert drop_in is not None, host.name
        assert drop_in.startswith(b"# Managed by tcptune: profile server-profile.")
        for key, value in targets.items():
            assert f"{key} = {value}\n".encode() in drop_in
        assert len(host.backups()) == 1, host.name
        drop_ins[host.name] = drop_in
    summary = first.written_summary(summary_file)
    assert summary["in_sync"] == list(HOSTS)
    assert summary["drifted"] == summary["failed"] == summary["not_installed"] == []
    for host in fleet.hosts:
        entry = summary["hosts"][host.name]
        assert entry["in_sync"] is True and entry["exit_code"] == 0
        assert entry["kernel"] == os.uname().release
        assert entry["apply"]["changed"] is True and entry["apply"]["backup_id"]
        assert set(entry["apply"]["keys_to_change"]) == {
            key for key, value in targets.items() if started[host.name][key] != value
        }
    assert machine_state(keys) == machine_before

    # 2. The same again: every task "ok" (or skipped), nothing changed anywhere.
    second = run_fleet(tmp_path, fleet, tcptune_profile="server-profile")
    assert second.code == 0, second.output
    for host in fleet.hosts:
        assert second.recap[host.name]["changed"] == 0, second.output
        assert second.recap[host.name]["failures"] == 0, second.output
        assert {r["status"] for r in second.results if r["host"] == host.name} <= {"ok", "skipped"}
        assert second.task(APPLY, host.name)["status"] == "ok"
        assert host.read(DROP_IN) == drop_ins[host.name]
        assert len(host.backups()) == 1
    summary = second.summary()
    assert summary["in_sync"] == list(HOSTS)
    assert all(not entry["apply"]["changed"] for entry in summary["hosts"].values())

    # 3. Check mode with another profile: "changed" means "would change"; nothing is written.
    live = {host.name: {key: host.sysctl(key) for key in keys} for host in fleet.hosts}
    backups = {host.name: host.backups() for host in fleet.hosts}
    would_change = {key for key, value in other.items() if live["h1"][key] != value}
    assert would_change
    check_file = tmp_path / "check-summary.json"
    third = run_fleet(
        tmp_path,
        fleet,
        "--check",
        tcptune_profile="client-profile",
        tcptune_summary_file=str(check_file),
    )
    assert third.code == 0, third.output
    for host in fleet.hosts:
        apply = third.task(APPLY, host.name)
        assert apply["status"] == "changed" and apply["cmd"][-1] == "--dry-run", third.output
        check = third.task(CHECK, host.name)
        assert check["rc"] == 1 and check["status"] == "ok"
        assert {key: host.sysctl(key) for key in keys} == live[host.name]
        assert host.read(DROP_IN) == drop_ins[host.name]
        assert host.backups() == backups[host.name]
    summary = third.written_summary(check_file)
    assert summary["drifted"] == list(HOSTS)
    assert summary["in_sync"] == summary["failed"] == summary["not_installed"] == []
    for host in fleet.hosts:
        entry = summary["hosts"][host.name]
        assert entry["profile"] == "client-profile" and entry["in_sync"] is False
        assert set(entry["drifted"]) == would_change
        assert entry["apply"]["dry_run"] is True
        assert set(entry["apply"]["keys_to_change"]) == would_change
    assert machine_state(keys) == machine_before
