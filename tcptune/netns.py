"""Pure: network namespaces as tcptune names them, and which values in one are its own.

A network namespace is known by its inode number (`readlink /proc/PID/ns/net`: net:[INODE]), and
by its owner (tcptune.owners names it from the cgroup paths of its processes; imported only when
a namespace other than the host's is described).

Which values are the namespace's own: the per-netns sysctls (keys.KeySpec.namespaced_on), and in
/proc/net/sockstat's TCP line `inuse` and `tw`; `orphan`, `alloc` and `mem` are counters of the
whole kernel (net/ipv4/proc.c:sockstat_seq_show, 6.18: tcp_orphan_count_sum(),
proto_sockets_allocated_sum_positive(), proto_memory_allocated()), the same in every namespace.
"""

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


class Owner:
    """What a network namespace belongs to (tcptune.owners names it). A plain class, not a
    dataclass: `check --json` builds one on every run, and its start-up is measured."""

    __slots__ = (
        "cgroup",
        "command",
        "container_id",
        "kind",
        "label",
        "name",
        "names",
        "pid",
        "pod_uid",
        "processes",
        "runtime",
    )

    def __init__(
        self,
        *,
        kind: str,
        name: str,
        label: str,
        container_id: str | None = None,
        pod_uid: str | None = None,
        runtime: str | None = None,
        pid: int | None = None,
        command: str | None = None,
        cgroup: str | None = None,
        processes: int = 0,
        names: list[str] | None = None,
    ) -> None:
        self.kind = kind  # HOST, PODMAN, DOCKER, CONTAINERD, CRIO, KUBERNETES, NSPAWN, LXC, ...
        self.name = name  # for people: "podman container 16bba41a0bf3", "host"
        self.label = label  # for metrics, stable across restarts: "podman:16bba41a0bf3"
        self.container_id = container_id
        self.pod_uid = pod_uid
        self.runtime = runtime
        self.pid = pid  # the process that named it (the first process in the namespace)
        self.command = command
        self.cgroup = cgroup  # that process's cgroup path
        self.processes = processes  # processes found in the namespace
        self.names = names or []  # /run/netns names

    def with_processes(self, count: int) -> "Owner":
        fields = {name: getattr(self, name) for name in self.__slots__}
        return Owner(**{**fields, "processes": count})

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


UNKNOWN_OWNER = Owner(kind=UNKNOWN, name="unknown", label=UNKNOWN)
HOST_OWNER = Owner(kind=HOST, name="host (the initial namespace)", label=HOST)


# --- what one look at a namespace says about it --------------------------------------------------


class Identity:
    """The namespace an output describes (a plain class, as Owner)."""

    __slots__ = ("entered", "initial", "inode", "owner")

    def __init__(
        self, *, inode: str, initial: bool | None, entered: str | None, owner: Owner
    ) -> None:
        self.inode = inode  # "4026531840", or "unknown" (below --root)
        self.initial = initial  # the host's own namespace (None: cannot tell)
        self.entered = entered  # "--pid 4242", "--netns /run/netns/blue": how tcptune got there
        self.owner = owner

    def to_json(self) -> dict[str, object]:
        return {
            "inode": self.inode,
            "initial": self.initial,
            "entered": self.entered,
            "owner": self.owner.to_json(),
        }

    def describe(self) -> str:
        """One line: 'network namespace 4026532326: podman container 16bba41a0bf3'."""
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
