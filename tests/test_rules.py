"""The rules behind `check`, evaluated on fake machines read through the real system layer."""

from __future__ import annotations

import pytest
from conftest import FakeMachine, modern_machine

from tcptune import keys, rules
from tcptune.cli.check import exit_code, gather
from tcptune.system import System


def report_of(machine: FakeMachine) -> rules.CheckReport:
    return gather(System(machine.root))


def findings_for(report: rules.CheckReport, key: str) -> list[rules.Finding]:
    return [f for f in report.findings if f.key == key]


def setting(report: rules.CheckReport, key: str) -> rules.Setting:
    return next(s for s in report.settings if s.key == key)


def test_old_kernel_with_tw_recycle_on_is_an_error(old: FakeMachine) -> None:
    old.set("net.ipv4.tcp_tw_recycle", "1")
    report = report_of(old)
    (finding,) = findings_for(report, "net.ipv4.tcp_tw_recycle")
    assert finding.severity == rules.ERROR
    assert "NAT" in finding.message
    assert "4396e46187ca" in finding.source
    assert setting(report, "net.ipv4.tcp_tw_recycle").status == "error"
    assert exit_code(report, strict=False) == 1


def test_tw_recycle_blames_how_clients_stamp_not_this_kernel(tmp_path) -> None:
    """Who is dropped depends on the clients' timestamp offsets (per connection on 4.10 and with
    165573e41f2f, per address pair from 4.11 by 28ee1b746f49), not on this host's kernel."""
    machine = modern_machine(tmp_path, "4.11.2").set("net.ipv4.tcp_tw_recycle", "1")
    (finding,) = findings_for(report_of(machine), "net.ipv4.tcp_tw_recycle")
    assert "any client" not in finding.message
    assert "per connection" in finding.message and "even without NAT" in finding.message


def test_old_kernel_with_tw_recycle_off_is_ok_with_a_note(old: FakeMachine) -> None:
    report = report_of(old)
    (finding,) = findings_for(report, "net.ipv4.tcp_tw_recycle")
    assert finding.severity == rules.INFO
    assert "removed in 4.12" in finding.message
    assert setting(report, "net.ipv4.tcp_tw_recycle").status == "ok"


def test_modern_kernel_without_tw_recycle_reports_removal(modern: FakeMachine) -> None:
    report = report_of(modern)
    (finding,) = findings_for(report, "net.ipv4.tcp_tw_recycle")
    assert finding.severity == rules.INFO
    assert finding.message.startswith("removed in 4.12")
    assert setting(report, "net.ipv4.tcp_tw_recycle").status == "missing"
    assert exit_code(report, strict=True) == 0


def test_defaults_follow_the_kernel_version(old: FakeMachine, tmp_path) -> None:
    report = report_of(old)
    assert setting(report, "net.ipv4.tcp_tw_reuse").default == "0"
    assert setting(report, "net.core.somaxconn").default == "128"
    assert setting(report, "net.ipv4.tcp_rmem").default is None  # depends on the machine
    new = report_of(modern_machine(tmp_path / "new"))
    assert setting(new, "net.ipv4.tcp_tw_reuse").default == "2"
    assert setting(new, "net.core.somaxconn").default == "4096"
    # max "between 131072 and 32MB, depending on RAM size" (6.16+): no one value to state
    assert setting(new, "net.ipv4.tcp_rmem").default is None
    assert "32 MB" in setting(new, "net.ipv4.tcp_rmem").default_note
    assert setting(new, "net.ipv4.tcp_wmem").default is None
    assert "4 MB" in setting(new, "net.ipv4.tcp_wmem").default_note


def test_key_added_after_this_kernel_is_missing_with_the_version(old: FakeMachine) -> None:
    report = report_of(old)
    (finding,) = findings_for(report, "net.ipv4.tcp_tw_reuse_delay")
    assert "added in 6.14" in finding.message
    assert "ca6a6f93867a" in finding.source
    assert setting(report, "net.ipv4.tcp_tw_reuse_delay").status == "missing"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", "off"), ("1", "all outgoing"), ("2", "loopback connections only")],
)
def test_tw_reuse_explains_its_value(modern: FakeMachine, value: str, expected: str) -> None:
    modern.set("net.ipv4.tcp_tw_reuse", value)
    finding = findings_for(report_of(modern), "net.ipv4.tcp_tw_reuse")[0]
    assert expected in finding.message


def test_tw_reuse_without_timestamps_is_a_warning(modern: FakeMachine) -> None:
    modern.set("net.ipv4.tcp_tw_reuse", "1").set("net.ipv4.tcp_timestamps", "0")
    report = report_of(modern)
    warnings = [
        f for f in findings_for(report, "net.ipv4.tcp_tw_reuse") if f.severity == rules.WARNING
    ]
    assert len(warnings) == 1
    assert "tcp_timestamps=0" in warnings[0].message
    assert setting(report, "net.ipv4.tcp_timestamps").status == "warning"
    assert exit_code(report, strict=False) == 0
    assert exit_code(report, strict=True) == 1


def test_fin_timeout_lowered_is_corrected_not_praised(modern: FakeMachine) -> None:
    modern.set("net.ipv4.tcp_fin_timeout", "30")
    (finding,) = findings_for(report_of(modern), "net.ipv4.tcp_fin_timeout")
    assert "does not shorten TIME_WAIT" in finding.message
    assert "tcp_fin_timeout=30" in finding.message
    assert "TCP_TIMEWAIT_LEN" in finding.message


@pytest.mark.parametrize(
    ("port_range", "reserved", "severity", "text"),
    [
        ("60000 61001", "", rules.WARNING, "only 1002 usable ephemeral ports"),
        ("60000 61001", "60000-60499", rules.WARNING, "only 502 usable"),
        ("40000 60001", "", rules.INFO, "20002 usable ephemeral ports"),
        ("1000 65001", "", rules.WARNING, "below 1024"),
        ("32768 61000", "", rules.INFO, "same parity"),
    ],
)
def test_port_range_rules(modern, port_range, reserved, severity, text) -> None:
    modern.set("net.ipv4.ip_local_port_range", port_range)
    modern.set("net.ipv4.ip_local_reserved_ports", reserved)
    found = findings_for(report_of(modern), "net.ipv4.ip_local_port_range")
    matching = [f for f in found if text in f.message]
    assert matching, [f.message for f in found]
    assert matching[0].severity == severity


def test_narrow_range_gives_the_connection_rate_it_allows(modern: FakeMachine) -> None:
    modern.set("net.ipv4.ip_local_port_range", "61000 61599")
    (finding,) = findings_for(report_of(modern), "net.ipv4.ip_local_port_range")
    assert "about 10 per second" in finding.message  # 600 ports / 60 s of TIME_WAIT


def test_default_port_range_has_no_finding(modern: FakeMachine) -> None:
    assert findings_for(report_of(modern), "net.ipv4.ip_local_port_range") == []


@pytest.mark.parametrize(
    ("tw", "cap", "overflow", "severities"),
    [
        (10, 1000, 0, [rules.INFO]),
        (850, 1000, 0, [rules.WARNING]),
        (1000, 1000, 7, [rules.ERROR, rules.WARNING]),
        (5, 0, 0, [rules.ERROR]),
    ],
)
def test_tw_buckets_against_live_count(modern, tw, cap, overflow, severities) -> None:
    modern.sockets(tw=tw, overflow=overflow).set("net.ipv4.tcp_max_tw_buckets", str(cap))
    found = findings_for(report_of(modern), "net.ipv4.tcp_max_tw_buckets")
    assert [f.severity for f in found] == severities
    assert str(tw) in found[0].message
    if overflow:
        assert f"TCPTimeWaitOverflow = {overflow}" in found[1].message


def test_tw_buckets_without_sockstat_says_so(modern: FakeMachine) -> None:
    (modern.root / "proc/net/sockstat").unlink()
    (finding,) = findings_for(report_of(modern), "net.ipv4.tcp_max_tw_buckets")
    assert "could not read the live TIME_WAIT count" in finding.message


def test_timestamps_and_syncookies_off_are_warnings(modern: FakeMachine) -> None:
    modern.set("net.ipv4.tcp_timestamps", "0").set("net.ipv4.tcp_syncookies", "0")
    report = report_of(modern)
    assert setting(report, "net.ipv4.tcp_timestamps").status == "warning"
    assert setting(report, "net.ipv4.tcp_syncookies").status == "warning"


def test_buffers_out_of_order(modern: FakeMachine) -> None:
    modern.set("net.ipv4.tcp_rmem", "4096 9999999 131072")
    (finding,) = findings_for(report_of(modern), "net.ipv4.tcp_rmem")
    assert "order" in finding.message
    assert finding.severity == rules.WARNING


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("net.ipv4.tcp_mtu_probing", "7", "not a documented value"),
        ("net.ipv4.tcp_keepalive_probes", "300", "outside the documented range"),
        ("net.ipv4.tcp_fin_timeout", "soon", "not numeric"),
    ],
)
def test_values_outside_the_knowledge_base_are_flagged(modern, key, value, text) -> None:
    modern.set(key, value)
    found = findings_for(report_of(modern), key)
    assert any(text in f.message and f.severity == rules.WARNING for f in found), found


def test_global_key_absent_in_a_namespace_is_explained(modern: FakeMachine) -> None:
    modern.remove("net.ipv4.tcp_max_orphans")
    report = report_of(modern)
    (finding,) = findings_for(report, "net.ipv4.tcp_max_orphans")
    assert "network namespace" in finding.message
    assert setting(report, "net.ipv4.tcp_max_orphans").status == "missing"


def test_unreadable_key_is_reported_not_raised(modern: FakeMachine) -> None:
    path = modern.root / "proc/sys/net/ipv4/tcp_fin_timeout"
    path.unlink()
    path.mkdir()
    report = report_of(modern)
    item = setting(report, "net.ipv4.tcp_fin_timeout")
    assert item.status == "unreadable"
    assert item.value is None
    assert "directory" in item.error


def test_non_utf8_value_is_unreadable(modern: FakeMachine) -> None:
    (modern.root / "proc/sys/net/ipv4/tcp_fin_timeout").write_bytes(b"\xff\xfe60\n")
    assert setting(report_of(modern), "net.ipv4.tcp_fin_timeout").status == "unreadable"


def test_unknown_kernel_release_skips_version_rules(modern: FakeMachine) -> None:
    modern.set("kernel.osrelease", "not-a-kernel")
    report = report_of(modern)
    (finding,) = findings_for(report, "kernel.osrelease")
    assert finding.severity == rules.WARNING
    assert report.version is None
    # With the version unknown, a default that changed between kernels is not guessed.
    assert setting(report, "net.ipv4.tcp_tw_reuse").default is None
    assert setting(report, "net.ipv4.tcp_fin_timeout").default == "60"


def test_every_setting_is_reported_once(modern: FakeMachine) -> None:
    report = report_of(modern)
    assert [s.key for s in report.settings] == list(keys.KEYS)


def test_sysctl_d_line_setting_tw_recycle_on_a_modern_kernel(modern: FakeMachine) -> None:
    conf = modern.root / "etc/sysctl.d/10-blog-advice.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(
        "# from a blog post\nnet.ipv4.tcp_tw_recycle = 1\nnet.ipv4.tcp_fin_timeout = 30\n"
    )
    report = report_of(modern)
    boot = [
        f for f in findings_for(report, "net.ipv4.tcp_tw_recycle") if "10-blog-advice" in f.message
    ]
    assert [f.severity for f in boot] == [rules.WARNING]
    assert boot[0].message.startswith("/etc/sysctl.d/10-blog-advice.conf:2 sets tcp_tw_recycle")
    assert exit_code(report, strict=True) == 1


def test_sysctl_d_line_setting_tw_recycle_on_an_old_kernel_is_an_error(old: FakeMachine) -> None:
    (old.root / "etc").mkdir()
    (old.root / "etc/sysctl.conf").write_text("net.ipv4.tcp_tw_recycle=1\n")
    report = report_of(old)  # live value is still 0: the danger is the next boot
    boot = [
        f for f in findings_for(report, "net.ipv4.tcp_tw_recycle") if "sysctl.conf" in f.message
    ]
    assert [f.severity for f in boot] == [rules.ERROR]
    assert "/etc/sysctl.conf:1 sets tcp_tw_recycle = 1 at every boot" in boot[0].message
    assert exit_code(report, strict=False) == 1
