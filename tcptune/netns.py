"""Pure: network namespaces as tcptune names them, and which values in one are its own.

A network namespace is known by its inode number (`readlink /proc/PID/ns/net`: net:[INODE]). What
owns it is read from the cgroup paths of the processes in it (tcptune.system gathers them): a
container runtime puts every container in a cgroup named after the container, and Kubernetes puts
it below one named after the pod's UID. A namespace with no container process is named by its
name in /run/netns (`ip netns`), else by its first process; the initial namespace is the host's.

Which values are the namespace's own: the per-netns sysctls (keys.KeySpec.namespaced_on), and in
/proc/net/sockstat's TCP line `inuse` and `tw`; `orphan`, `alloc` and `mem` are counters of the
whole kernel (net/ipv4/proc.c:sockstat_seq_show, 6.18: tcp_orphan_count_sum(),
proto_sockets_allocated_sum_positive(), proto_memory_allocated()), the same in every namespace.
"""

import re
from dataclasses import dataclass, field

from tcptune import keys
from tcptune.kernel import Version
from tcptune.model import ERROR, INFO, MISSING, PRESENT, WARNING, Reading

NETNS = "netns"  # a value of this namespace
GLOBAL = "global"  # one value for the whole kernel, the host's

# /proc/net/sockstat "TCP:" fields
SOCKSTAT_SCOPE = {"inuse": NETNS, "orphan": GLOBAL, "tw": NETNS, "alloc": GLOBAL, "mem": GLOBAL}
SOCKSTAT_SOURCE = "net/ipv4/proc.c:sockstat_seq_show (6.18)"

# The key that exists in the initial network namespace only (ipv4_table): its absence tells that
# /proc/sys/net shows another namespace (a container's).
INITIAL_ONLY_KEY = "net.ipv4.tcp_max_orphans"

HOST = "host"
PODMAN = "podman"
DOCKER = "docker"
CONTAINERD = "containerd"
CRIO = "cri-o"
KUBERNETES = "kubernetes"
NSPAWN = "systemd-nspawn"
LXC = "lxc"
NAMED = "named"  # a name in /run/netns and no container process
PROCESS = "process"
UNKNOWN = "unknown"


def key_scope(spec: keys.KeySpec, version: Version | None) -> str | None:
    """NETNS or GLOBAL for a key on this kernel; None when that depends on an unknown kernel,
    or the key does not exist on it."""
    if spec.exists_on(version) is False:
        return None
    namespaced = spec.namespaced_on(version)
    if namespaced is None:
        return None
    return NETNS if namespaced else GLOBAL


def is_initial(reading: Reading | None) -> bool | None:
    """Is /proc/sys/net the initial namespace's? From the reading of INITIAL_ONLY_KEY: present
    there, absent in every other namespace. None when it could not be read."""
    if reading is None:
        return None
    if reading.state == PRESENT:
        return True
    return False if reading.state == MISSING else None


# --- who owns a namespace ------------------------------------------------------------------------

_HEX64 = r"([0-9a-f]{64})"
_UID = r"([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})"
# Kubernetes: /kubepods/burstable/pod<UID>/<ID> (cgroupfs driver), or
# /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<UID with _>.slice/
# cri-containerd-<ID>.scope (systemd driver; crio-<ID>, docker-<ID> for the other runtimes).
_POD = re.compile(r"kubepods.*?pod" + _UID)
_POD_CONTAINER = re.compile(
    r"/(?:(cri-containerd|crio|docker)-)?" + _HEX64 + r"(?:\.scope)?(?:/|$)"
)
# Outside Kubernetes, each runtime's own name: cgroupfs and systemd managers alike.
_RUNTIMES = (
    (PODMAN, re.compile(r"libpod-(?!conmon-)" + _HEX64)),
    (DOCKER, re.compile(r"/docker[-/]" + _HEX64)),
    (CONTAINERD, re.compile(r"/(?:nerdctl|cri-containerd)-" + _HEX64)),
    (CRIO, re.compile(r"/crio-" + _HEX64)),
)
_NSPAWN = (
    re.compile(r"/systemd-nspawn@([^/]+)\.service(?:/|$)"),
    re.compile(r"/machine\.slice/machine-([^/]+)\.scope(?:/|$)"),
)
_LXC = re.compile(r"/lxc(?:\.payload)?[./]([^/]+)")
_RUNTIME_OF_PREFIX = {"cri-containerd": CONTAINERD, "crio": CRIO, "docker": DOCKER}


@dataclass(frozen=True, kw_only=True, slots=True)
class Container:
    """What a cgroup path says about the process in it."""

    kind: str  # KUBERNETES, PODMAN, DOCKER, CONTAINERD, CRIO, NSPAWN or LXC
    id: str | None = None  # the container id (64 hex digits), or the machine's name
    pod_uid: str | None = None
    runtime: str | None = None  # for a pod: containerd, cri-o, docker, or None (cgroupfs driver)


def unescape_unit(text: str) -> str:
    r"""A systemd unit name part as the user wrote it: '\x2d' is '-'."""
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m[1], 16)), text)


def cgroup_paths(text: str) -> list[str]:
    """The paths of /proc/PID/cgroup ('0::/path', 'N:controllers:/path'), the unified (v2)
    hierarchy first, then systemd's, then the others."""
    ranked = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        rank = (
            0 if hierarchy == "0" and not controllers else 1 if "name=systemd" in controllers else 2
        )
        ranked.append((rank, path))
    return [path for _, path in sorted(ranked, key=lambda item: item[0])]


def container_of(cgroup_text: str) -> Container | None:
    """The container (or pod) a process is in, from its /proc/PID/cgroup; None when its cgroup
    names none (a host process, or a cgroup namespace that hides the path)."""
    for path in cgroup_paths(cgroup_text):
        pod = _POD.search(path)
        if pod:
            uid = pod[1].replace("_", "-")
            inner = _POD_CONTAINER.search(path, pod.end())
            runtime = _RUNTIME_OF_PREFIX.get(inner[1]) if inner and inner[1] else None
            return Container(
                kind=KUBERNETES, id=inner[2] if inner else None, pod_uid=uid, runtime=runtime
            )
        for kind, pattern in _RUNTIMES:
            found = pattern.search(path)
            if found:
                return Container(kind=kind, id=found[1])
        for pattern in _NSPAWN:
            found = pattern.search(path)
            if found:
                return Container(kind=NSPAWN, id=unescape_unit(found[1]))
        found = _LXC.search(path)
        if found:
            return Container(kind=LXC, id=found[1])
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class Process:
    """One process in a namespace, as tcptune.system read it."""

    pid: int
    command: str | None  # /proc/PID/comm
    cgroup: str | None  # /proc/PID/cgroup, whole


@dataclass(frozen=True, kw_only=True, slots=True)
class Owner:
    """What a network namespace belongs to."""

    kind: str
    name: str  # for people: "podman container 16bba41a0bf3", "host", "process nginx (pid 42)"
    label: (
        str  # for metrics: stable across restarts of the same container, e.g. "podman:16bba41a0bf3"
    )
    container_id: str | None = None
    pod_uid: str | None = None
    runtime: str | None = None
    pid: int | None = None  # the process that named it (the first process in the namespace)
    command: str | None = None
    cgroup: str | None = None  # that process's cgroup path (the first of cgroup_paths)
    processes: int = 0  # processes found in the namespace
    names: list[str] = field(default_factory=list)  # /run/netns names

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "name": self.name,
            "label": self.label,
            "container_id": self.container_id,
            "pod_uid": self.pod_uid,
            "runtime": self.runtime,
            "pid": self.pid,
            "command": self.command,
            "cgroup": self.cgroup,
            "processes": self.processes,
            "netns_names": self.names,
        }


def _short(container_id: str | None) -> str:
    return (container_id or "?")[:12]


def name_owner(processes: list[Process], names: list[str], *, initial: bool | None) -> Owner:
    """The owner of one namespace: the container or pod of its first process (by pid) whose
    cgroup names one; else the host for the initial namespace; else its /run/netns name; else
    its first process; else unknown."""
    ordered = sorted(processes, key=lambda p: p.pid)
    count = len(ordered)
    for process in ordered:
        found = container_of(process.cgroup or "")
        if found is None:
            continue
        common = {
            "container_id": found.id if found.kind not in (NSPAWN, LXC) else None,
            "pid": process.pid,
            "command": process.command,
            "cgroup": (cgroup_paths(process.cgroup or "") or [None])[0],
            "processes": count,
            "names": names,
        }
        if found.kind == KUBERNETES:
            runtime = found.runtime or "CRI"
            return Owner(
                kind=KUBERNETES,
                name=f"pod {found.pod_uid} ({runtime})",
                label=f"pod:{found.pod_uid}",
                pod_uid=found.pod_uid,
                runtime=found.runtime,
                **common,  # type: ignore[arg-type]
            )
        if found.kind in (NSPAWN, LXC):
            return Owner(
                kind=found.kind,
                name=f"{found.kind} {found.id}",
                label=f"{found.kind}:{found.id}",
                **common,  # type: ignore[arg-type]
            )
        return Owner(
            kind=found.kind,
            name=f"{found.kind} container {_short(found.id)}",
            label=f"{found.kind}:{_short(found.id)}",
            **common,  # type: ignore[arg-type]
        )
    first = ordered[0] if ordered else None
    base = {
        "pid": first.pid if first else None,
        "command": first.command if first else None,
        "cgroup": (cgroup_paths(first.cgroup or "") or [None])[0] if first else None,
        "processes": count,
        "names": names,
    }
    if initial:
        return Owner(kind=HOST, name="host (the initial namespace)", label=HOST, **base)  # type: ignore[arg-type]
    if names:
        shown = names[0].rsplit("/", 1)[-1]
        return Owner(kind=NAMED, name=f"ip netns {shown}", label=f"netns:{shown}", **base)  # type: ignore[arg-type]
    if first is not None:
        command = first.command or "?"
        return Owner(
            kind=PROCESS,
            name=f"process {command} (pid {first.pid})",
            label=f"process:{command}",
            **base,  # type: ignore[arg-type]
        )
    return Owner(kind=UNKNOWN, name="unknown", label=UNKNOWN, **base)  # type: ignore[arg-type]


UNKNOWN_OWNER = Owner(kind=UNKNOWN, name="unknown", label=UNKNOWN)
HOST_OWNER = Owner(kind=HOST, name="host (the initial namespace)", label=HOST)


# --- what one look at a namespace says about it --------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Identity:
    """The namespace an output describes."""

    inode: str  # "4026531840", or "unknown" (below --root)
    initial: bool | None  # the host's own namespace (None: cannot tell)
    entered: str | None  # "--pid 4242", "--netns /run/netns/blue": how tcptune got there
    owner: Owner

    def to_json(self) -> dict[str, object]:
        return {
            "inode": self.inode,
            "initial": self.initial,
            "entered": self.entered,
            "owner": self.owner.to_json(),
        }

    def describe(self) -> str:
        """One line: 'network namespace 4026532326: podman container 16bba41a0bf3 (--pid 675)'."""
        how = f", entered with {self.entered}" if self.entered else ""
        return f"network namespace {self.inode}: {self.owner.name}{how}"


SEVERITY_RANK = {None: 0, INFO: 1, WARNING: 2, ERROR: 3}


def worst_first(items: list, worst, close_wait, time_wait, total, inode) -> list:
    """Namespaces ordered by their worst finding, then CLOSE_WAIT, TIME_WAIT and all sockets,
    largest first; the inode breaks ties. Each argument after `items` reads one of them."""
    return sorted(
        items,
        key=lambda item: (
            -SEVERITY_RANK.get(worst(item), 0),
            -close_wait(item),
            -time_wait(item),
            -total(item),
            inode(item),
        ),
    )
