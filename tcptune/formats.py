"""Pure: a merged profile -> text for another tool (sysctl.d, Kubernetes, Docker, Ansible).

Kubernetes and Docker set sysctls per container network namespace, so only keys the kernel
namespaces can go there. A key the target cannot set (global, not namespaced; unknown to tcptune)
or need not set (removed from the kernel, at the value it had by default) is left out with a
comment saying why, and the export goes on: a pod or a boot that fails on such a line helps
nobody. Values that would be harmful never get this far: loading the profile refuses them.
"""

import json
import re

from tcptune import __version__, keys
from tcptune.errors import BadInput, printable
from tcptune.kernel import format_version
from tcptune.model import only_network_assignments

FORMATS = ("sysctl", "k8s", "docker", "ansible")

# kubelet pkg/kubelet/sysctl/safe_sysctls.go (current main, docs/kernel-facts.md), with the kernel
# that first namespaces each key where the kubelet checks it (for the keys tcptune knows, the
# knowledge base's netns_since is what the export prints). Keys not listed are "unsafe": the
# kubelet rejects the pod unless started with --allowed-unsafe-sysctls naming them. An older
# kubelet has a shorter list, so a key listed here may still be unsafe on an older cluster.
K8S_SAFE = {
    "net.ipv4.ip_local_port_range": None,
    "net.ipv4.tcp_syncookies": None,
    "net.ipv4.ping_group_range": None,
    "net.ipv4.ip_unprivileged_port_start": None,
    "net.ipv4.ip_local_reserved_ports": "3.16",
    "net.ipv4.tcp_keepalive_time": "4.5",
    "net.ipv4.tcp_keepalive_intvl": "4.5",
    "net.ipv4.tcp_keepalive_probes": "4.5",
    "net.ipv4.tcp_fin_timeout": "4.6",
    "net.ipv4.tcp_rmem": "4.15",
    "net.ipv4.tcp_wmem": "4.15",
}
K8S_SOURCE = (
    "kubelet pkg/kubelet/sysctl/safe_sysctls.go; "
    "kubernetes.io 'Using sysctls in a Kubernetes Cluster'"
)


def header(profile: str, fmt: str, comment: str = "#") -> str:
    """The first comment line: the profile's name shown escaped, so it stays one line."""
    return f"{comment} tcptune {__version__}: profile {printable(profile)} exported as {fmt}\n"


def namespaced(key: str) -> bool | None:
    """Is the key per network namespace on current kernels? None when tcptune does not know."""
    spec = keys.KEYS.get(key)
    if spec is None:
        return None
    return spec.per_netns != "no"


def container_minimum(key: str, value: str) -> str | None:
    """The first kernel on which a container can set `key` to `value` as meant: the newest of the
    kernel that has the key per network namespace, the one that added the key, and the one that
    gave the value its meaning. For a key tcptune does not know, the kubelet's note (K8S_SAFE).
    None when every kernel tcptune covers can."""
    spec = keys.KEYS.get(key)
    if spec is None:
        return K8S_SAFE.get(key)
    found = [v for v in (spec.netns_since, spec.added, spec.value_since.get(value)) if v]
    return format_version(max(found)) if found else None


def _kernel_comment(chosen: dict[str, str]) -> list[str]:
    """Comment lines naming the kernel each key needs to be settable per container."""
    needs = [(key, container_minimum(key, value)) for key, value in chosen.items()]
    listed = [f"{key} >= {minimum}" for key, minimum in needs if minimum]
    if not listed:
        return []
    return [
        "# Host kernel: each key below needs at least the version shown: on an older kernel the",
        "# key is not in the container's network namespace, or this value is not what it means:",
        *(f"#   {line}" for line in listed),
    ]


def _removed_at_default(key: str, value: str) -> str | None:
    """Why a removed key need not be set: its value is the default it had on the kernels that
    have it, so leaving the line out changes nothing there, and avoids a failing line on the
    rest. None when the key is not removed, or set to something else."""
    spec = keys.KEYS.get(key)
    if spec is None or spec.removed is None:
        return None
    removed = spec.removed
    before = (removed[0], removed[1] - 1, 0) if removed[1] > 0 else (removed[0] - 1, 99, 0)
    if spec.default_for(before) != value:
        return None
    return (
        f"removed in Linux {format_version(removed)}; {value} is its default on the kernels "
        "that have it, so there is nothing to set"
    )


def left_out(sysctl: dict[str, str], container: bool) -> tuple[dict[str, str], list[str]]:
    """The keys the target gets, and a comment line for each key left out, with the reason."""
    kept: dict[str, str] = {}
    notes: list[str] = []
    for key, value in sysctl.items():
        spec = keys.KEYS.get(key)
        why = _removed_at_default(key, value)
        if why is None and container:
            if spec is not None and spec.removed is not None:
                why = f"removed in Linux {format_version(spec.removed)}: a container cannot set it"
            elif namespaced(key) is False:
                why = "global, not per network namespace: set it on the node (tcptune apply)"
            elif namespaced(key) is None:
                why = (
                    "not in tcptune's knowledge base, so whether it is per network namespace is "
                    "unknown: set it on the node (tcptune apply)"
                )
        if why is None:
            kept[key] = value
        else:
            notes.append(f"# left out: {key} = {value}: {why}")
    return kept, notes


def _conditional(key: str, value: str) -> str | None:
    """Why a key or value may be absent on some kernels (then sysctl must not fail on it)."""
    spec = keys.KEYS.get(key)
    if spec is None:
        return None
    if spec.removed:
        return f"removed in {format_version(spec.removed)}"
    if spec.added:
        return f"added in {format_version(spec.added)}"
    if value in spec.value_since:
        return f"value {value} needs {format_version(spec.value_since[value])}"
    return None


# The file name an export suggests: not the drop-in `tcptune apply` manages (99-tcptune.conf),
# which apply would refuse to replace as "not written by tcptune" (an exported file has no backup
# behind it, so apply treats it as the user's own).
_PLAIN_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def install_name(profile: str) -> str:
    """/etc/sysctl.d/90-tcptune-PROFILE.conf: before apply's 99-tcptune.conf, so a later apply
    wins over it; "profile" stands in for a name that is not a plain file name."""
    name = profile if _PLAIN_NAME.fullmatch(profile) else "profile"
    return f"/etc/sysctl.d/90-tcptune-{name}.conf"


def to_sysctl(profile: str, sysctl: dict[str, str]) -> str:
    """A sysctl.d drop-in. A key that not every kernel has gets a '-' prefix: systemd-sysctl then
    ignores a failure; procps 4.0 `sysctl -p` still reports the absent key and exits 1 (having
    applied every other line) unless run with -e (probe, Linux 6.18, procps-ng 4.0.2)."""
    chosen, notes = left_out(sysctl, container=False)
    lines = [
        header(profile, "sysctl.d").rstrip("\n"),
        f"# Install as {install_name(profile)} (99-tcptune.conf is the file `tcptune apply` "
        "manages)",
        *notes,
    ]
    for key, value in chosen.items():
        why = _conditional(key, value)
        if why:
            lines.append(f"# {key}: {why}; '-': systemd-sysctl ignores a failure, procps needs -e")
            lines.append(f"-{key} = {value}")
        else:
            lines.append(f"{key} = {value}")
    return "\n".join(only_network_assignments(lines)) + "\n"


def _yaml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar


def to_k8s(profile: str, sysctl: dict[str, str]) -> str:
    chosen, notes = left_out(sysctl, container=True)
    unsafe = [k for k in chosen if k not in K8S_SAFE]
    lines = [header(profile, "a Kubernetes pod securityContext").rstrip("\n"), *notes]
    lines.append(f"# safe = allowed by every kubelet of current Kubernetes ({K8S_SOURCE})")
    lines.append(
        "# kernel >= X = on an older node the key is not in the pod's network namespace, or this"
    )
    lines.append("# value is not what it means: the container runtime cannot set it as intended")
    if unsafe:
        lines.append(
            "# unsafe = the kubelet must allow them, or the pod is rejected (SysctlForbidden):"
        )
        lines.append(f"#   kubelet --allowed-unsafe-sysctls={','.join(unsafe)}")
    lines += ["securityContext:", "  sysctls:" if chosen else "  sysctls: []"]
    for key, value in chosen.items():
        minimum = container_minimum(key, value)
        note = "safe" if key in K8S_SAFE else "unsafe"
        if minimum:
            note += f", kernel >= {minimum}"
        lines.append(f"    - name: {key}  # {note}")
        lines.append(f"      value: {_yaml_string(value)}")
    return "\n".join(lines) + "\n"


def to_docker(profile: str, sysctl: dict[str, str]) -> str:
    chosen, notes = left_out(sysctl, container=True)
    flags = "".join(f"--sysctl {_shell_quote(f'{k}={v}')} \\\n  " for k, v in chosen.items())
    lines = [
        header(profile, "Docker flags and a compose fragment").rstrip("\n"),
        *notes,
        "# Network sysctls apply to the container's own network namespace",
        "# (not with --network=host, where the host's values rule).",
        *_kernel_comment(chosen),
        "# docker run:",
        f"docker run {flags}IMAGE",
        "",
        "# docker compose (merge under your service):",
        "services:",
        "  app:",
        "    sysctls:" if chosen else "    sysctls: {}",
    ]
    lines += [f"      {k}: {_yaml_string(v)}" for k, v in chosen.items()]
    return "\n".join(lines) + "\n"


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def to_ansible(profile: str, sysctl: dict[str, str]) -> str:
    chosen, notes = left_out(sysctl, container=False)
    lines = [
        "---",
        header(profile, "ansible.posix.sysctl tasks").rstrip("\n"),
        "# Include from a play with become: true; needs the ansible.posix collection.",
        *notes,
    ]
    if not chosen:
        lines.append("[]")
    for key, value in chosen.items():
        why = _conditional(key, value)
        lines += [
            f"- name: {_yaml_string(f'{key} = {value} (tcptune profile {profile})')}",
            "  ansible.posix.sysctl:",
            f"    name: {key}",
            f"    value: {_yaml_string(value)}",
            f"    sysctl_file: {install_name(profile)}",
            "    sysctl_set: true",
            "    state: present",
            "    reload: true",
        ]
        if why:
            lines.append(f"  ignore_errors: true  # {why}")
    return "\n".join(lines) + "\n"


RENDERERS = {"sysctl": to_sysctl, "k8s": to_k8s, "docker": to_docker, "ansible": to_ansible}


def export(profile: str, sysctl: dict[str, str], fmt: str) -> str:
    if fmt not in RENDERERS:
        raise BadInput(f"unknown format {fmt!r}", hint="choose one of: " + ", ".join(FORMATS))
    return RENDERERS[fmt](profile, sysctl)
