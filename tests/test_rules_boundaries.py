"""The rules of `check` at their boundaries: the thresholds docs/commands.md states (TIME_WAIT
buckets: a warning from 80%, an error at the cap; fewer than 10,000 usable ephemeral ports), the
kernel versions docs/kernel-facts.md records (tcp_tw_recycle removed in 4.12, parity warning
since 4.2, per-netns since ...), and the exact sentences users read. The expected values are
worked out by hand from those pages, one row per side of each boundary."""

from __future__ import annotations

import pytest

from tcptune import rules
from tcptune.model import (
    CONF_MASK,
    ERROR,
    INFO,
    MISSING,
    PRESENT,
    UNREADABLE,
    WARNING,
    ConfFile,
    Reading,
)

MODERN = "6.18.44-generic"
RECYCLE = "net.ipv4.tcp_tw_recycle"
RANGE = "net.ipv4.ip_local_port_range"
BUCKETS = "net.ipv4.tcp_max_tw_buckets"
TW = "TIME_WAIT sockets (with FIN_WAIT2 orphans in their last 60 s)"


def check(
    release: str | None = MODERN,
    values: dict[str, str] | None = None,
    *,
    missing: dict[str, str] | None = None,
    unreadable: dict[str, str] | None = None,
    files: list[ConfFile] | None = None,
    tw: int | None = 0,
    overflow: int | None = 0,
    cmdline: str | None = None,
) -> rules.CheckReport:
    """inspect() on what a machine showed: `values` (short or dotted names) present, `missing`
    and `unreadable` with their errors, every other key missing as never read."""

    def full(name: str) -> str:
        return name if "." in name else f"net.ipv4.{name}"

    readings = {}
    for name, value in (values or {}).items():
        readings[full(name)] = Reading(key=full(name), state=PRESENT, value=value)
    for name, error in (missing or {}).items():
        readings[full(name)] = Reading(key=full(name), state=MISSING, error=error)
    for name, error in (unreadable or {}).items():
        readings[full(name)] = Reading(key=full(name), state=UNREADABLE, error=error)
    sockstat = None if tw is None else {"TCP": {"inuse": 1, "tw": tw}}
    netstat = None if overflow is None else {"TcpExt": {"TW": 0, "TCPTimeWaitOverflow": overflow}}
    return rules.inspect(release, readings, sockstat, netstat, files or [], cmdline)


def about(report: rules.CheckReport, key: str) -> list[tuple[str, str]]:
    return [(f.severity, f.message) for f in report.findings if f.key == key]


def status(report: rules.CheckReport, key: str) -> str:
    return next(s.status for s in report.settings if s.key == key)


def conf(directory: str, name: str, text: str, state: str = "text") -> ConfFile:
    path = f"/{directory}/{name}" if directory else "/etc/sysctl.conf"
    return ConfFile(directory=directory, name=name, path=path, text=text, state=state)


# --- ip_local_port_range ------------------------------------------------------------------------

NARROW = (
    "only {n} usable ephemeral ports{reserved}: a client making short connections to one "
    "destination (address and port) can open at most about {rate} per second before TIME_WAIT "
    "holds them all and connect() fails with EADDRNOTAVAIL{reuse}. Widen the range, e.g. "
    "'10240 65535'."
)
REUSE = (
    ", unless connect() takes TIME_WAIT ports over (tcp_tw_reuse=1 does, after "
    "tcp_tw_reuse_delay, for peers that send timestamps)"
)
FEWER = "{n} usable ephemeral ports{reserved}, fewer than the default 28232."
PARITY = (
    "low ({low}) and high ({high}) have the same parity; the kernel logs a warning, since "
    "connect() and bind() prefer ports of different parity. Make them differ."
)
BELOW = (
    "the range starts at {low}, below 1024: outgoing connections can take ports that privileged "
    "services expect to bind."
)

# (range, reserved ports, kernel, other values) -> findings. Usable = high - low + 1 - reserved
# inside; under 10,000 a warning with usable // 60 connections a second (TIME_WAIT is 60 s);
# under the default's 60999 - 32768 + 1 = 28232 a note.
PORT_RANGE_TABLE = [
    # 10,002 ports, 3 reserved at the low end: 9,999 usable
    (
        "50000 60001",
        "50000-50002",
        MODERN,
        {},
        [(WARNING, NARROW.format(n=9999, reserved=" (3 of them reserved)", rate=166, reuse=""))],
    ),
    # 2 reserved: 10,000 usable, a note only
    (
        "50000 60001",
        "50000,60001",
        MODERN,
        {},
        [(INFO, FEWER.format(n=10000, reserved=" (2 of them reserved)"))],
    ),
    # reserved ports outside the range take nothing
    (
        "50000 60001",
        "49000-49999,60002-61000",
        MODERN,
        {},
        [(INFO, FEWER.format(n=10002, reserved=""))],
    ),
    # the default less one reserved port: 28,231
    (
        "32768 60999",
        "40000",
        MODERN,
        {},
        [(INFO, FEWER.format(n=28231, reserved=" (1 of them reserved)"))],
    ),
    ("32768 60999", "", MODERN, {}, []),  # the default: nothing to say
    ("1024 65535", "", MODERN, {}, []),  # 64,512 ports starting at 1024
    ("1023 65534", "", MODERN, {}, [(WARNING, BELOW.format(low=1023))]),
    # 660 ports: 11 a second; 659: 10
    (
        "61000 61659",
        "",
        MODERN,
        {},
        [(WARNING, NARROW.format(n=660, reserved="", rate=11, reuse=""))],
    ),
    (
        "61001 61659",
        "",
        MODERN,
        {},
        [
            (WARNING, NARROW.format(n=659, reserved="", rate=10, reuse="")),
            (INFO, PARITY.format(low=61001, high=61659)),
        ],
    ),
    # tcp_tw_reuse = 1 with timestamps on (or not read) takes TIME_WAIT ports over
    (
        "61000 61599",
        "",
        MODERN,
        {"tcp_tw_reuse": "1", "tcp_timestamps": "1"},
        [(WARNING, NARROW.format(n=600, reserved="", rate=10, reuse=REUSE))],
    ),
    (
        "61000 61599",
        "",
        MODERN,
        {"tcp_tw_reuse": "1"},
        [(WARNING, NARROW.format(n=600, reserved="", rate=10, reuse=REUSE))],
    ),
    (
        "61000 61599",
        "",
        MODERN,
        {"tcp_tw_reuse": "1", "tcp_timestamps": "0"},
        [(WARNING, NARROW.format(n=600, reserved="", rate=10, reuse=""))],
    ),
    (
        "61000 61599",
        "",
        MODERN,
        {"tcp_tw_reuse": "2", "tcp_timestamps": "1"},
        [(WARNING, NARROW.format(n=600, reserved="", rate=10, reuse=""))],
    ),
    # parity: the kernel warns since 4.2 (commit ed2dfd900992); an unknown kernel may
    ("32768 61000", "", "4.2.0", {}, [(INFO, PARITY.format(low=32768, high=61000))]),
    ("32768 61000", "", "4.1.52", {}, []),
    ("32768 61000", "", "3.16.0", {}, []),
    ("32768 61000", "", "5.10.0", {}, [(INFO, PARITY.format(low=32768, high=61000))]),
    ("32769 61001", "", None, {}, [(INFO, PARITY.format(low=32769, high=61001))]),
    # one port: no parity to speak of
    (
        "40000 40000",
        "",
        MODERN,
        {},
        [(WARNING, NARROW.format(n=1, reserved="", rate=0, reuse=""))],
    ),
    # high below low: nothing usable
    (
        "60001 50000",
        "",
        MODERN,
        {},
        [(WARNING, NARROW.format(n=0, reserved="", rate=0, reuse=""))],
    ),
    # not two numbers
    ("32768", "", MODERN, {}, [(WARNING, "cannot parse '32768' as 'low high'")]),
    ("32768 60999 1", "", MODERN, {}, [(WARNING, "cannot parse '32768 60999 1' as 'low high'")]),
    ("32768 x", "", MODERN, {}, [(WARNING, "cannot parse '32768 x' as 'low high'")]),
]


@pytest.mark.parametrize(("port_range", "reserved", "release", "others", "found"), PORT_RANGE_TABLE)
def test_port_range_findings(port_range, reserved, release, others, found) -> None:
    values = {"ip_local_port_range": port_range, "ip_local_reserved_ports": reserved, **others}
    report = check(release, values)
    own = about(report, RANGE)
    # the generic range check may add its own line for a value outside 1..65535 or not numeric
    own = [f for f in own if "documented range" not in f[1] and "not numeric" not in f[1]]
    assert own == found
    expected = "warning" if any(s == WARNING for s, _ in found) else "ok"
    assert status(report, RANGE) == expected


def test_a_narrow_range_cites_the_time_wait_length_and_tcp_twsk_unique() -> None:
    report = check(MODERN, {"ip_local_port_range": "61000 61599"})
    (finding,) = [f for f in report.findings if f.key == RANGE]
    assert finding.source == (
        "Documentation/networking/ip-sysctl.rst (ip_local_port_range); TIME_WAIT is 60 s: "
        "include/net/tcp.h; net/ipv4/tcp_ipv4.c:tcp_twsk_unique (6.18)"
    )


# --- tcp_max_tw_buckets against sockstat's tw -----------------------------------------------------

AT_CAP = (
    "{used} " + TW + " have reached the cap of {cap}: closing sockets now skip TIME_WAIT and are "
    "destroyed at once, losing its protection against stale segments. Find who creates them "
    "(tcptune sockets) or raise the cap."
)
NEAR_CAP = (
    "{used} " + TW + ", {percent}% of the cap of {cap}: past it, closing sockets skip TIME_WAIT."
)
NOW = "{used} " + TW + " now, of a cap of {cap}."
OVERFLOW = (
    "TCPTimeWaitOverflow = {n}: that many sockets have skipped TIME_WAIT because the cap was "
    "reached, or because memory for the TIME_WAIT socket ran out (since boot, or since this "
    "network namespace was created). Nothing is logged to dmesg for this."
)

# (cap, tw, overflow) -> findings: a warning from 80% of the cap, an error at it
BUCKET_TABLE = [
    (1000, 0, 0, [(INFO, NOW.format(used=0, cap=1000))]),
    (1000, 799, 0, [(INFO, NOW.format(used=799, cap=1000))]),
    (1000, 800, 0, [(WARNING, NEAR_CAP.format(used=800, percent=80, cap=1000))]),
    (1000, 999, 0, [(WARNING, NEAR_CAP.format(used=999, percent=99, cap=1000))]),
    (1000, 1000, 0, [(ERROR, AT_CAP.format(used=1000, cap=1000))]),
    (1000, 1001, 0, [(ERROR, AT_CAP.format(used=1001, cap=1000))]),
    (5, 3, 0, [(INFO, NOW.format(used=3, cap=5))]),  # 60%
    (5, 4, 0, [(WARNING, NEAR_CAP.format(used=4, percent=80, cap=5))]),  # exactly 80%
    (0, 0, 0, [(ERROR, AT_CAP.format(used=0, cap=0))]),  # no TIME_WAIT at all
    (
        1000,
        10,
        1,
        [(INFO, NOW.format(used=10, cap=1000)), (WARNING, OVERFLOW.format(n=1))],
    ),
    (
        131072,
        131072,
        7,
        [(ERROR, AT_CAP.format(used=131072, cap=131072)), (WARNING, OVERFLOW.format(n=7))],
    ),
]


@pytest.mark.parametrize(("cap", "tw", "overflow", "found"), BUCKET_TABLE)
def test_time_wait_buckets_at_their_thresholds(cap, tw, overflow, found) -> None:
    report = check(MODERN, {"tcp_max_tw_buckets": str(cap)}, tw=tw, overflow=overflow)
    assert about(report, BUCKETS) == found
    worst = (
        ERROR if (cap == 0 or tw >= cap) else WARNING if (tw * 5 >= cap * 4 or overflow) else "ok"
    )
    assert status(report, BUCKETS) == worst


def test_time_wait_buckets_sources() -> None:
    doc = "Documentation/networking/ip-sysctl.rst (tcp_max_tw_buckets)"
    report = check(MODERN, {"tcp_max_tw_buckets": "10"}, tw=9, overflow=2)
    assert [f.source for f in report.findings if f.key == BUCKETS] == [
        f"{doc}; /proc/net/sockstat (TCP tw)",
        "/proc/net/netstat (TcpExt); probe",
    ]
    low = check(MODERN, {"tcp_max_tw_buckets": "10"}, tw=1, overflow=0)
    assert [f.source for f in low.findings if f.key == BUCKETS] == ["/proc/net/sockstat (TCP tw)"]


def test_time_wait_buckets_without_the_counters() -> None:
    report = check(MODERN, {"tcp_max_tw_buckets": "1000"}, tw=None, overflow=None)
    assert about(report, BUCKETS) == [
        (INFO, "could not read the live TIME_WAIT count from /proc/net/sockstat")
    ]
    # sockstat without a TCP line is the same
    readings = {BUCKETS: Reading(key=BUCKETS, state=PRESENT, value="1000")}
    other = rules.inspect(MODERN, readings, {"UDP": {"inuse": 1}}, {"IpExt": {"InNoRoutes": 0}})
    assert about(other, BUCKETS) == about(report, BUCKETS)
    # no cap read: nothing to compare
    assert about(check(MODERN, {}, missing={BUCKETS: "gone"}, tw=5), BUCKETS) == [
        (INFO, "not present: gone.")
    ]


# --- tcp_fin_timeout -----------------------------------------------------------------------------

LOWERED = (
    "tcp_fin_timeout={n} only shortens orphaned FIN_WAIT2 sockets. It does not shorten TIME_WAIT, "
    "which is fixed at 60 s (TCP_TIMEWAIT_LEN); if it was lowered to fight TIME_WAIT, it has no "
    "effect on it."
)
GOVERNS = (
    "governs orphaned FIN_WAIT2 sockets only; it does not shorten TIME_WAIT, which is fixed at "
    "60 s (TCP_TIMEWAIT_LEN)."
)


@pytest.mark.parametrize(
    ("value", "message"),
    [("59", LOWERED.format(n=59)), ("3", LOWERED.format(n=3)), ("60", GOVERNS), ("120", GOVERNS)],
)
def test_fin_timeout_below_the_time_wait_length(value: str, message: str) -> None:
    key = "net.ipv4.tcp_fin_timeout"
    report = check(MODERN, {"tcp_fin_timeout": value})
    assert about(report, key) == [(INFO, message)]
    (finding,) = [f for f in report.findings if f.key == key]
    assert finding.source == f"{IP_DOC} (tcp_fin_timeout); include/net/tcp.h; probe"
    assert status(report, key) == "ok"


IP_DOC = "Documentation/networking/ip-sysctl.rst"


# --- tcp_tw_reuse --------------------------------------------------------------------------------

NO_TIMESTAMPS = (
    "tcp_tw_reuse={v} has no effect on connections made while net.ipv4.tcp_timestamps=0: a "
    "TIME_WAIT socket is reused only when timestamps were negotiated on its connection. Turn "
    "timestamps back on (1)."
)
OUTGOING = " It only helps this host's outgoing connect(); a server's TIME_WAIT is untouched."


# what each value means (docs/kernel-facts.md: 0 off, 1 every outgoing connect(), 2 loopback)
MEANS = {"0": "0 = off.", "1": "1 = on for all outgoing", "2": "2 = on for loopback"}


@pytest.mark.parametrize(
    ("reuse", "timestamps", "warned"),
    [
        ("0", "1", False),
        ("0", "0", False),
        ("1", "1", False),
        ("1", "2", False),
        ("2", "1", False),
        ("1", "0", True),
        ("2", "0", True),
    ],
)
def test_tw_reuse_and_timestamps(reuse: str, timestamps: str, warned: bool) -> None:
    key = "net.ipv4.tcp_tw_reuse"
    report = check(MODERN, {"tcp_tw_reuse": reuse, "tcp_timestamps": timestamps})
    mine = about(report, key)
    assert [s for s, _ in mine] == [INFO, WARNING] if warned else [INFO]
    meaning = mine[0][1]
    assert meaning.startswith(MEANS[reuse])
    if reuse == "0":
        assert meaning == "0 = off."
    else:
        assert meaning.endswith(")." + OUTGOING)
    if warned:
        assert mine[1][1] == NO_TIMESTAMPS.format(v=reuse)
    assert all(f.source == f"{IP_DOC} (tcp_tw_reuse)" for f in report.findings if f.key == key)
    assert status(report, key) == (WARNING if warned else "ok")


def test_tw_reuse_not_read_says_nothing_of_its_own() -> None:
    report = check(MODERN, {"tcp_timestamps": "0"}, missing={"tcp_tw_reuse": "no such file"})
    assert about(report, "net.ipv4.tcp_tw_reuse") == [(INFO, "not present: no such file.")]


def test_tw_reuse_value_outside_the_documented_ones() -> None:
    report = check(MODERN, {"tcp_tw_reuse": "3", "tcp_timestamps": "0"})
    assert about(report, "net.ipv4.tcp_tw_reuse") == [
        (WARNING, "'3' is not a documented value (0, 1, 2)")
    ]


# --- protections, buffers, rfc1337 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "warned"),
    [
        ({"tcp_timestamps": "0", "tcp_syncookies": "0"}, {"tcp_timestamps", "tcp_syncookies"}),
        ({"tcp_timestamps": "1", "tcp_syncookies": "0"}, {"tcp_syncookies"}),
        ({"tcp_timestamps": "2", "tcp_syncookies": "2"}, set()),
        ({"tcp_timestamps": "0", "tcp_syncookies": "1"}, {"tcp_timestamps"}),
    ],
)
def test_protections_off(values: dict[str, str], warned: set[str]) -> None:
    report = check(MODERN, values)
    for short in ("tcp_timestamps", "tcp_syncookies"):
        warnings = [f for f in report.findings if f.key == f"net.ipv4.{short}"]
        assert bool(warnings) == (short in warned)
        if warnings:
            (finding,) = warnings
            assert finding.severity == WARNING and finding.source == f"{IP_DOC} ({short})"
            assert finding.message.endswith("Set it to 1.")


@pytest.mark.parametrize(
    ("rmem", "in_order"),
    [
        ("4096 131072 6291456", True),
        ("4096 4096 4096", True),  # equal fields are in order
        ("4096 131072 131072", True),
        ("4096 131073 131072", False),
        ("131073 131072 6291456", False),
        ("4096 131072", True),  # not three fields: not this rule's
        ("4096 x 1", True),
    ],
)
def test_buffer_order(rmem: str, in_order: bool) -> None:
    report = check(MODERN, {"tcp_rmem": rmem, "tcp_wmem": "4096 16384 4194304"})
    order = [f for f in report.findings if "order" in f.message]
    if in_order:
        assert order == []
    else:
        (finding,) = order
        assert (finding.key, finding.severity) == ("net.ipv4.tcp_rmem", WARNING)
        assert finding.message == (
            f"{rmem!r} is not in 'min default max' order; the kernel does not check it, and "
            "autotuning then behaves unexpectedly."
        )
        assert finding.source == f"{IP_DOC} (tcp_rmem)"
    wmem = check(MODERN, {"tcp_wmem": rmem})
    assert bool([f for f in wmem.findings if "order" in f.message]) == (not in_order)


@pytest.mark.parametrize(("value", "noted"), [("0", True), ("1", False)])
def test_rfc1337(value: str, noted: bool) -> None:
    report = check(MODERN, {"tcp_rfc1337": value})
    found = about(report, "net.ipv4.tcp_rfc1337")
    if not noted:
        assert found == []
        return
    assert found == [
        (
            INFO,
            "0: an in-window RST kills a TIME_WAIT socket at once (TIME-WAIT assassination); 1 "
            "ignores such RSTs. The kernel documentation's wording reads the other way round.",
        )
    ]


# --- the documented range of each key -----------------------------------------------------------

# From docs/kernel-facts.md: tcp_keepalive_probes and tcp_orphan_retries 0..255 (u8),
# tcp_tw_reuse_delay 1..60000, tcp_rmem fields >= 1, ip_local_port_range 1..65535.
RANGE_TABLE = [
    ("net.ipv4.tcp_keepalive_probes", "255", None),
    ("net.ipv4.tcp_keepalive_probes", "0", None),
    ("net.ipv4.tcp_keepalive_probes", "256", "256 is outside the documented range 0..255"),
    ("net.ipv4.tcp_keepalive_probes", "-1", "-1 is outside the documented range 0..255"),
    ("net.ipv4.tcp_orphan_retries", "255", None),
    ("net.ipv4.tcp_orphan_retries", "256", "256 is outside the documented range 0..255"),
    ("net.ipv4.tcp_tw_reuse_delay", "1", None),
    ("net.ipv4.tcp_tw_reuse_delay", "60000", None),
    ("net.ipv4.tcp_tw_reuse_delay", "0", "0 is outside the documented range 1..60000"),
    ("net.ipv4.tcp_tw_reuse_delay", "60001", "60001 is outside the documented range 1..60000"),
    ("net.ipv4.tcp_rmem", "1 1 1", None),
    ("net.ipv4.tcp_rmem", "4096 0 6291456", "0 is outside the documented range 1..inf"),
    ("net.ipv4.tcp_rmem", "4096 131072 x", "'4096 131072 x' is not numeric"),
    ("net.ipv4.tcp_fin_timeout", "-5", "-5 is outside the documented range 0..inf"),
    ("net.ipv4.ip_local_port_range", "0 65535", "0 is outside the documented range 1..65535"),
    (
        "net.ipv4.ip_local_port_range",
        "1024 65536",
        "65536 is outside the documented range 1..65535",
    ),
    ("net.ipv4.tcp_mtu_probing", "2", None),
    ("net.ipv4.tcp_mtu_probing", "3", "'3' is not a documented value (0, 1, 2)"),
    ("net.ipv4.tcp_rfc1337", "2", "'2' is not a documented value (0, 1)"),
    ("net.ipv4.tcp_slow_start_after_idle", "1", None),
    ("net.core.somaxconn", "2147483647", None),
    ("net.core.somaxconn", "-1", "-1 is outside the documented range 0..2147483647"),
    ("net.ipv4.tcp_congestion_control", "cubic", None),  # a name: no range
    ("net.ipv4.ip_local_reserved_ports", "1-65535", None),
]


@pytest.mark.parametrize(("key", "value", "message"), RANGE_TABLE)
def test_values_against_the_documented_range(key: str, value: str, message: str | None) -> None:
    report = check(MODERN, {key: value})
    generic = [
        (f.severity, f.message, f.source)
        for f in report.findings
        if f.key == key and ("documented" in f.message or "not numeric" in f.message)
    ]
    if message is None:
        assert generic == []
    else:
        assert generic == [(WARNING, message, f"{IP_DOC}")]


# --- keys that are missing or unreadable ----------------------------------------------------------

REMOVED = (
    "removed in 4.12: nothing to tune. A sysctl.d line that still sets it only makes "
    "systemd-sysctl log a warning at boot; each one is named with a warning of its own."
)
GLOBAL_SINCE = (
    "absent here: this key is per network namespace only since {since}; on this kernel it is "
    "global and is not shown inside a network namespace (e.g. a container). Read it on the host."
)

# (key, kernel) -> what a missing key means there, from its history in docs/kernel-facts.md
MISSING_TABLE = [
    (RECYCLE, "4.12.0", REMOVED),
    (RECYCLE, "6.1.0", REMOVED),
    # before its removal a missing tcp_tw_recycle is left unexplained (not a key to tune)
    (RECYCLE, "4.11.12", None),
    (RECYCLE, "4.10.0", None),
    (RECYCLE, None, None),  # unknown kernel: removed or not cannot be told
    (
        "net.ipv4.tcp_tw_reuse_delay",
        "6.13.9",
        "not on this kernel: added in 6.14; this kernel is older.",
    ),
    ("net.ipv4.tcp_tw_reuse_delay", "6.14.0", "not present: no such file."),
    ("net.ipv4.tcp_tw_reuse", "4.10.17", GLOBAL_SINCE.format(since="4.11")),
    ("net.ipv4.tcp_tw_reuse", "4.11.0", "not present: no such file."),
    ("net.ipv4.tcp_timestamps", "4.12.0", GLOBAL_SINCE.format(since="4.13")),
    ("net.ipv4.tcp_timestamps", "4.13.0", "not present: no such file."),
    ("net.ipv4.tcp_timestamps", None, "not present: no such file."),
    (
        "net.ipv4.tcp_max_orphans",
        MODERN,
        "absent here: this key is global and is not shown inside a network namespace (e.g. a "
        "container). Read it on the host.",
    ),
    ("net.ipv4.tcp_fastopen", "3.5.0", "not on this kernel: added in 3.6; this kernel is older."),
    ("net.ipv4.tcp_fastopen", "4.14.0", GLOBAL_SINCE.format(since="4.15")),
]


@pytest.mark.parametrize(("key", "release", "message"), MISSING_TABLE)
def test_a_missing_key_at_its_version_boundaries(key, release, message) -> None:
    report = check(release, {}, missing={key: "no such file"})
    found = about(report, key)
    assert found == ([] if message is None else [(INFO, message)])
    assert status(report, key) == MISSING


def test_missing_findings_cite_the_commit_or_the_page() -> None:
    def source(key: str, release: str) -> str:
        report = check(release, {}, missing={key: "no such file"})
        (finding,) = [f for f in report.findings if f.key == key]
        return finding.source

    assert "4396e46187ca" in source(RECYCLE, "5.4.0")
    assert source(RECYCLE, "5.4.0").startswith(f"{IP_DOC} (tcp_tw_recycle); ")
    assert "ca6a6f93867a" in source("net.ipv4.tcp_tw_reuse_delay", "6.13.0")
    assert source("net.ipv4.tcp_tw_reuse_delay", "6.14.0") == IP_DOC
    assert source("net.ipv4.tcp_fastopen", "3.5.0") != IP_DOC


def test_an_unreadable_key_is_a_warning_with_its_error() -> None:
    key = "net.ipv4.tcp_fin_timeout"
    report = check(MODERN, {}, unreadable={key: "Permission denied"})
    (finding,) = [f for f in report.findings if f.key == key]
    assert (finding.severity, finding.message, finding.source) == (
        WARNING,
        "could not read the live value: Permission denied",
        "/proc/sys",
    )
    setting = next(s for s in report.settings if s.key == key)
    assert (setting.status, setting.value, setting.error) == (UNREADABLE, None, "Permission denied")
    assert not report.all_unreadable()


def test_every_key_unreadable() -> None:
    from tcptune import keys

    report = check(MODERN, {}, unreadable={k: "EACCES" for k in keys.KEYS})
    assert report.all_unreadable()
    assert report.worst() == WARNING
    empty = rules.CheckReport(release=None, version=None, settings=[], findings=[])
    assert not empty.all_unreadable() and empty.worst() is None


def test_unknown_release_is_one_warning() -> None:
    for release in (None, "", "linux"):
        report = check(release, {"tcp_fin_timeout": "60"})
        general = [f for f in report.findings if f.key == "kernel.osrelease"]
        assert [(f.severity, f.message, f.source) for f in general] == [
            (
                WARNING,
                f"kernel release unknown ({release!r}): version-specific rules are skipped",
                "/proc/sys/kernel/osrelease",
            )
        ]
        assert report.findings[0] == general[0]  # said first
    assert [f for f in check(MODERN, {}).findings if f.key == "kernel.osrelease"] == []


def test_settings_carry_the_live_value_and_the_kernel_s_default() -> None:
    report = check("4.17.0", {"net.core.somaxconn": "  1024 "}, missing={"tcp_tw_reuse": "x"})
    somaxconn = next(s for s in report.settings if s.key == "net.core.somaxconn")
    assert (somaxconn.value, somaxconn.default, somaxconn.status) == ("  1024 ", "128", "ok")
    reuse = next(s for s in report.settings if s.key == "net.ipv4.tcp_tw_reuse")
    assert (reuse.value, reuse.default, reuse.error) == (None, "0", "x")
    assert report.tcp_counts == {"inuse": 1, "tw": 0}
    assert check(MODERN, {}, tw=None).tcp_counts is None


# --- tcp_tw_recycle: live, and in the files read at boot -----------------------------------------

RECYCLE_ON = (
    "tcp_tw_recycle=1 drops SYNs from clients behind NAT (their timestamps are not ordered per "
    "address), so NATed users fail to connect at random; clients whose kernel randomizes "
    "timestamps per connection (Linux 4.10, and kernels with commit 165573e41f2f) fail even "
    "without NAT. Set it to 0 and remove it from sysctl.d."
)
RECYCLE_OFF = (
    "0 is the only safe value; the key is removed in 4.12, so drop it from sysctl.d before "
    "upgrading."
)
AT_BOOT = (
    "{where} sets tcp_tw_recycle = 1 at every boot (under {loaders}), which drops SYNs from "
    "clients behind NAT. Delete the line (or set 0)."
)
PROCPS_SKIPS = "procps `sysctl --system` skips it without a word (its exit status stays 0)"
SYSTEMD_LOGS = (
    "systemd-sysctl logs \"Couldn't write '{value}' to '{key}', ignoring: No such file or "
    'directory" and exits 0'
)
LEFTOVER = (
    "{where} sets tcp_tw_recycle = {value}, which this kernel does not have (removed in 4.12). At "
    'boot {said}. `sysctl -p {file}` fails on it ("cannot stat '
    '/proc/sys/net/ipv4/tcp_tw_recycle", exit 1). Delete the line.'
)


def test_tw_recycle_live_values() -> None:
    on = check("4.11.12", {"tcp_tw_recycle": "1"})
    assert about(on, RECYCLE) == [(ERROR, RECYCLE_ON)]
    (finding,) = [f for f in on.findings if f.key == RECYCLE]
    assert finding.source == (
        f'{IP_DOC} (tcp_tw_recycle); commit 4396e46187ca "tcp: remove tcp_tw_recycle"; '
        "timestamp offsets: commits 95a22caee396 (4.10), 28ee1b746f49 (4.11), 165573e41f2f"
    )
    assert status(on, RECYCLE) == ERROR
    off = check("4.9.0", {"tcp_tw_recycle": "0"})
    assert about(off, RECYCLE) == [(INFO, RECYCLE_OFF)]
    assert status(off, RECYCLE) == "ok"
    odd = check("4.9.0", {"tcp_tw_recycle": "2"})
    assert about(odd, RECYCLE) == [(WARNING, "'2' is not a documented value (0, 1)")]


def test_tw_recycle_0_in_a_file_on_4_9_is_no_error() -> None:
    """Setting the safe value at boot is not the danger; only 1 is."""
    files = [conf("etc/sysctl.d", "10-tune.conf", "net.ipv4.tcp_tw_recycle = 0\n")]
    report = check("4.9.0-19-amd64", {"tcp_tw_recycle": "0"}, files=files)
    assert about(report, RECYCLE) == [(INFO, RECYCLE_OFF)]
    assert status(report, RECYCLE) == "ok" and report.worst() == INFO


@pytest.mark.parametrize(
    ("files", "cmdline", "found"),
    [
        # both loaders read /etc/sysctl.d
        (
            [conf("etc/sysctl.d", "10-tune.conf", "# old advice\nnet.ipv4.tcp_tw_recycle = 1\n")],
            None,
            [AT_BOOT.format(where="/etc/sysctl.d/10-tune.conf:2", loaders="procps, systemd")],
        ),
        # /etc/sysctl.conf: procps only
        (
            [conf("", "sysctl.conf", "net.ipv4.tcp_tw_recycle=1\n")],
            None,
            [AT_BOOT.format(where="/etc/sysctl.conf:1", loaders="procps")],
        ),
        # a later file sets 0 for both: nothing left at 1
        (
            [
                conf("etc/sysctl.d", "10-a.conf", "net.ipv4.tcp_tw_recycle = 1\n"),
                conf("etc/sysctl.d", "20-b.conf", "net.ipv4.tcp_tw_recycle = 0\n"),
            ],
            None,
            [],
        ),
        # the command line sets 1 before the loaders; a file sets 0 after it
        (
            [conf("etc/sysctl.d", "20-b.conf", "net.ipv4.tcp_tw_recycle = 0\n")],
            "ro sysctl.net.ipv4.tcp_tw_recycle=1",
            [],
        ),
        (
            [],
            "ro sysctl.net.ipv4.tcp_tw_recycle=1 quiet",
            [AT_BOOT.format(where="/proc/cmdline", loaders="procps, systemd")],
        ),
        # in /etc/sysctl.conf for procps, overridden in sysctl.d... no: sysctl.conf comes last
        (
            [
                conf("etc/sysctl.d", "10-a.conf", "net.ipv4.tcp_tw_recycle = 0\n"),
                conf("", "sysctl.conf", "net.ipv4.tcp_tw_recycle = 1\n"),
            ],
            None,
            [AT_BOOT.format(where="/etc/sysctl.conf:1", loaders="procps")],
        ),
    ],
)
def test_tw_recycle_set_to_1_at_boot_on_a_kernel_that_has_it(files, cmdline, found) -> None:
    for release in ("4.9.0", "4.11.12"):
        report = check(release, {"tcp_tw_recycle": "0"}, files=files, cmdline=cmdline)
        boot = [(s, m) for s, m in about(report, RECYCLE) if m != RECYCLE_OFF]
        assert boot == [(ERROR, message) for message in found]
        for finding in report.findings:
            if finding.key == RECYCLE and finding.severity == ERROR:
                assert finding.source == (
                    f'{IP_DOC} (tcp_tw_recycle); commit 4396e46187ca "tcp: remove tcp_tw_recycle"'
                )
        assert status(report, RECYCLE) == (ERROR if found else "ok")


def test_tw_recycle_leftovers_on_a_kernel_without_it() -> None:
    files = [
        conf("etc/sysctl.d", "10-a.conf", "net.ipv4.tcp_tw_recycle = 1\n"),
        conf("etc/sysctl.d", "11-b.conf", "x = 1\n-net.ipv4.tcp_tw_recycle = 0\n"),
        conf("", "sysctl.conf", "net.ipv4.tcp_tw_recycle = 1\n"),
        conf("usr/lib/sysctl.d", "12-c.conf", "-net.ipv4.tcp_tw_recycle\n"),  # exclusion only
        conf("run/sysctl.d", "13-d.conf", "", state=CONF_MASK),
        conf("usr/lib/sysctl.d", "13-d.conf", "net.ipv4.tcp_tw_recycle = 1\n"),  # masked
    ]
    for release in ("4.12.0", "6.18.44"):
        report = check(release, {}, missing={RECYCLE: "no such file"}, files=files)
        assert about(report, RECYCLE) == [
            (INFO, REMOVED),
            (
                WARNING,
                LEFTOVER.format(
                    where="/etc/sysctl.d/10-a.conf:1",
                    value=1,
                    file="/etc/sysctl.d/10-a.conf",
                    said="; ".join(
                        [
                            PROCPS_SKIPS,
                            SYSTEMD_LOGS.format(value=1, key="net/ipv4/tcp_tw_recycle"),
                        ]
                    ),
                ),
            ),
            (
                WARNING,
                LEFTOVER.format(
                    where="/etc/sysctl.d/11-b.conf:2",
                    value=0,
                    file="/etc/sysctl.d/11-b.conf",
                    said=PROCPS_SKIPS
                    + "; systemd-sysctl skips it silently (the '-' prefix) and exits 0",
                ),
            ),
            (
                WARNING,
                LEFTOVER.format(
                    where="/etc/sysctl.conf:1",
                    value=1,
                    file="/etc/sysctl.conf",
                    said=PROCPS_SKIPS + "; systemd-sysctl does not read it",
                ),
            ),
        ]
        assert status(report, RECYCLE) == MISSING
        sources = {f.source for f in report.findings if f.key == RECYCLE and f.severity == WARNING}
        assert sources == {
            f'{IP_DOC} (tcp_tw_recycle); commit 4396e46187ca "tcp: remove tcp_tw_recycle"; '
            "procps-ng 4.0.2 and systemd 252 probed"
        }


def test_a_file_name_with_a_colon_is_named_whole() -> None:
    """'path:line' is cut at its last colon: a name may hold one."""
    files = [conf("etc/sysctl.d", "10-a:b.conf", "\nnet.ipv4.tcp_tw_recycle = 1\n")]
    report = check("5.4.0", {}, missing={RECYCLE: "no such file"}, files=files)
    (leftover,) = [m for s, m in about(report, RECYCLE) if s == WARNING]
    assert leftover.startswith("/etc/sysctl.d/10-a:b.conf:2 sets tcp_tw_recycle = 1,")
    assert "`sysctl -p /etc/sysctl.d/10-a:b.conf` fails on it" in leftover


def test_a_report_made_without_a_boot_model_builds_one_from_its_files() -> None:
    files = (conf("etc/sysctl.d", "10-a.conf", "net.ipv4.tcp_fin_timeout = 30\n"),)
    bare = rules.CheckReport(release=None, version=None, settings=[], findings=[], conf_files=files)
    answers = bare.boot_model().answers("net.ipv4.tcp_fin_timeout")
    assert [(a.value, a.source) for a in answers] == [("30", "/etc/sysctl.d/10-a.conf:1")] * 2
    made = check(MODERN, {}, files=list(files))
    assert made.boot_model() is made.boot


def test_a_leftover_line_only_systemd_reads() -> None:
    """systemd ends a line at a CR, procps does not: the second half of this line sets
    tcp_tw_recycle for systemd alone (tests/test_sysctld_lines.py holds that to both loaders)."""
    files = [conf("etc/sysctl.d", "10-a.conf", "x.y = 1\rnet.ipv4.tcp_tw_recycle = 1\n")]
    report = check("5.4.0", {}, missing={RECYCLE: "no such file"}, files=files)
    assert [m for s, m in about(report, RECYCLE) if s == WARNING] == [
        LEFTOVER.format(
            where="/etc/sysctl.d/10-a.conf:1",
            value=1,
            file="/etc/sysctl.d/10-a.conf",
            said="procps reads no such line there (a CR or NUL does not end a line for it); "
            + SYSTEMD_LOGS.format(value=1, key="net/ipv4/tcp_tw_recycle"),
        )
    ]


def test_a_leftover_line_with_a_dash_and_a_cr() -> None:
    files = [conf("etc/sysctl.d", "10-a.conf", "-net.ipv4.tcp_tw_recycle = 0\r\n")]
    report = check("5.4.0", {}, missing={RECYCLE: "no such file"}, files=files)
    assert [m for s, m in about(report, RECYCLE) if s == WARNING] == [
        LEFTOVER.format(
            where="/etc/sysctl.d/10-a.conf:1",
            value=0,
            file="/etc/sysctl.d/10-a.conf",
            said=PROCPS_SKIPS + "; systemd-sysctl skips it silently (the '-' prefix) and exits 0",
        )
    ]


def test_the_safe_value_note_cites_the_removal() -> None:
    report = check("4.9.0", {"tcp_tw_recycle": "0"})
    (finding,) = [f for f in report.findings if f.key == RECYCLE]
    assert finding.source == (
        f'{IP_DOC} (tcp_tw_recycle); commit 4396e46187ca "tcp: remove tcp_tw_recycle"'
    )


def test_the_report_carries_what_it_was_made_from() -> None:
    files = [conf("etc/sysctl.d", "10-a.conf", "net.ipv4.tcp_fin_timeout = 30\n")]
    report = check("5.10.12-1-amd64", {"tcp_fin_timeout": "30"}, files=files, tw=7)
    assert (report.release, report.version) == ("5.10.12-1-amd64", (5, 10, 12))
    assert report.conf_files == tuple(files)
    assert report.tcp_counts == {"inuse": 1, "tw": 7}
    assert [a.value for a in report.boot_model().answers("net.ipv4.tcp_fin_timeout")] == ["30"] * 2
    # a key no reading was given for is missing, "not read"
    unread = next(s for s in report.settings if s.key == "net.ipv4.tcp_keepalive_time")
    assert (unread.status, unread.value, unread.error) == (MISSING, None, "not read")
    assert about(report, "net.ipv4.tcp_keepalive_time") == [(INFO, "not present: not read.")]


def test_port_range_sources() -> None:
    def sources(port_range: str, release: str = MODERN) -> list[str]:
        report = check(release, {"ip_local_port_range": port_range})
        return [f.source for f in report.findings if f.key == RANGE]

    doc = f"{IP_DOC} (ip_local_port_range)"
    assert sources("40000 60001") == [doc]  # fewer than the default
    assert sources("1023 65534") == [doc]  # below 1024
    assert sources("40000 50000 60000") == [doc]  # not two numbers
    assert sources("32768 61000") == [f"{doc}; commits 07f4c90062f8, ed2dfd900992 (4.2)"]


def test_sources_of_the_notes() -> None:
    report = check(MODERN, {"tcp_rfc1337": "0", "tcp_max_tw_buckets": "100"}, tw=None)
    by_key = {f.key: f.source for f in report.findings}
    assert by_key["net.ipv4.tcp_rfc1337"] == f"{IP_DOC} (tcp_rfc1337); net/ipv4/tcp_minisocks.c"
    assert by_key[BUCKETS] == "/proc/net/sockstat (TCP tw)"
