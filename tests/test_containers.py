"""tcptune in real OCI containers: podman with runc (Debian's packages), on a Debian bookworm root
file system made by debootstrap, tcptune installed inside from a wheelhouse built here.

The root file system is made once (about a minute) and kept in ROOTFS_CACHE for the next runs;
a fresh machine makes it during the test run. Containers get it as an overlay (`--rootfs DIR:O`),
so nothing they write reaches the cache. podman itself runs in a mount and network namespace of
the tests' own (a `sleep` that nsenter joins), with tmpfs over /run and /var/lib and its storage
in a temporary directory: its state, the bridge and the firewall rules of `--network=private`
and the forwarding it turns on all stay there, never on the host. On these machines crun fails
("cgroups in hybrid mode") and the default ulimits are refused, hence runc, cgroupfs and the
explicit --ulimit flags.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_tcptune
from netns_targets import MAKER, host_pid_of, ss_counts, start_target, sysctl_inside

pytestmark = pytest.mark.netns

ROOTFS_CACHE = Path(os.environ.get("TCPTUNE_TEST_CACHE", "/var/cache/tcptune-tests"))
ROOTFS = ROOTFS_CACHE / "rootfs-bookworm"
DEBOOTSTRAP = [
    "debootstrap",
    "--variant=minbase",
    "--include=python3-minimal,python3-venv",
    "bookworm",
]
COMPLETE = ".tcptune-rootfs-complete"  # written last: a root file system cut short has none
PODMAN_FLAGS = ["--runtime", "runc", "--cgroup-manager=cgroupfs"]
RUN = ["run", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
VENV = "/opt/tcptune"  # where tcptune is installed in the containers
SOURCE = Path(__file__).resolve().parent.parent


def _needs(tools: list[str]) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        message = f"container tests need {', '.join(missing)} (make system-deps installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def ensure_rootfs() -> Path:
    """The cached root file system, made by debootstrap if it is not there yet (one maker at a
    time: a lock file; made in a temporary directory and renamed when complete)."""
    if (ROOTFS / COMPLETE).exists():
        return ROOTFS
    ROOTFS_CACHE.mkdir(parents=True, exist_ok=True)
    with open(ROOTFS_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (ROOTFS / COMPLETE).exists():
            return ROOTFS
        for stale in [ROOTFS, *ROOTFS_CACHE.glob("rootfs-bookworm.*.tmp")]:
            shutil.rmtree(stale, ignore_errors=True)
        building = ROOTFS_CACHE / f"rootfs-bookworm.{os.getpid()}.tmp"
        done = subprocess.run(
            [*DEBOOTSTRAP, str(building)], capture_output=True, text=True, timeout=1200
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        (building / COMPLETE).write_text(" ".join(DEBOOTSTRAP) + "\n")
        building.rename(ROOTFS)
    return ROOTFS


class Podman:
    """podman in a mount and network namespace of the tests' own."""

    def __init__(self, base: Path) -> None:
        self.storage = base / "storage"
        self.keeper = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "sleep", "3600"]
        )
        mine = os.stat("/proc/self/ns/mnt").st_ino
        for _ in range(500):  # bounded: unshare takes milliseconds
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{self.keeper.pid}/ns/mnt").st_ino != mine:
                    break
            time.sleep(0.01)
        self.inside(
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib && ip link set lo up",
        )

    def inside(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            ["nsenter", "-t", str(self.keeper.pid), "-m", "-n", *argv],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert done.returncode == 0, (argv, done.stdout, done.stderr)
        return done

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.inside(
            "podman",
            "--root",
            str(self.storage),
            "--runroot",
            "/run/tcptune-podman",
            *PODMAN_FLAGS,
            *args,
            check=check,
        )

    def start(self, rootfs: Path, flags: list[str], command: list[str]) -> str:
        """A detached container; its id."""
        done = self.podman(*RUN, "-d", *flags, "--rootfs", f"{rootfs}:O", *command)
        return done.stdout.strip().splitlines()[-1]

    def pid(self, container: str) -> int:
        return int(self.podman("inspect", "--format", "{{.State.Pid}}", container).stdout)

    def close(self) -> None:
        self.podman("rm", "--force", "--time", "0", "--all", check=False)
        self.keeper.kill()
        self.keeper.wait(timeout=30)


@pytest.fixture(scope="module")
def podman(netns, tmp_path_factory) -> Iterator[Podman]:
    _needs(["podman", "runc", "debootstrap", "nsenter"])
    sandbox = Podman(tmp_path_factory.mktemp("podman"))
    try:
        yield sandbox
    finally:
        sandbox.close()


@pytest.fixture(scope="module")
def installed(podman: Podman, tmp_path_factory) -> tuple[Path, Path]:
    """(root file system, venv directory): tcptune installed from a wheelhouse built on the
    host (`pip wheel`: tcptune and its dependencies), by the container's own Python, into a
    directory the containers mount at VENV."""
    rootfs = ensure_rootfs()
    base = tmp_path_factory.mktemp("container-tcptune")
    wheels, venv = base / "wheels", base / "venv"
    venv.mkdir()
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(wheels), str(SOURCE)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    podman.podman(
        *RUN,
        "--rm",
        "--network=none",
        "-v",
        f"{wheels}:/wheels:ro",
        "-v",
        f"{venv}:{VENV}",
        "--rootfs",
        f"{rootfs}:O",
        "sh",
        "-c",
        f"python3 -m venv {VENV} && {VENV}/bin/pip install --quiet --no-index "
        "--find-links /wheels tcptune",
    )
    return rootfs, venv


def tcptune_in(podman: Podman, container: str, *argv: str) -> subprocess.CompletedProcess:
    return podman.podman("exec", container, f"{VENV}/bin/tcptune", *argv, check=False)


def test_tcptune_inside_a_container_reads_and_refuses_to_write(podman, installed) -> None:
    rootfs, venv = installed
    container = podman.start(
        rootfs, ["--network=none", "-v", f"{venv}:{VENV}:ro"], ["sleep", "600"]
    )
    pid = podman.pid(container)
    mounts = podman.podman("exec", container, "cat", "/proc/self/mountinfo").stdout
    (proc_sys,) = [line for line in mounts.splitlines() if line.split()[4] == "/proc/sys"]
    assert " ro," in proc_sys  # as runtimes mount it

    check = tcptune_in(podman, container, "check", "--json")
    assert check.returncode in (0, 1), check.stderr
    doc = json.loads(check.stdout)
    assert doc["netns"]["inode"] == str(os.stat(f"/proc/{pid}/ns/net").st_ino)
    assert doc["netns"]["initial"] is False
    settings = {s["key"]: s for s in doc["settings"]}
    for key, setting in settings.items():
        assert setting["value"] == sysctl_inside(pid, key), key
    assert settings["net.ipv4.tcp_max_orphans"]["scope"] == "global"
    text = tcptune_in(podman, container, "check")
    assert "host's global" in text.stdout, text.stderr

    drift = tcptune_in(podman, container, "check", "client-profile", "--json")
    assert drift.returncode == 1, drift.stderr
    statuses = {s["key"]: s["status"] for s in json.loads(drift.stdout)["settings"]}
    assert statuses["net.ipv4.tcp_tw_reuse"] == "drift"

    dry = tcptune_in(podman, container, "apply", "client-profile", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing is written" in dry.stdout
    assert "+net.ipv4.tcp_tw_reuse = 1" in dry.stdout
    assert "+net.ipv4.ip_local_port_range = 10240 65535" in dry.stdout

    applied = tcptune_in(podman, container, "apply", "client-profile")
    assert applied.returncode == 3, applied.stdout + applied.stderr
    assert applied.stderr.count("\n") == 1 and "Traceback" not in applied.stderr
    assert "/proc/sys is read-only here" in applied.stderr
    assert "tcptune export client-profile --format k8s|docker" in applied.stderr
    written = podman.podman(
        "exec", container, "test", "-e", "/etc/sysctl.d/99-tcptune.conf", check=False
    )
    assert written.returncode == 1  # refused before anything was written
    assert sysctl_inside(pid, "net.ipv4.tcp_tw_reuse") == settings["net.ipv4.tcp_tw_reuse"]["value"]


def docker_flags(export: str) -> list[str]:
    """The --sysctl flags of the `docker run` command that `export --format docker` prints."""
    lines = export.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("docker run"))
    command = []
    for line in lines[start:]:
        command.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    words = shlex.split(" ".join(command))
    assert words[:2] == ["docker", "run"] and words[-1] == "IMAGE", words
    flags = words[2:-1]
    assert flags and all(flag == "--sysctl" for flag in flags[::2]), flags
    return flags


@pytest.mark.parametrize("profile", ["client-profile", "server-profile"])
def test_the_docker_export_run_for_real_is_in_sync_inside_and_from_the_host(
    podman, installed, profile: str
) -> None:
    rootfs, venv = installed
    export = run_tcptune("export", profile, "--format", "docker")
    assert export.returncode == 0, export.stderr
    flags = docker_flags(export.stdout)
    container = podman.start(
        rootfs,
        ["--network=private", "-v", f"{venv}:{VENV}:ro", *flags],
        ["sleep", "600"],
    )
    pid = podman.pid(container)
    inside = tcptune_in(podman, container, "check", profile, "--json")
    assert inside.returncode in (0, 1), inside.stderr
    doc = json.loads(inside.stdout)
    assert doc["in_sync"] is True, doc["settings"]
    assert {s["status"] for s in doc["settings"]} == {"ok"}
    host = run_tcptune("--pid", str(pid), "check", profile, "--json")
    assert host.returncode == inside.returncode, host.stderr
    seen = json.loads(host.stdout)
    assert seen["in_sync"] is True
    assert seen["netns"]["inode"] == doc["netns"]["inode"]
    assert seen["netns"]["owner"]["kind"] == "podman"
    assert seen["netns"]["owner"]["container_id"] == container
    pairs = [(s["key"], s["value"], s["target"], s["status"]) for s in seen["settings"]]
    assert pairs == [(s["key"], s["value"], s["target"], s["status"]) for s in doc["settings"]]
    for flag in flags[1::2]:
        key, value = flag.split("=", 1)
        assert sysctl_inside(pid, key) == " ".join(value.split())


def wait_for_maker(podman: Podman, container: str) -> dict:
    for _ in range(600):  # bounded: the maker needs well under a second
        logs = podman.podman("logs", container).stdout
        for line in logs.splitlines():
            if line.startswith("{"):
                return json.loads(line)
        time.sleep(0.05)
    raise AssertionError(f"the maker in {container} did not start: {logs}")


def test_all_netns_names_and_counts_each_namespace(podman, installed, tmp_path: Path) -> None:
    rootfs, _ = installed
    maker = tmp_path / "maker"
    maker.mkdir()
    (maker / "maker.py").write_text(MAKER)
    container = podman.start(
        rootfs,
        ["--network=none", "-v", f"{maker}:/maker:ro"],
        ["python3", "/maker/maker.py", "120", "80", "pod-holder", "sleep", "{}"],
    )
    wait_for_maker(podman, container)
    cpid = podman.pid(container)
    cinode = os.stat(f"/proc/{cpid}/ns/net").st_ino
    first = start_target(200, 50, "holder-a", {})
    second = start_target(90, 130, "holder-b", {"net.ipv4.tcp_fin_timeout": "41"})
    first_inode, second_inode = first.inode, second.inode
    try:
        done = run_tcptune("sockets", "--all-netns", "--json")
        assert done.returncode in (0, 1), done.stderr
        documents = json.loads(done.stdout)
        text = run_tcptune("sockets", "--all-netns")
        metrics = run_tcptune("sockets", "--all-netns", "--format", "prometheus")
        expected = {
            cinode: (cpid, 120, 80, host_pid_of(cinode, "pod-holder"), "pod-holder"),
            first_inode: (first.pid, 200, 50, first.holder, "holder-a"),
            second_inode: (second.pid, 90, 130, second.holder, "holder-b"),
        }
        counted = {pid: ss_counts(pid) for pid, *_ in expected.values()}
    finally:
        first.stop()
        second.stop()
    inodes = [doc["netns"]["inode"] for doc in documents]
    assert len(inodes) == len(set(inodes)) >= 4  # one each, and the host's
    by_inode = {doc["netns"]["inode"]: doc for doc in documents}
    for inode, (pid, time_wait, close_wait, holder, comm) in expected.items():
        doc = by_inode[str(inode)]
        assert doc["command"] == "sockets" and "schema_version" in doc
        assert doc["states"] == counted[pid], comm
        states = doc["states"]
        assert (states["TIME_WAIT"], states["CLOSE_WAIT"]) == (time_wait, close_wait), comm
        assert (states["FIN_WAIT2"], states["LISTEN"], doc["total"]) == (
            close_wait,
            2,
            time_wait + 2 * close_wait + 2,
        )
        (owner,) = doc["close_wait_owners"]
        assert (owner["pid"], owner["command"], owner["count"]) == (holder, comm, close_wait)
    pod = by_inode[str(cinode)]["netns"]["owner"]
    assert (pod["kind"], pod["container_id"], pod["label"]) == (
        "podman",
        container,
        f"podman:{container[:12]}",
    )
    assert pod["name"] == f"podman container {container[:12]}"
    for target, inode in ((first, first_inode), (second, second_inode)):
        owner = by_inode[str(inode)]["netns"]["owner"]
        assert (owner["kind"], owner["pid"]) == ("process", target.pid)
    assert by_inode[str(second_inode)]["sysctl"]["net.ipv4.tcp_fin_timeout"] == "41"
    # Worst first: all three warn (tens of CLOSE_WAIT), then the most CLOSE_WAIT first.
    order = [inodes.index(str(i)) for i in (second_inode, cinode, first_inode)]
    assert order == sorted(order)
    assert text.returncode == done.returncode
    assert f"podman container {container[:12]}" in text.stdout
    assert "holder-b (pid" in text.stdout and "TOTAL" in text.stdout
    assert metrics.returncode == done.returncode, metrics.stderr
    series = (
        f'tcptune_sockets{{netns="{cinode}",netns_owner="podman:{container[:12]}",'
        'state="CLOSE_WAIT"} 80'
    )
    assert series in metrics.stdout.splitlines()
    assert metrics.stdout.count("# TYPE tcptune_sockets gauge") == 1
