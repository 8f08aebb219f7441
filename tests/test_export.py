"""`tcptune export`: each format parses as its consumer would read it."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import FakeMachine, run_cli, run_tcptune

from tcptune import formats, profiles


def exported(profile: str, fmt: str) -> str:
    result = run_cli("export", profile, "--format", fmt)
    assert result.code == 0
    return result.out


def merged(name: str) -> dict[str, str]:
    return profiles.load(name, Path("/nonexistent-root")).sysctl


def test_k8s_snippet_is_a_pod_security_context() -> None:
    text = exported("proxy-profile", "k8s")
    doc = yaml.safe_load(text)
    sysctls = doc["securityContext"]["sysctls"]
    assert {item["name"]: item["value"] for item in sysctls} == merged("proxy-profile")
    assert all(isinstance(item["value"], str) for item in sysctls)  # Kubernetes wants strings
    unsafe = sorted(k for k in merged("proxy-profile") if k not in formats.K8S_SAFE)
    line = next(x for x in text.splitlines() if "--allowed-unsafe-sysctls=" in x)
    assert sorted(line.split("=", 1)[1].split(",")) == unsafe
    assert "net.ipv4.tcp_keepalive_time  # safe, kernel >= 4.5" in text
    assert "net.ipv4.tcp_tw_reuse  # unsafe, kernel >= 4.11" in text  # 56ab6b93007e


def test_k8s_safe_list_matches_the_facts() -> None:
    facts = (Path(__file__).resolve().parent.parent / "docs/kernel-facts.md").read_text()
    section = facts.split('## Kubernetes "safe" sysctls')[1].split("\n## ")[0]
    for key in formats.K8S_SAFE:
        short = key.rsplit(".", 1)[1]
        assert short in section, key


def test_docker_flags_and_compose_fragment() -> None:
    text = exported("client-profile", "docker")
    run_line = text[text.index("\ndocker run ") + 1 : text.index(" IMAGE")]
    words = shlex.split(run_line.replace("\\\n", " "))
    assert words[:2] == ["docker", "run"]
    pairs = dict(w.split("=", 1) for w in words[2:] if w != "--sysctl")
    assert words[2::2] == ["--sysctl"] * len(pairs)
    assert pairs == merged("client-profile")
    compose = yaml.safe_load(text[text.index("services:") :])
    assert compose["services"]["app"]["sysctls"] == merged("client-profile")


def test_ansible_tasks_shape() -> None:
    tasks = yaml.safe_load(exported("server-profile", "ansible"))
    assert isinstance(tasks, list) and len(tasks) == len(merged("server-profile"))
    for task in tasks:
        module = task["ansible.posix.sysctl"]
        # not apply's own 99-tcptune.conf, which apply would then refuse as not its own
        assert module["sysctl_file"] == "/etc/sysctl.d/90-tcptune-server-profile.conf"
        assert module["state"] == "present" and module["reload"] is True
        assert merged("server-profile")[module["name"]] == module["value"]


def test_ansible_marks_kernel_dependent_keys() -> None:
    text = exported("kernel-defaults", "ansible")
    by_key = {t["ansible.posix.sysctl"]["name"]: t for t in yaml.safe_load(text)}
    assert by_key["net.ipv4.tcp_tw_reuse_delay"]["ignore_errors"] is True  # added in 6.14
    assert "ignore_errors" not in by_key["net.ipv4.tcp_fin_timeout"]
    # removed in 4.12, and 0 was its default: nothing to set, and said so
    assert "net.ipv4.tcp_tw_recycle" not in by_key
    assert "# left out: net.ipv4.tcp_tw_recycle = 0: removed in Linux 4.12" in text


def test_sysctl_format_prefixes_kernel_dependent_keys() -> None:
    text = exported("kernel-defaults", "sysctl")
    assert "tcp_tw_recycle = 0\n" not in text
    assert (
        "# left out: net.ipv4.tcp_tw_recycle = 0: removed in Linux 4.12; 0 is its default" in text
    )
    assert "\n-net.ipv4.tcp_tw_reuse_delay = 1000\n" in text
    assert "\nnet.ipv4.tcp_fin_timeout = 60\n" in text
    assert "# Install as /etc/sysctl.d/90-tcptune-kernel-defaults.conf" in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('"net.ipv4.tcp_max_orphans" = 65536', "global, not per network namespace"),
        ('"net.core.netdev_max_backlog" = 5000', "whether it is per network namespace is unknown"),
        ('"net.ipv4.tcp_tw_recycle" = 0', "removed in Linux 4.12"),
    ],
)
@pytest.mark.parametrize("fmt", ["k8s", "docker"])
def test_containers_leave_out_keys_they_cannot_set(
    tmp_path: Path, body: str, message: str, fmt: str
) -> None:
    """A key a container cannot (or need not) set is left out with its reason; the rest is
    exported and parses as the consumer reads it."""
    path = tmp_path / "p.toml"
    path.write_text(f'description = "x"\n[sysctl]\n{body}\n"net.ipv4.tcp_fin_timeout" = 30\n')
    done = run_cli("export", str(path), "--format", fmt)
    assert done.code == 0 and done.err == ""
    key = body.split('"')[1]
    note = next(line for line in done.out.splitlines() if line.startswith("# left out:"))
    assert note.startswith(f"# left out: {key} = ") and message in note
    parsed = yaml.safe_load(done.out if fmt == "k8s" else compose(done.out))
    if fmt == "k8s":
        sysctls = {s["name"]: s["value"] for s in parsed["securityContext"]["sysctls"]}
        assert sysctls == {"net.ipv4.tcp_fin_timeout": "30"}
    else:
        assert parsed["services"]["app"]["sysctls"] == {"net.ipv4.tcp_fin_timeout": "30"}
        # the docker run line, as bash reads it (continuation lines included)
        command = "docker run " + done.out.split("\ndocker run ", 1)[1].split("IMAGE")[0]
        words = subprocess.run(
            ["bash", "-c", command.replace("docker run", "printf '%s\\n'", 1) + "IMAGE"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.splitlines()
        assert words == ["--sysctl", "net.ipv4.tcp_fin_timeout=30", "IMAGE"]


@pytest.mark.parametrize("fmt", ["k8s", "docker"])
def test_a_profile_with_nothing_for_containers_still_exports(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text('description = "x"\n[sysctl]\n"net.ipv4.tcp_max_orphans" = 65536\n')
    done = run_tcptune("export", str(path), "--format", fmt)
    assert done.returncode == 0
    parsed = yaml.safe_load(done.stdout if fmt == "k8s" else compose(done.stdout))
    if fmt == "k8s":
        assert parsed["securityContext"]["sysctls"] == []
    else:
        assert parsed["services"]["app"]["sysctls"] == {}
        assert "\ndocker run IMAGE\n" in done.stdout


def test_the_exported_file_installed_as_suggested_meets_apply_and_check(
    modern: FakeMachine,
) -> None:
    """Installed under the name the export suggests, the file is not the drop-in apply manages
    (apply writes its own beside it, and wins: 99 sorts after 90), and check finds nothing to
    delete in it."""
    root = modern.root
    text = exported("kernel-defaults", "sysctl")
    name = next(line for line in text.splitlines() if line.startswith("# Install as "))
    target = root / name.split()[3].lstrip("/")
    target.parent.mkdir(parents=True)
    target.write_text(text)
    before = target.read_bytes()
    checked = run_cli("--root", str(root), "check", "--json")
    findings = json.loads(checked.out)["findings"]
    # nothing asks to delete a line of the exported file (the tw_recycle line is not there)
    assert not [f for f in findings if target.name in f["message"]], findings
    recycle = [f for f in findings if f["key"] == "net.ipv4.tcp_tw_recycle"]
    assert all(f["severity"] == "info" for f in recycle), recycle
    applied = run_cli("--root", str(root), "apply", "server-profile")
    assert applied.code in (0, 1), applied.err  # never "not written by tcptune"
    assert (root / "etc/sysctl.d/99-tcptune.conf").exists()
    assert target.read_bytes() == before
    shown = json.loads(run_cli("--root", str(root), "check", "server-profile", "--json").out)
    assert shown["in_sync"] is True, shown


def compose(text: str) -> str:
    """The compose fragment of a docker export: from its `services:` line on."""
    return "services:" + text.split("\nservices:", 1)[1]


def test_unknown_format() -> None:
    done = run_tcptune("export", "server-profile", "--format", "helm")
    assert done.returncode == 2 and "'helm' is not one of" in done.stderr


LOAD = """
import json, subprocess, sys
conf, keys, loader = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
argv = ["sysctl", "-p", conf] if loader == "procps" else [loader, conf]
done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
strict = subprocess.run(["sysctl", "-e", "-q", "-p", conf], capture_output=True, text=True, timeout=30)
values = {}
for key in keys:
    out = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=30).stdout
    values[key] = " ".join(out.split())
print(json.dumps({"code": done.returncode, "err": done.stderr, "e_code": strict.returncode, "values": values}))
"""

SYSTEMD_SYSCTL = next(
    (
        p
        for p in ("/usr/lib/systemd/systemd-sysctl", "/lib/systemd/systemd-sysctl")
        if os.path.exists(p)
    ),
    None,
)


@pytest.mark.netns
@pytest.mark.parametrize("loader", ["procps", "systemd"])
def test_sysctl_export_loads_with_the_real_loaders(netns, tmp_path: Path, loader: str) -> None:
    """The export, loaded by the real loader in a private network namespace, gives the profile's
    values; keys this kernel lacks carry '-' and break nothing else."""
    command = "procps" if loader == "procps" else SYSTEMD_SYSCTL
    if command is None:
        pytest.skip("no systemd-sysctl here") if not os.environ.get("CI") else pytest.fail(
            "no systemd-sysctl"
        )
    for name in ("server-profile", "kernel-defaults"):
        conf = tmp_path / f"{name}.conf"
        conf.write_text(exported(name, "sysctl"))
        present = {
            k: v
            for k, v in merged(name).items()
            if os.path.exists("/proc/sys/" + k.replace(".", "/"))
        }
        in_file = {
            line.lstrip("-").split(" = ")[0]
            for line in conf.read_text().splitlines()
            if line and not line.startswith("#")
        }
        present = {k: v for k, v in present.items() if k in in_file}
        absent = in_file - set(present)
        done = subprocess.run(
            [
                "unshare",
                "-n",
                sys.executable,
                "-c",
                LOAD,
                str(conf),
                json.dumps(list(present)),
                command,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        result = json.loads(done.stdout)
        assert result["values"] == present
        assert result["e_code"] == 0, result["err"]
        if loader == "systemd" or not absent:
            assert result["code"] == 0, result["err"]
        else:  # procps reports each absent key, and only those
            assert result["code"] == 1
            reported = {
                line.split("/proc/sys/")[1].split(":")[0].replace("/", ".")
                for line in result["err"].splitlines()
            }
            assert reported == absent


# --- the exports of one profile, line for line -----------------------------------------------------
#
# A profile with one key of each kind an export treats apart: a plain one, a value that needs a
# newer kernel (tcp_tw_reuse = 2: 4.18), a key added late (tcp_tw_reuse_delay: 6.14), a global key
# (tcp_max_orphans), a key tcptune does not know, a removed key at its old default
# (tcp_tw_recycle = 0: nothing to set) and a value with a blank. What each target gets, and each
# comment, is what docs/commands.md#export promises, written out by hand below.

MIX = """description = "one key of each kind"
[sysctl]
"net.ipv4.tcp_fin_timeout" = 30
"net.ipv4.tcp_tw_reuse" = 2
"net.ipv4.tcp_max_orphans" = 65536
"net.core.netdev_max_backlog" = 5000
"net.ipv4.tcp_tw_recycle" = 0
"net.ipv4.tcp_tw_reuse_delay" = 1000
"net.ipv4.ip_local_port_range" = "10240 65535"
"""

LEFT_OUT_RECYCLE = (
    "# left out: net.ipv4.tcp_tw_recycle = 0: removed in Linux 4.12; 0 is its default on the "
    "kernels that have it, so there is nothing to set"
)
LEFT_OUT_CONTAINER = [
    "# left out: net.ipv4.tcp_max_orphans = 65536: global, not per network namespace: set it on "
    "the node (tcptune apply)",
    "# left out: net.core.netdev_max_backlog = 5000: not in tcptune's knowledge base, so whether "
    "it is per network namespace is unknown: set it on the node (tcptune apply)",
    LEFT_OUT_RECYCLE,
]
PREFIX_NOTE = "'-': systemd-sysctl ignores a failure, procps needs -e"

EXPECTED = {
    "sysctl": [
        "# tcptune 0.1.0: profile mix exported as sysctl.d",
        "# Install as /etc/sysctl.d/90-tcptune-mix.conf (99-tcptune.conf is the file `tcptune "
        "apply` manages)",
        LEFT_OUT_RECYCLE,
        "net.ipv4.tcp_fin_timeout = 30",
        f"# net.ipv4.tcp_tw_reuse: value 2 needs 4.18; {PREFIX_NOTE}",
        "-net.ipv4.tcp_tw_reuse = 2",
        "net.ipv4.tcp_max_orphans = 65536",
        "net.core.netdev_max_backlog = 5000",
        f"# net.ipv4.tcp_tw_reuse_delay: added in 6.14; {PREFIX_NOTE}",
        "-net.ipv4.tcp_tw_reuse_delay = 1000",
        "net.ipv4.ip_local_port_range = 10240 65535",
    ],
    "k8s": [
        "# tcptune 0.1.0: profile mix exported as a Kubernetes pod securityContext",
        *LEFT_OUT_CONTAINER,
        "# safe = allowed by every kubelet of current Kubernetes (kubelet "
        "pkg/kubelet/sysctl/safe_sysctls.go; kubernetes.io 'Using sysctls in a Kubernetes "
        "Cluster')",
        "# kernel >= X = on an older node the key is not in the pod's network namespace, or this",
        "# value is not what it means: the container runtime cannot set it as intended",
        "# unsafe = the kubelet must allow them, or the pod is rejected (SysctlForbidden):",
        "#   kubelet --allowed-unsafe-sysctls=net.ipv4.tcp_tw_reuse,net.ipv4.tcp_tw_reuse_delay",
        "securityContext:",
        "  sysctls:",
        "    - name: net.ipv4.tcp_fin_timeout  # safe, kernel >= 4.6",
        '      value: "30"',
        "    - name: net.ipv4.tcp_tw_reuse  # unsafe, kernel >= 4.18",
        '      value: "2"',
        "    - name: net.ipv4.tcp_tw_reuse_delay  # unsafe, kernel >= 6.14",
        '      value: "1000"',
        "    - name: net.ipv4.ip_local_port_range  # safe, kernel >= 3.13",
        '      value: "10240 65535"',
    ],
    "docker": [
        "# tcptune 0.1.0: profile mix exported as Docker flags and a compose fragment",
        *LEFT_OUT_CONTAINER,
        "# Network sysctls apply to the container's own network namespace",
        "# (not with --network=host, where the host's values rule).",
        "# Host kernel: each key below needs at least the version shown: on an older kernel the",
        "# key is not in the container's network namespace, or this value is not what it means:",
        "#   net.ipv4.tcp_fin_timeout >= 4.6",
        "#   net.ipv4.tcp_tw_reuse >= 4.18",
        "#   net.ipv4.tcp_tw_reuse_delay >= 6.14",
        "#   net.ipv4.ip_local_port_range >= 3.13",
        "# docker run:",
        "docker run --sysctl net.ipv4.tcp_fin_timeout=30 \\",
        "  --sysctl net.ipv4.tcp_tw_reuse=2 \\",
        "  --sysctl net.ipv4.tcp_tw_reuse_delay=1000 \\",
        "  --sysctl 'net.ipv4.ip_local_port_range=10240 65535' \\",
        "  IMAGE",
        "",
        "# docker compose (merge under your service):",
        "services:",
        "  app:",
        "    sysctls:",
        '      net.ipv4.tcp_fin_timeout: "30"',
        '      net.ipv4.tcp_tw_reuse: "2"',
        '      net.ipv4.tcp_tw_reuse_delay: "1000"',
        '      net.ipv4.ip_local_port_range: "10240 65535"',
    ],
}


def ansible_task(key: str, value: str, ignore: str | None = None) -> list[str]:
    task = [
        f'- name: "{key} = {value} (tcptune profile mix)"',
        "  ansible.posix.sysctl:",
        f"    name: {key}",
        f'    value: "{value}"',
        "    sysctl_file: /etc/sysctl.d/90-tcptune-mix.conf",
        "    sysctl_set: true",
        "    state: present",
        "    reload: true",
    ]
    return task + ([f"  ignore_errors: true  # {ignore}"] if ignore else [])


EXPECTED["ansible"] = [
    "---",
    "# tcptune 0.1.0: profile mix exported as ansible.posix.sysctl tasks",
    "# Include from a play with become: true; needs the ansible.posix collection.",
    LEFT_OUT_RECYCLE,
    *ansible_task("net.ipv4.tcp_fin_timeout", "30"),
    *ansible_task("net.ipv4.tcp_tw_reuse", "2", "value 2 needs 4.18"),
    *ansible_task("net.ipv4.tcp_max_orphans", "65536"),
    *ansible_task("net.core.netdev_max_backlog", "5000"),
    *ansible_task("net.ipv4.tcp_tw_reuse_delay", "1000", "added in 6.14"),
    *ansible_task("net.ipv4.ip_local_port_range", "10240 65535"),
]


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_each_format_line_for_line(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "mix.toml"
    path.write_text(MIX)
    result = run_cli("export", str(path), "--format", fmt)
    assert result.code == 0 and result.err == ""
    assert result.out.splitlines() == EXPECTED[fmt]
    assert result.out.endswith("\n") and not result.out.endswith("\n\n")


@pytest.mark.parametrize("fmt", ["k8s", "docker"])
def test_an_empty_container_export_says_so_in_its_own_syntax(tmp_path: Path, fmt: str) -> None:
    """Nothing a container can set: the pod gets `sysctls: []`, compose `sysctls: {}`, the docker
    run line no flag, and no kernel note."""
    path = tmp_path / "mix.toml"
    path.write_text('description = "x"\n[sysctl]\n"net.ipv4.tcp_max_orphans" = 65536\n')
    out = run_cli("export", str(path), "--format", fmt).out
    if fmt == "k8s":
        assert out.splitlines()[-2:] == ["securityContext:", "  sysctls: []"]
        assert "--allowed-unsafe-sysctls" not in out
    else:
        assert "\n# docker run:\ndocker run IMAGE\n" in out
        assert out.splitlines()[-3:] == ["services:", "  app:", "    sysctls: {}"]
        assert "Host kernel" not in out


def test_an_ansible_export_with_no_task_is_an_empty_list(tmp_path: Path) -> None:
    path = tmp_path / "mix.toml"
    path.write_text('description = "x"\n[sysctl]\n"net.ipv4.tcp_tw_recycle" = 0\n')
    out = run_cli("export", str(path), "--format", "ansible").out
    assert yaml.safe_load(out) == []
    assert out.splitlines()[-1] == "[]"


def test_a_removed_key_is_left_out_only_at_its_last_default(monkeypatch) -> None:
    """`need not set` means: the value is the default of the last kernel that had the key. Two
    made-up keys whose default changed just before their removal, one removed in a x.0 release
    (the last kernel with it: the previous major's last release) and one in x.y."""
    from tcptune.keys import KEYS, KeySpec

    def spec(name: str, removed, defaults) -> KeySpec:
        return KeySpec(
            name=name, type="int", summary="", explanation="", sources=("x",),
            defaults=defaults, removed=removed,
        )  # fmt: skip

    made_up = {
        "net.ipv4.gone_in_five": spec("net.ipv4.gone_in_five", (5, 0, 0), ((None, "1"), ((4, 20, 0), "2"))),
        "net.ipv4.gone_in_four_twelve": spec(
            "net.ipv4.gone_in_four_twelve", (4, 12, 0), ((None, "1"), ((4, 11, 0), "2"))
        ),
        "net.ipv4.gone_late": spec("net.ipv4.gone_late", (4, 12, 0), ((None, "1"), ((4, 12, 0), "2"))),
    }  # fmt: skip
    monkeypatch.setattr("tcptune.keys.KEYS", {**KEYS, **made_up})
    for key in made_up:
        kept, notes = formats.left_out({key: "2" if key != "net.ipv4.gone_late" else "1"}, False)
        assert kept == {} and len(notes) == 1, key
        assert notes[0].startswith(f"# left out: {key} = ") and "is its default" in notes[0]
    kept, notes = formats.left_out({"net.ipv4.gone_in_five": "1"}, container=False)
    assert kept == {"net.ipv4.gone_in_five": "1"} and notes == []
    kept, notes = formats.left_out({"net.ipv4.gone_in_four_twelve": "1"}, container=False)
    assert kept == {"net.ipv4.gone_in_four_twelve": "1"} and notes == []
    # removed in x.1: the last kernel with it is x.0, where its default changed
    five_one = spec("net.ipv4.gone_in_five_one", (5, 1, 0), ((None, "1"), ((5, 0, 0), "2")))
    monkeypatch.setattr(
        "tcptune.keys.KEYS", {**KEYS, **made_up, "net.ipv4.gone_in_five_one": five_one}
    )
    assert formats.left_out({"net.ipv4.gone_in_five_one": "2"}, False)[0] == {}
    assert formats.left_out({"net.ipv4.gone_in_five_one": "1"}, False)[0] != {}
    # at another value the sysctl.d line stays, marked as one not every kernel has
    assert formats.to_sysctl("p", {"net.ipv4.gone_in_five": "1"}).splitlines()[2:] == [
        "# net.ipv4.gone_in_five: removed in 5.0; '-': systemd-sysctl ignores a failure, "
        "procps needs -e",
        "-net.ipv4.gone_in_five = 1",
    ]
    # in a container a removed key is left out whatever its value: no kernel has it per namespace
    kept, notes = formats.left_out({"net.ipv4.gone_in_five": "1"}, container=True)
    assert kept == {} and notes == [
        "# left out: net.ipv4.gone_in_five = 1: removed in Linux 5.0: a container cannot set it"
    ]


def test_the_install_name_falls_back_for_a_name_that_is_no_file_name() -> None:
    assert formats.install_name("server-profile") == "/etc/sysctl.d/90-tcptune-server-profile.conf"
    assert formats.install_name("../etc/x") == "/etc/sysctl.d/90-tcptune-profile.conf"
    assert formats.install_name("Caps") == "/etc/sysctl.d/90-tcptune-profile.conf"
    assert formats.install_name("a" * 65) == "/etc/sysctl.d/90-tcptune-profile.conf"


def test_an_unknown_format_in_the_plain_function() -> None:
    from tcptune.errors import BadInput

    with pytest.raises(BadInput) as raised:
        formats.export("p", {}, "helm")
    assert str(raised.value) == "unknown format 'helm'"
    assert raised.value.hint == "choose one of: sysctl, k8s, docker, ansible"


def test_a_key_tcptune_does_not_know_takes_the_kubelet_s_kernel(monkeypatch) -> None:
    monkeypatch.setattr(formats, "K8S_SAFE", {**formats.K8S_SAFE, "net.ipv4.made_up": "5.1"})
    assert formats.container_minimum("net.ipv4.made_up", "1") == "5.1"
    assert formats.container_minimum("net.ipv4.ping_group_range", "0 0") is None
