"""The knowledge base against the kernel's history, written here from the sources, not from
tcptune/keys.py: every table below cites the commit or file it was read from (the same sources as
docs/kernel-facts.md), so a wrong fact in keys.py fails here instead of being copied."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from conftest import old_machine, run_cli

from tcptune import formats, keys, rules
from tcptune.cli.check import gather
from tcptune.kernel import format_version
from tcptune.profiles import shipped_dir
from tcptune.system import System

# (kernel, upstream default) per key; None = depends on the machine, so no value may be stated.
PER_KERNEL_DEFAULTS = {
    # commit 07f4c90062f8 (4.2): "default ... was changed to 32768 - 60999 (instead of 32768 - 61000)"
    "net.ipv4.ip_local_port_range": [
        ((3, 10, 0), "32768 61000"),
        ((4, 1, 52), "32768 61000"),
        ((4, 2, 0), "32768 60999"),
        ((6, 18, 44), "32768 60999"),
    ],
    # commit 79e9fed46038 (4.18): value 2 and default 2; boolean, default 0, before
    "net.ipv4.tcp_tw_reuse": [((4, 9, 0), "0"), ((4, 17, 19), "0"), ((4, 18, 0), "2")],
    # ip-sysctl.rst: "Defaults to 4096. (Was 128 before linux-5.4)"
    "net.core.somaxconn": [((5, 3, 18), "128"), ((5, 4, 0), "4096")],
    # commit 2100c8d2d9db (3.6): the sysctl, 0; commit 0d41cca490c2 (3.13): default 1
    "net.ipv4.tcp_fastopen": [((3, 6, 0), "0"), ((3, 12, 74), "0"), ((3, 13, 0), "1")],
    # commit e994b7c901de (2.6.33): "let's make the default be on"
    "net.ipv4.tcp_syncookies": [((2, 6, 32), "0"), ((2, 6, 33), "1"), ((6, 18, 0), "1")],
    # net/ipv4/tcp_ipv4.c:tcp_sk_init (6.18) and include/net/tcp.h constants
    "net.ipv4.tcp_fin_timeout": [((4, 9, 0), "60"), ((6, 18, 0), "60")],
    "net.ipv4.tcp_keepalive_time": [((6, 18, 0), "7200")],
    "net.ipv4.tcp_keepalive_intvl": [((6, 18, 0), "75")],
    "net.ipv4.tcp_keepalive_probes": [((6, 18, 0), "9")],
    "net.ipv4.tcp_orphan_retries": [((6, 18, 0), "0")],
    "net.ipv4.tcp_timestamps": [((6, 18, 0), "1")],
    "net.ipv4.tcp_slow_start_after_idle": [((6, 18, 0), "1")],
    "net.ipv4.tcp_rfc1337": [((6, 18, 0), "0")],
    "net.ipv4.tcp_mtu_probing": [((6, 18, 0), "0")],
    "net.ipv4.tcp_tw_reuse_delay": [((6, 14, 0), "1000")],
    "net.ipv4.tcp_tw_recycle": [((4, 9, 0), "0")],  # removed in 4.12 (4396e46187ca)
    "net.ipv4.ip_local_reserved_ports": [((6, 18, 0), "")],
    # net/ipv4/tcp.c:tcp_init (6.18): min PAGE_SIZE, max from nr_free_buffer_pages(); commit
    # 572be9bf9d0d: rmem max "between 131072 and 32MB"; ip-sysctl.rst: wmem max "between 64K and
    # 4MB, depending on RAM size"; a new netns copies them from the host (commit 356d1833b638)
    "net.ipv4.tcp_rmem": [((4, 9, 0), None), ((6, 15, 0), None), ((6, 16, 0), None)],
    "net.ipv4.tcp_wmem": [((4, 9, 0), None), ((6, 18, 0), None)],
    # CONFIG_DEFAULT_TCP_CONG; a new netns copies the host's (commit 6670e1524477)
    "net.ipv4.tcp_congestion_control": [((6, 18, 0), None)],
    # net/ipv4/tcp_ipv4.c:tcp_set_hashinfo, net/ipv4/tcp.c:tcp_init: from the ehash size
    "net.ipv4.tcp_max_tw_buckets": [((6, 18, 0), None)],
    "net.ipv4.tcp_max_syn_backlog": [((6, 18, 0), None)],
    "net.ipv4.tcp_max_orphans": [((6, 18, 0), None)],
}

# First kernel with one value per network namespace ("yes": every kernel tcptune covers; "no":
# global). From the namespacing commits' dates; see docs/kernel-facts.md.
NETNS_SINCE = {
    "net.ipv4.ip_local_port_range": (3, 13),  # 0bbf87d852d2
    "net.ipv4.ip_local_reserved_ports": (3, 16),  # 122ff243f5f1
    "net.ipv4.tcp_mtu_probing": (4, 0),  # b0f9ca53cbb1
    "net.ipv4.tcp_keepalive_time": (4, 5),  # 13b287e8d1ca
    "net.ipv4.tcp_keepalive_intvl": (4, 5),  # b840d15d3912
    "net.ipv4.tcp_keepalive_probes": (4, 5),  # 9bd6861bd432
    "net.ipv4.tcp_syncookies": (4, 6),  # 12ed8244ed8b
    "net.ipv4.tcp_orphan_retries": (4, 6),  # parent of 1e579caa18b9
    "net.ipv4.tcp_fin_timeout": (4, 6),  # 1e579caa18b9
    "net.ipv4.tcp_tw_reuse": (4, 11),  # 56ab6b93007e
    "net.ipv4.tcp_tw_recycle": (4, 11),  # 1946e672c173
    "net.ipv4.tcp_max_tw_buckets": (4, 11),  # 1946e672c173
    "net.ipv4.tcp_max_syn_backlog": (4, 11),  # fee83d097b16
    "net.ipv4.tcp_timestamps": (4, 13),  # 5d2ed0521ac9
    "net.ipv4.tcp_fastopen": (4, 15),  # series ending with 3733be14a32b
    "net.ipv4.tcp_slow_start_after_idle": (4, 15),  # b510f0d23a47
    "net.ipv4.tcp_rfc1337": (4, 15),  # 625357aa175c
    "net.ipv4.tcp_rmem": (4, 15),  # 356d1833b638
    "net.ipv4.tcp_wmem": (4, 15),  # 356d1833b638
    "net.ipv4.tcp_congestion_control": (4, 15),  # 6670e1524477
    "net.core.somaxconn": "yes",  # struct netns_core already at 3.7
    "net.ipv4.tcp_tw_reuse_delay": "yes",  # per netns from its addition in 6.14
    "net.ipv4.tcp_max_orphans": "no",  # ipv4_table, registered for init_net only (6.18)
}

# Keys with no single upstream default: from memory, the build, or (in a new network namespace)
# the host's current value.
MACHINE_DEPENDENT = {
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_congestion_control",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_max_orphans",
}


def test_the_tables_cover_every_key() -> None:
    assert set(PER_KERNEL_DEFAULTS) == set(keys.KEYS)
    assert set(NETNS_SINCE) == set(keys.KEYS)


@pytest.mark.parametrize(
    ("key", "version", "expected"),
    [(k, v, e) for k, rows in PER_KERNEL_DEFAULTS.items() for v, e in rows],
    ids=lambda x: ".".join(map(str, x)) if isinstance(x, tuple) else str(x),
)
def test_default_per_kernel(key: str, version: tuple[int, int, int], expected: str | None) -> None:
    spec = keys.KEYS[key]
    assert spec.default_for(version) == expected
    if expected is None:
        assert spec.default_note, f"{key}: a machine-dependent default must say how it is derived"


def test_machine_dependent_defaults_are_reported_as_such(tmp_path: Path) -> None:
    """check shows no value for them (the JSON default is null, with the note), on any kernel."""
    for release in ("4.9.0", "6.15.3", "6.18.44"):
        report = gather(System(old_machine(tmp_path / release).kernel(release).root))
        for setting in report.settings:
            if setting.key in MACHINE_DEPENDENT:
                assert setting.default is None, (release, setting.key, setting.default)
                assert setting.default_note


@pytest.mark.parametrize("key", sorted(NETNS_SINCE))
def test_per_netns_since(key: str) -> None:
    spec = keys.KEYS[key]
    expected = NETNS_SINCE[key]
    if expected == "no":
        assert spec.per_netns == "no"
        assert spec.namespaced_on((6, 18, 0)) is False
        return
    assert spec.per_netns == "yes"
    if expected == "yes":
        assert spec.netns_since is None
        assert spec.namespaced_on((4, 9, 0)) is True
        return
    assert spec.netns_since is not None and spec.netns_since[:2] == expected
    major, minor = expected
    assert spec.namespaced_on((major, minor, 0)) is True
    before = (major, minor - 1, 99) if minor else (major - 1, 20, 0)
    assert spec.namespaced_on(before) is False
    assert spec.namespaced_on(None) is None
    assert f"since {major}.{minor}" in spec.netns_text()
    assert spec.netns_source  # the commit it comes from


def test_added_and_removed() -> None:
    # 2100c8d2d9db "net-tcp: Fast Open base": the 3.6 merge window, not 3.7
    assert keys.KEYS["net.ipv4.tcp_fastopen"].added == (3, 6, 0)
    assert "2100c8d2d9db" in keys.KEYS["net.ipv4.tcp_fastopen"].added_source
    assert keys.KEYS["net.ipv4.tcp_tw_reuse_delay"].added == (6, 14, 0)
    assert keys.KEYS["net.ipv4.tcp_tw_recycle"].removed == (4, 12, 0)


def test_ranges_written_from_the_sysctl_tables() -> None:
    # proc_dointvec_jiffies without bounds: 0 is accepted (probe in test_kernel_facts_netns.py)
    for key in ("net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl"):
        assert keys.KEYS[key].minimum == 0
        assert keys.KEYS[key].maximum is None
    # u8 (proc_dou8vec_minmax): 0..255
    assert keys.KEYS["net.ipv4.tcp_keepalive_probes"].maximum == 255
    # extra1 = SYSCTL_ONE, extra2 = TCP_PAWS_MSL * MSEC_PER_SEC
    delay = keys.KEYS["net.ipv4.tcp_tw_reuse_delay"]
    assert (delay.minimum, delay.maximum) == (1, 60000)


def test_somaxconn_cites_ip_sysctl() -> None:
    """somaxconn is documented in ip-sysctl.rst ("TCP variables"), not in admin-guide net.rst."""
    spec = keys.KEYS["net.core.somaxconn"]
    assert spec.sources[0] == "Documentation/networking/ip-sysctl.rst"
    assert not any("admin-guide" in source for source in spec.sources)
    profile = (shipped_dir() / "server-profile.toml").read_text()
    assert "admin-guide" not in profile


def test_kernel_defaults_profile_holds_no_guessed_value() -> None:
    """The shipped kernel-defaults profile holds only defaults that do not depend on the machine,
    each equal to the 6.x value written above from the sources."""
    data = tomllib.loads((shipped_dir() / "kernel-defaults.toml").read_text())
    sysctl = data["sysctl"]
    assert not MACHINE_DEPENDENT & set(sysctl)
    for key, value in sysctl.items():
        text = " ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        if key == "net.ipv4.tcp_tw_recycle":
            assert text == "0"
            continue
        expected = dict(PER_KERNEL_DEFAULTS[key])
        latest = max(expected)
        assert text == expected[latest], key


def test_tw_reuse_delay_is_counted_from_time_wait_entry() -> None:
    """tcp_twsk_unique (6.18): reuse_thresh = tw_entry_stamp + delay; before 6.14 the next tick
    of a 1 Hz clock after the peer's last timestamp (commit 19ce8cd30465)."""
    spec = keys.KEYS["net.ipv4.tcp_tw_reuse_delay"]
    assert "entered TIME-WAIT" in spec.summary + spec.explanation
    assert "peer" not in spec.summary
    assert "0 to 1 s" in spec.explanation
    assert "fixed at one second" not in spec.explanation


def test_tw_reuse_facts() -> None:
    spec = keys.KEYS["net.ipv4.tcp_tw_reuse"]
    assert "::ffff:127.0.0.0/104" in spec.values["2"]
    text = spec.explanation + " ".join(spec.misconceptions)
    assert "bind()" in text and "TWRecycled" in text
    assert "negotiated on the old connection" in spec.explanation


def test_tw_recycle_blames_the_clients_stamps_not_this_kernel(tmp_path: Path) -> None:
    """28ee1b746f49 made the offset per address pair (4.11): what breaks tw_recycle is how the
    clients stamp, so the finding is the same whatever this host's kernel."""
    messages = set()
    for release in ("4.9.0", "4.10.17", "4.11.2"):
        machine = old_machine(tmp_path / release).kernel(release)
        machine.set("net.ipv4.tcp_tw_recycle", "1")
        (finding,) = [f for f in gather(System(machine.root)).findings if "recycle" in f.key]
        assert finding.severity == rules.ERROR
        messages.add(finding.message)
        assert "28ee1b746f49" in finding.source and "165573e41f2f" in finding.source
    (message,) = messages
    assert "any client" not in message
    assert "NAT" in message and "per connection" in message
    spec = keys.KEYS["net.ipv4.tcp_tw_recycle"]
    assert "per address pair" in spec.explanation
    assert "not on this host's kernel" in spec.explanation


def test_timestamps_offset_history() -> None:
    spec = keys.KEYS["net.ipv4.tcp_timestamps"]
    for commit in ("95a22caee396", "28ee1b746f49", "165573e41f2f", "25429d7b7dca"):
        assert any(commit in source for source in spec.sources), commit
    assert "per-connection" not in spec.values["1"]


def test_max_syn_backlog_is_not_the_syn_queue_bound() -> None:
    """tcp_conn_request (6.18): the SYN queue is full at sk_max_ack_backlog (the listen()
    backlog); sysctl_max_syn_backlog is read only when syncookies == 0."""
    spec = keys.KEYS["net.ipv4.tcp_max_syn_backlog"]
    assert "Per-listener limit" not in spec.summary
    assert "listen() backlog" in spec.explanation
    assert "tcp_syncookies = 0" in spec.explanation
    assert "SYN" in keys.KEYS["net.core.somaxconn"].summary


def test_fastopen_0x400_is_all_listeners() -> None:
    text = keys.KEYS["net.ipv4.tcp_fastopen"].explanation
    assert "every listener" in text
    assert "0x4, 0x200 and 0x400 relax" not in text


def test_slow_start_after_idle_halves_down_to_the_initial_window() -> None:
    spec = keys.KEYS["net.ipv4.tcp_slow_start_after_idle"]
    assert "halved once per" in spec.explanation and "initial window" in spec.explanation
    assert "BBR" in spec.explanation


def test_overflow_counter_and_tw_count_wording(tmp_path: Path) -> None:
    """inet_twsk_alloc returns NULL at the cap or when allocation fails, and tcp_time_wait counts
    TCPTimeWaitOverflow for both; sockstat tw counts FIN_WAIT2 orphans only in their last 60 s."""
    findings = rules.tw_cap_findings(10, 10, 3, census=False)
    assert any("in their last 60 s" in f.message for f in findings)
    assert any("memory" in f.message for f in findings if "TCPTimeWaitOverflow" in f.message)


def test_global_on_old_kernel_explained_inside_a_namespace(tmp_path: Path) -> None:
    """On 4.9 tcp_timestamps is global (per netns only since 4.13): absent in a container."""
    machine = old_machine(tmp_path).remove("net.ipv4.tcp_timestamps")
    report = gather(System(machine.root))
    (finding,) = [f for f in report.findings if f.key == "net.ipv4.tcp_timestamps"]
    assert "per network namespace only since 4.13" in finding.message
    assert "5d2ed0521ac9" in finding.source


def test_explain_shows_per_netns_version() -> None:
    result = run_cli("explain", "tcp_tw_reuse", "--json")
    doc = json.loads(result.out)
    assert doc["per_netns_since"] == "4.11"
    assert doc["per_netns"].startswith("yes, since 4.11")
    assert "56ab6b93007e" in doc["per_netns"]


def test_container_exports_name_the_kernel_each_key_needs() -> None:
    k8s = run_cli("export", "proxy-profile", "--format", "k8s").out
    assert "net.ipv4.tcp_tw_reuse  # unsafe, kernel >= 4.11" in k8s
    assert "net.ipv4.tcp_timestamps  # unsafe, kernel >= 4.13" in k8s
    assert "net.ipv4.tcp_syncookies  # safe, kernel >= 4.6" in k8s
    docker = run_cli("export", "client-profile", "--format", "docker").out
    assert "#   net.ipv4.tcp_timestamps >= 4.13" in docker
    assert "#   net.ipv4.tcp_tw_reuse >= 4.11" in docker
    assert formats.container_minimum("net.ipv4.tcp_rmem", "4096 131072 6291456") == "4.15"
    assert formats.container_minimum("net.core.somaxconn", "4096") is None
    # the newest of: per network namespace (4.11), added (-), the value's meaning (2: 4.18)
    assert formats.container_minimum("net.ipv4.tcp_tw_reuse", "2") == "4.18"
    assert formats.container_minimum("net.ipv4.tcp_tw_reuse", "1") == "4.11"
    # added in 6.14, per network namespace from the start
    assert formats.container_minimum("net.ipv4.tcp_tw_reuse_delay", "1000") == "6.14"


def test_the_kubelet_note_agrees_with_the_knowledge_base() -> None:
    """K8S_SAFE's kernel versions (from the Kubernetes documentation) and the knowledge base's
    netns_since (from the kernel's history) are written from different sources: where both
    name a key, they agree."""
    for key, listed in formats.K8S_SAFE.items():
        spec = keys.KEYS.get(key)
        if spec is not None and listed is not None:
            assert spec.netns_since is not None and format_version(spec.netns_since) == listed, key


def test_parity_warning_only_from_4_2(tmp_path: Path) -> None:
    """07f4c90062f8 and ed2dfd900992 (4.2): the parity preference and the kernel's warning."""
    for release, expected in (("4.1.52", False), ("4.2.0", True), ("6.18.44", True)):
        machine = old_machine(tmp_path / release).kernel(release)
        machine.set("net.ipv4.ip_local_port_range", "32768 61000")
        found = [f for f in gather(System(machine.root)).findings if "parity" in f.message]
        assert bool(found) is expected, release


def test_narrow_range_counts_tw_reuse(tmp_path: Path) -> None:
    """With tcp_tw_reuse=1 connect() takes TIME_WAIT ports over (tcp_twsk_unique), so 60 s of
    TIME_WAIT per port is not a hard limit; with 0 or 2 (not loopback) it is."""
    for reuse, mentioned in (("0", False), ("2", False), ("1", True)):
        machine = old_machine(tmp_path / reuse).kernel("6.18.44")
        machine.set("net.ipv4.ip_local_port_range", "61000 61599")
        machine.set("net.ipv4.tcp_tw_reuse", reuse)
        (finding,) = [
            f
            for f in gather(System(machine.root)).findings
            if f.key == "net.ipv4.ip_local_port_range"
        ]
        assert ("takes TIME_WAIT ports over" in finding.message) is mentioned, reuse
