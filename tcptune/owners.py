"""Pure: who owns a network namespace, from the cgroup paths of the processes in it.

A container runtime puts every container in a cgroup named after the container, and Kubernetes
puts it below one named after the pod's UID. A namespace with no container process is named by
its name in /run/netns (`ip netns`), else by its first process; the initial namespace is the
host's. tcptune.system reads the processes; this module only reads their text.
"""

import re
from dataclasses import dataclass

from tcptune.netns import (
    CONTAINERD,
    CRIO,
    DOCKER,
    HOST,
    KUBERNETES,
    LXC,
    NAMED,
    NSPAWN,
    PODMAN,
    PROCESS,
    UNKNOWN,
    Owner,
)

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
