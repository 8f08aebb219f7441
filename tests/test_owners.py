"""Pure: a namespace's owner from the cgroup paths of its processes (tcptune.owners), for each
runtime's layout, with the cgroupfs and the systemd cgroup managers; the scope of keys and of
sockstat's counters (tcptune.netns). The real podman container is tests/test_containers.py."""

from __future__ import annotations

import pytest

from tcptune import keys, netns
from tcptune.model import MISSING, PRESENT, UNREADABLE, Reading
from tcptune.owners import Process, cgroup_paths, container_of, name_owner

ID = "16bba41a0bf3834a085c570c7dd21c18a86d332bcada202a58f4ed88537ef4d9"
UID = "3f1c2a9e-5b7d-4c1e-9a0b-6d2f8e4c7a11"

CASES = [
    # (cgroup file, kind, id, pod uid, runtime)
    (f"0::/libpod_parent/libpod-{ID}\n", "podman", ID, None, None),
    (f"0::/machine.slice/libpod-{ID}.scope/container\n", "podman", ID, None, None),
    (
        f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope\n",
        "podman",
        ID,
        None,
        None,
    ),
    (f"12:pids:/docker/{ID}\n1:name=systemd:/docker/{ID}\n", "docker", ID, None, None),
    (f"0::/system.slice/docker-{ID}.scope\n", "docker", ID, None, None),
    (f"0::/system.slice/nerdctl-{ID}.scope\n", "containerd", ID, None, None),
    (f"0::/kubepods/burstable/pod{UID}/{ID}\n", "kubernetes", ID, UID, None),
    (
        "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
        f"{UID.replace('-', '_')}.slice/cri-containerd-{ID}.scope\n",
        "kubernetes",
        ID,
        UID,
        "containerd",
    ),
    (
        f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/crio-{ID}.scope\n",
        "kubernetes",
        ID,
        UID,
        "cri-o",
    ),
    ("0::/machine.slice/systemd-nspawn@web\\x2d1.service/payload\n", "systemd-nspawn", "web-1",
     None, None),
    ("0::/machine.slice/machine-web\\x2d1.scope\n", "systemd-nspawn", "web-1", None, None),
    ("0::/lxc.payload.db1/init.scope\n", "lxc", "db1", None, None),
]  # fmt: skip


@pytest.mark.parametrize(("text", "kind", "ident", "pod", "runtime"), CASES)
def test_each_runtime_is_named_from_its_cgroup_path(text, kind, ident, pod, runtime) -> None:
    found = container_of(text)
    assert found is not None
    assert (found.kind, found.id, found.pod_uid, found.runtime) == (kind, ident, pod, runtime)


@pytest.mark.parametrize(
    "text",
    [
        "0::/\n",  # a cgroup namespace hides the path
        "0::/system.slice/nginx.service\n",
        f"0::/machine.slice/libpod-conmon-{ID}.scope\n",  # podman's monitor, not the container
        "12:pids:/user.slice\n1:name=systemd:/user.slice/user-0.slice/session-1.scope\n",
        "garbage without colons\n",
        "",
    ],
)
def test_a_host_process_names_no_container(text: str) -> None:
    assert container_of(text) is None


def test_the_unified_hierarchy_is_read_first() -> None:
    text = f"3:cpu:/docker/{'c' * 64}\n0::/system.slice/docker-{ID}.scope\n"
    assert cgroup_paths(text)[0] == f"/system.slice/docker-{ID}.scope"
    assert container_of(text).id == ID  # type: ignore[union-attr]


def test_the_owner_is_the_first_container_process_else_host_name_or_process() -> None:
    shell = Process(pid=10, command="sh", cgroup="0::/system.slice/x.service\n")
    pod = Process(pid=20, command="pause", cgroup=f"0::/kubepods/pod{UID}/{ID}\n")
    owner = name_owner([pod, shell], [], initial=False)
    assert (owner.kind, owner.pid, owner.processes) == ("kubernetes", 20, 2)
    assert (owner.label, owner.name) == (f"pod:{UID}", f"pod {UID} (CRI)")
    podman = Process(pid=5, command="sleep", cgroup=f"0::/libpod_parent/libpod-{ID}\n")
    owner = name_owner([podman], [], initial=False)
    assert (owner.name, owner.label, owner.container_id) == (
        f"podman container {ID[:12]}",
        f"podman:{ID[:12]}",
        ID,
    )
    assert name_owner([shell], ["/run/netns/blue"], initial=True).label == "host"
    assert name_owner([shell], ["/run/netns/blue"], initial=False).label == "netns:blue"
    assert name_owner([shell], [], initial=False).name == "process sh (pid 10)"
    assert name_owner([], [], initial=None).label == "unknown"
    json = name_owner([podman], ["/run/netns/x"], initial=False).to_json()
    assert (
        json["netns_names"] == ["/run/netns/x"] and json["cgroup"] == f"/libpod_parent/libpod-{ID}"
    )


def test_scope_of_keys_and_of_the_initial_namespace() -> None:
    orphans, reuse = keys.KEYS["net.ipv4.tcp_max_orphans"], keys.KEYS["net.ipv4.tcp_tw_reuse"]
    assert netns.key_scope(orphans, (6, 18, 0)) == "global"
    assert netns.key_scope(reuse, (6, 18, 0)) == "netns"
    assert netns.key_scope(reuse, (4, 9, 0)) == "global"  # per netns since 4.11
    assert netns.key_scope(reuse, None) is None
    assert netns.key_scope(keys.KEYS["net.ipv4.tcp_tw_recycle"], (6, 18, 0)) is None  # removed
    key = netns.INITIAL_ONLY_KEY
    assert netns.is_initial(Reading(key=key, state=PRESENT, value="1")) is True
    assert netns.is_initial(Reading(key=key, state=MISSING, error="x")) is False
    assert netns.is_initial(Reading(key=key, state=UNREADABLE, error="x")) is None
