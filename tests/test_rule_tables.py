"""The rules of `check` at their edges, from numbers worked out by hand: TIME_WAIT lasts 60 s
(TCP_TIMEWAIT_LEN, include/net/tcp.h), the default ephemeral range 32768-60999 holds 28232 ports,
tcp_tw_recycle went in 4.12 (commit 4396e46187ca), tcp_tw_reuse_delay came in 6.14, the parity
preference of the port range in 4.2. Machines are fake trees read through the real system layer."""

from __future__ import annotations

import pytest
from conftest import FakeMachine, modern_machine, old_machine

from tcptune import rules
from tcptune.cli.check import exit_code, gather
from tcptune.system import System

RANGE = "net.ipv4.ip_local_port_range"


def findings(machine: FakeMachine, key: str) -> list[tuple[str, str]]:
    report = gather(System(machine.root))
    return [(f.severity, f.message) for f in report.findings if f.key == key]


def narrow(ports: int, rate: int, note: str = "", reuse: str = "") -> tuple[str, str]:
    return (
        rules.WARNING,
        f"only {ports} usable ephemeral ports{note}: a client making short connections to one "
        f"destination (address and port) can open at most about {rate} per second before "
        f"TIME_WAIT holds them all and connect() fails with EADDRNOTAVAIL{reuse}. Widen the "
        "range, e.g. '10240 65535'.",
    )


def fewer(ports: int, note: str = "") -> tuple[str, str]:
    return (
        rules.INFO,
        f"{ports} usable ephemeral ports{note}, fewer than the default 28232.",
    )


def parity(low: int, high: int) -> tuple[str, str]:
    return (
        rules.INFO,
        f"low ({low}) and high ({high}) have the same parity; the kernel logs a warning, since "
        "connect() and bind() prefer ports of different parity. Make them differ.",
    )


def below_1024(low: int) -> tuple[str, str]:
    return (
        rules.WARNING,
        f"the range starts at {low}, below 1024: outgoing connections can take ports that "
        "privileged services expect to bind.",
    )


REUSE = (
    ", unless connect() takes TIME_WAIT ports over (tcp_tw_reuse=1 does, after "
    "tcp_tw_reuse_delay, for peers that send timestamps)"
)

# (range, reserved ports, release) -> findings, in order; ports = high - low + 1 - reserved
PORT_RANGES = [
    ("32768 60999", "", "6.18.0", []),  # the default: 28232 ports, odd and even ends
    ("32769 60999", "", "6.18.0", [fewer(28231), parity(32769, 60999)]),
    ("32768 60998", "", "6.18.0", [fewer(28231), parity(32768, 60998)]),
    ("32768 60998", "", "4.2.0", [fewer(28231), parity(32768, 60998)]),
    ("32768 60998", "", "4.1.52", [fewer(28231)]),  # the parity warning came with 4.2
    ("32768 60998", "", "unknown", [fewer(28231), parity(32768, 60998)]),
    ("10000 19999", "", "6.18.0", [fewer(10000)]),  # 10000 ports: not yet narrow
    ("10001 19999", "", "6.18.0", [narrow(9999, 166), parity(10001, 19999)]),  # 9999 // 60
    ("10000 19999", "12000-12000", "6.18.0", [narrow(9999, 166, " (1 of them reserved)")]),
    ("10000 10059", "", "6.18.0", [narrow(60, 1)]),
    ("10000 10058", "", "6.18.0", [narrow(59, 0), parity(10000, 10058)]),
    ("40000 40000", "", "6.18.0", [narrow(1, 0)]),  # one port: no parity to prefer
    ("40001 40000", "", "6.18.0", [narrow(0, 0)]),  # upside down: no port at all
    ("1023 60999", "", "6.18.0", [below_1024(1023), parity(1023, 60999)]),  # 59977 ports
    ("1024 60999", "", "6.18.0", []),  # 59976 ports, more than the default
    ("32768 60999", "40000-40009", "6.18.0", [fewer(28222, " (10 of them reserved)")]),
]


@pytest.mark.parametrize(("port_range", "reserved", "release", "expected"), PORT_RANGES)
def test_port_range_findings_at_their_edges(
    tmp_path, port_range: str, reserved: str, release: str, expected
) -> None:
    machine = modern_machine(tmp_path, release)
    machine.set(RANGE, port_range).set("net.ipv4.ip_local_reserved_ports", reserved)
    assert findings(machine, RANGE) == expected


@pytest.mark.parametrize(
    ("reuse", "timestamps", "said"),
    [("1", "1", REUSE), ("1", "0", ""), ("2", "1", ""), ("0", "1", "")],
)
def test_a_narrow_range_names_tw_reuse_only_when_it_takes_ports_over(
    modern: FakeMachine, reuse: str, timestamps: str, said: str
) -> None:
    modern.set(RANGE, "61000 61599").set("net.ipv4.tcp_tw_reuse", reuse)
    modern.set("net.ipv4.tcp_timestamps", timestamps)
    assert findings(modern, RANGE) == [narrow(600, 10, reuse=said)]


@pytest.mark.parametrize(
    ("value", "start"),
    [
        ("59", "tcp_fin_timeout=59 only shortens orphaned FIN_WAIT2 sockets."),
        ("1", "tcp_fin_timeout=1 only shortens orphaned FIN_WAIT2 sockets."),
        ("60", "governs orphaned FIN_WAIT2 sockets only;"),
        ("120", "governs orphaned FIN_WAIT2 sockets only;"),
    ],
)
def test_fin_timeout_below_the_time_wait_length_is_corrected(
    modern: FakeMachine, value: str, start: str
) -> None:
    modern.set("net.ipv4.tcp_fin_timeout", value)
    ((severity, message),) = findings(modern, "net.ipv4.tcp_fin_timeout")
    assert severity == rules.INFO and message.startswith(start)
    assert "fixed at 60 s (TCP_TIMEWAIT_LEN)" in message


TW = "TIME_WAIT sockets (with FIN_WAIT2 orphans in their last 60 s)"


@pytest.mark.parametrize(
    ("used", "cap", "expected"),
    [
        (1000, 1000, (rules.ERROR, f"1000 {TW} have reached the cap of 1000: ")),
        (1001, 1000, (rules.ERROR, f"1001 {TW} have reached the cap of 1000: ")),
        (999, 1000, (rules.WARNING, f"999 {TW}, 99% of the cap of 1000: ")),
        (800, 1000, (rules.WARNING, f"800 {TW}, 80% of the cap of 1000: ")),
        (799, 1000, (rules.INFO, f"799 {TW} now, of a cap of 1000.")),
        (0, 0, (rules.ERROR, f"0 {TW} have reached the cap of 0: ")),
        (0, 1, (rules.INFO, f"0 {TW} now, of a cap of 1.")),
        (4, 5, (rules.WARNING, f"4 {TW}, 80% of the cap of 5: ")),
        (3, 5, (rules.INFO, f"3 {TW} now, of a cap of 5.")),
    ],
)
def test_time_wait_count_against_the_cap(modern: FakeMachine, used: int, cap: int, expected):
    modern.sockets(tw=used).set("net.ipv4.tcp_max_tw_buckets", str(cap))
    ((severity, message),) = findings(modern, "net.ipv4.tcp_max_tw_buckets")
    assert (severity, message[: len(expected[1])]) == expected


@pytest.mark.parametrize("overflow", [0, 1])
def test_time_wait_overflow_is_a_warning_from_the_first_one(
    modern: FakeMachine, overflow: int
) -> None:
    modern.sockets(tw=5, overflow=overflow)
    found = findings(modern, "net.ipv4.tcp_max_tw_buckets")
    warnings = [m for s, m in found if s == rules.WARNING]
    assert len(warnings) == overflow
    if overflow:
        assert warnings[0].startswith("TCPTimeWaitOverflow = 1: that many sockets have skipped")


def at_boot(machine: FakeMachine, text: str, name: str = "60-advice.conf") -> None:
    conf = machine.root / "etc/sysctl.d" / name
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(text)


def test_tw_recycle_0_in_sysctl_d_on_4_9_is_no_error(old: FakeMachine) -> None:
    """4.9 still has tcp_tw_recycle: a file setting 0 keeps it safe, and is no finding of its own."""
    at_boot(old, "net.ipv4.tcp_tw_recycle = 0\n")
    report = gather(System(old.root))
    found = [(f.severity, f.message) for f in report.findings if f.key.endswith("tw_recycle")]
    assert [s for s, _ in found] == [rules.INFO]
    assert found[0][1].startswith("0 is the only safe value; the key is removed in 4.12")
    assert exit_code(report, strict=True) == 0


def test_tw_recycle_1_in_sysctl_d_on_4_9_is_an_error_naming_the_line(old: FakeMachine) -> None:
    at_boot(old, "# from a blog\nnet.ipv4.tcp_tw_recycle = 1\n")
    found = findings(old, "net.ipv4.tcp_tw_recycle")
    assert (
        rules.ERROR,
        "/etc/sysctl.d/60-advice.conf:2 sets tcp_tw_recycle = 1 at every boot (under procps, "
        "systemd), which drops SYNs from clients behind NAT. Delete the line (or set 0).",
    ) in found
    assert [s for s, _ in found] == [rules.INFO, rules.ERROR]


def test_tw_recycle_1_overridden_by_a_later_0_is_no_error(old: FakeMachine) -> None:
    at_boot(old, "net.ipv4.tcp_tw_recycle = 1\n", "10-a.conf")
    at_boot(old, "net.ipv4.tcp_tw_recycle = 0\n", "90-b.conf")
    assert [s for s, _ in findings(old, "net.ipv4.tcp_tw_recycle")] == [rules.INFO]


@pytest.mark.parametrize(
    ("release", "live", "severities"),
    [
        ("4.11.12", "0", [rules.INFO, rules.ERROR]),  # still there: the line sets 1 at boot
        ("4.12.0", None, [rules.INFO, rules.WARNING]),  # gone: the line is a leftover
        ("5.4.0", None, [rules.INFO, rules.WARNING]),
    ],
)
def test_tw_recycle_line_at_the_removal_boundary(
    tmp_path, release: str, live: str | None, severities: list[str]
) -> None:
    machine = old_machine(tmp_path).kernel(release)
    if live is None:
        machine.remove("net.ipv4.tcp_tw_recycle")
    at_boot(machine, "net.ipv4.tcp_tw_recycle = 1\n")
    assert [s for s, _ in findings(machine, "net.ipv4.tcp_tw_recycle")] == severities


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ("4.11.12", []),  # absent before its removal: tcptune has nothing to say
        ("4.12.0", ["removed in 4.12: nothing to tune."]),
        ("6.18.0", ["removed in 4.12: nothing to tune."]),
    ],
)
def test_a_missing_tw_recycle_by_kernel(tmp_path, release: str, expected: list[str]) -> None:
    machine = old_machine(tmp_path).kernel(release).remove("net.ipv4.tcp_tw_recycle")
    found = findings(machine, "net.ipv4.tcp_tw_recycle")
    assert [m.split(" A sysctl.d")[0] for _, m in found] == expected


@pytest.mark.parametrize(
    ("release", "start"),
    [
        ("6.13.9", "not on this kernel: added in 6.14; this kernel is older."),
        ("6.14.0", "not present: no such key on this kernel."),
    ],
)
def test_a_missing_tw_reuse_delay_by_kernel(tmp_path, release: str, start: str) -> None:
    machine = modern_machine(tmp_path, release).remove("net.ipv4.tcp_tw_reuse_delay")
    assert findings(machine, "net.ipv4.tcp_tw_reuse_delay") == [(rules.INFO, start)]


@pytest.mark.parametrize(
    ("value", "warned"),
    [
        ("4096 4096 4096", False),  # equal fields are in order
        ("4096 131072 6291456", False),
        ("4097 4096 6291456", True),
        ("4096 6291457 6291456", True),
        ("4096 131072", False),  # not three numbers: the range check speaks instead
    ],
)
def test_buffer_sizes_must_be_min_default_max(modern: FakeMachine, value: str, warned: bool):
    modern.set("net.ipv4.tcp_rmem", value)
    order = [m for _, m in findings(modern, "net.ipv4.tcp_rmem") if "order" in m]
    assert order == (
        [
            f"{value!r} is not in 'min default max' order; the kernel does not check it, and "
            "autotuning then behaves unexpectedly."
        ]
        if warned
        else []
    )


# (key, value) -> the knowledge-base finding, from the kernel's own limits: tcp_tw_reuse_delay is
# 1..60000 ms (TCP_PAWS_MSL * MSEC_PER_SEC), tcp_keepalive_probes a u8, ports 1..65535.
RANGE_TABLE = [
    ("net.ipv4.tcp_tw_reuse_delay", "1", None),
    ("net.ipv4.tcp_tw_reuse_delay", "60000", None),
    ("net.ipv4.tcp_tw_reuse_delay", "0", "0 is outside the documented range 1..60000"),
    ("net.ipv4.tcp_tw_reuse_delay", "60001", "60001 is outside the documented range 1..60000"),
    ("net.ipv4.tcp_keepalive_probes", "255", None),
    ("net.ipv4.tcp_keepalive_probes", "256", "256 is outside the documented range 0..255"),
    ("net.ipv4.tcp_fin_timeout", "0", None),
    ("net.ipv4.tcp_fin_timeout", "-1", "-1 is outside the documented range 0..inf"),
    ("net.ipv4.tcp_fin_timeout", "soon", "'soon' is not numeric"),
    ("net.ipv4.tcp_fin_timeout", "0x10", "'0x10' is not numeric"),
    ("net.ipv4.tcp_tw_reuse", "3", "'3' is not a documented value (0, 1, 2)"),
    ("net.ipv4.ip_local_port_range", "0 65535", "0 is outside the documented range 1..65535"),
    (
        "net.ipv4.ip_local_port_range",
        "1024 65536",
        "65536 is outside the documented range 1..65535",
    ),
]


@pytest.mark.parametrize(("key", "value", "message"), RANGE_TABLE)
def test_values_outside_the_kernel_s_limits(
    modern: FakeMachine, key: str, value: str, message: str | None
) -> None:
    modern.set(key, value)
    report = gather(System(modern.root))
    documented = [
        f.message
        for f in report.findings
        if f.key == key and ("documented" in f.message or "numeric" in f.message)
    ]
    assert documented == ([message] if message else [])
    (setting,) = [s for s in report.settings if s.key == key]
    if message:
        assert setting.status == rules.WARNING


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            "net.ipv4.tcp_timestamps",
            "timestamps are off: no PAWS protection against old duplicate segments, worse RTT "
            "estimates, and connect() cannot reuse TIME_WAIT sockets (tcp_tw_reuse does "
            "nothing). Set it to 1.",
        ),
        (
            "net.ipv4.tcp_syncookies",
            "SYN cookies are off: a SYN flood fills the SYN queue and real clients are refused. "
            "Set it to 1.",
        ),
    ],
)
def test_a_protection_turned_off_is_a_warning_saying_what_is_lost(
    modern: FakeMachine, key: str, message: str
) -> None:
    modern.set(key, "0")
    assert (rules.WARNING, message) in findings(modern, key)
    modern.set(key, "1")
    assert all(s != rules.WARNING for s, _ in findings(modern, key))


@pytest.mark.parametrize("value", ["1", "2"])
def test_tw_reuse_without_timestamps_says_it_does_nothing(modern: FakeMachine, value: str):
    modern.set("net.ipv4.tcp_tw_reuse", value).set("net.ipv4.tcp_timestamps", "0")
    assert (
        rules.WARNING,
        f"tcp_tw_reuse={value} has no effect on connections made while net.ipv4.tcp_timestamps=0: "
        "a TIME_WAIT socket is reused only when timestamps were negotiated on its connection. "
        "Turn timestamps back on (1).",
    ) in findings(modern, "net.ipv4.tcp_tw_reuse")
    modern.set("net.ipv4.tcp_tw_reuse", "0")
    assert [s for s, _ in findings(modern, "net.ipv4.tcp_tw_reuse")] == [rules.INFO]


@pytest.mark.parametrize(("value", "count"), [("0", 1), ("1", 0)])
def test_rfc1337_off_explains_time_wait_assassination(modern, value: str, count: int) -> None:
    modern.set("net.ipv4.tcp_rfc1337", value)
    found = findings(modern, "net.ipv4.tcp_rfc1337")
    assassination = [m for _, m in found if "TIME-WAIT assassination" in m]
    assert len(assassination) == count
    if count:
        assert assassination[0].startswith("0: an in-window RST kills a TIME_WAIT socket at once")


# What each loader does with a line naming tcp_tw_recycle on a kernel without it, as probed
# (procps-ng 4.0.2, systemd 252; docs/kernel-facts.md): procps' --system skips it silently,
# systemd-sysctl logs and goes on (silently with '-'), reads no /etc/sysctl.conf, and
# `sysctl -p FILE` fails.
PROCPS_SKIPS = "procps `sysctl --system` skips it without a word (its exit status stays 0)"
SYSTEMD_LOGS = (
    "systemd-sysctl logs \"Couldn't write '1' to 'net/ipv4/tcp_tw_recycle', ignoring: No such "
    'file or directory" and exits 0'
)


@pytest.mark.parametrize(
    ("name", "text", "where", "systemd"),
    [
        ("etc/sysctl.conf", "net.ipv4.tcp_tw_recycle = 0\n", "/etc/sysctl.conf:1", None),
        (
            "etc/sysctl.d/60-a:b.conf",
            "# x\n-net.ipv4.tcp_tw_recycle = 1\n",
            "/etc/sysctl.d/60-a:b.conf:2",
            "systemd-sysctl skips it silently (the '-' prefix) and exits 0",
        ),
        (
            "usr/lib/sysctl.d/10-old.conf",
            "net.ipv4.tcp_tw_recycle = 1\n",
            "/usr/lib/sysctl.d/10-old.conf:1",
            SYSTEMD_LOGS,
        ),
    ],
)
def test_a_leftover_tw_recycle_line_says_what_each_loader_does(
    modern: FakeMachine, name: str, text: str, where: str, systemd: str | None
) -> None:
    path = modern.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    report = gather(System(modern.root))
    (warning,) = [
        f for f in report.findings if f.key.endswith("tw_recycle") and f.severity == rules.WARNING
    ]
    value = text.split("= ")[1].strip()
    file = where.rsplit(":", 1)[0]
    at_boot = f"{PROCPS_SKIPS}; {systemd or 'systemd-sysctl does not read it'}"
    assert warning.message == (
        f"{where} sets tcp_tw_recycle = {value}, which this kernel does not have (removed in "
        f'4.12). At boot {at_boot}. `sysctl -p {file}` fails on it ("cannot stat '
        '/proc/sys/net/ipv4/tcp_tw_recycle", exit 1). Delete the line.'
    )
    assert "4396e46187ca" in warning.source
    assert warning.source.endswith("; procps-ng 4.0.2 and systemd 252 probed")
    (info,) = [f for f in report.findings if f.key.endswith("tw_recycle") and f.severity == "info"]
    assert info.message == (
        "removed in 4.12: nothing to tune. A sysctl.d line that still sets it only makes "
        "systemd-sysctl log a warning at boot; each one is named with a warning of its own."
    )
    assert "4396e46187ca" in info.source


def test_a_tw_recycle_line_on_4_9_cites_the_removal(old: FakeMachine) -> None:
    at_boot(old, "net.ipv4.tcp_tw_recycle = 1\n")
    (error,) = [
        f
        for f in gather(System(old.root)).findings
        if f.key.endswith("tw_recycle") and f.severity == rules.ERROR
    ]
    assert "4396e46187ca" in error.source


# Keys a network namespace does not show: tcp_max_orphans is one global value; tcp_tw_reuse is
# per namespace since 4.11 (commit 56ab6b93007e), tcp_fin_timeout since 4.6 (commit 1e579caa18b9).
ABSENT_HERE = (
    " and is not shown inside a network namespace (e.g. a container). Read it on the host."
)


@pytest.mark.parametrize(
    ("key", "release", "message", "cited"),
    [
        (
            "net.ipv4.tcp_max_orphans",
            "6.18.0",
            "absent here: this key is global" + ABSENT_HERE,
            None,
        ),
        (
            "net.ipv4.tcp_tw_reuse",
            "4.10.17",
            "absent here: this key is per network namespace only since 4.11; on this kernel it is "
            "global" + ABSENT_HERE,
            "56ab6b93007e",
        ),
        ("net.ipv4.tcp_tw_reuse", "4.11.0", "not present: no such key on this kernel.", None),
        (
            "net.ipv4.tcp_fin_timeout",
            "4.5.7",
            "absent here: this key is per network namespace only since 4.6; on this kernel it is "
            "global" + ABSENT_HERE,
            "1e579caa18b9",
        ),
        ("net.ipv4.tcp_fin_timeout", "4.6.0", "not present: no such key on this kernel.", None),
        (
            "net.ipv4.tcp_tw_reuse_delay",
            "6.13.0",
            "not on this kernel: added in 6.14; this kernel is older.",
            "ca6a6f93867a",
        ),
    ],
)
def test_a_key_missing_here_says_why(
    tmp_path, key: str, release: str, message: str, cited: str | None
) -> None:
    machine = modern_machine(tmp_path, release)
    if (machine.root / "proc/sys" / key.replace(".", "/")).exists():
        machine.remove(key)
    report = gather(System(machine.root))
    (finding,) = [f for f in report.findings if f.key == key]
    assert (finding.severity, finding.message) == (rules.INFO, message)
    if cited:
        assert cited in finding.source
    elif message.startswith("not present"):
        assert finding.source == "Documentation/networking/ip-sysctl.rst"


@pytest.mark.parametrize(("value", "tail"), [("0", False), ("1", True), ("2", True)])
def test_tw_reuse_on_says_it_helps_outgoing_connections_only(modern, value: str, tail: bool):
    modern.set("net.ipv4.tcp_tw_reuse", value)
    ((severity, message),) = findings(modern, "net.ipv4.tcp_tw_reuse")
    assert severity == rules.INFO and message.startswith(f"{value} = ")
    helps = " It only helps this host's outgoing connect(); a server's TIME_WAIT is untouched."
    assert message.endswith(helps) is tail


def test_tw_recycle_0_on_4_9_says_to_drop_it_before_upgrading(old: FakeMachine) -> None:
    report = gather(System(old.root))
    (finding,) = [f for f in report.findings if f.key == "net.ipv4.tcp_tw_recycle"]
    assert finding.message == (
        "0 is the only safe value; the key is removed in 4.12, so drop it from sysctl.d before "
        "upgrading."
    )
    assert "4396e46187ca" in finding.source


def test_a_tw_recycle_1_line_on_4_9_and_its_live_value_are_both_reported(old: FakeMachine):
    old.set("net.ipv4.tcp_tw_recycle", "1")
    at_boot(old, "net.ipv4.tcp_tw_recycle = 1\n")
    severities = [s for s, _ in findings(old, "net.ipv4.tcp_tw_recycle")]
    assert severities == [rules.ERROR, rules.ERROR]  # the live value, and the line at boot
