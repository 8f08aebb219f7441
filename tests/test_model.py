"""The shared values and parsers, and the places where two commands must say the same thing
because they ask the same function."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import FakeMachine

from tcptune import census, keys, model, rules, sysctld
from tcptune.cli.check import gather
from tcptune.model import ConfFile, Finding, parse_int, parse_port_range, reserved_ports
from tcptune.system import System


@pytest.mark.parametrize(
    ("text", "number"),
    [("4096", 4096), ("-1", -1), (" 7\n", 7), ("0", 0), ("2147483647", 2147483647)],
)
def test_parse_int_reads_decimal_as_the_kernel_prints_it(text: str, number: int) -> None:
    assert parse_int(text) == number


@pytest.mark.parametrize(
    "text", [None, "", "-", "0x400", "+5", "1_000", "1.5", "٣", "12 13", "--1"]
)
def test_parse_int_refuses_anything_else(text: str | None) -> None:
    assert parse_int(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("32768 60999", (32768, 60999)),
        ("1024\t65535", (1024, 65535)),
        ("5 5", (5, 5)),
        ("60999 32768", None),
        ("-5 60000", None),
        ("1 2 3", None),
        ("x y", None),
        (None, None),
    ],
)
def test_port_range(text: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_port_range(text) == expected


def test_reserved_ports_count_only_inside_the_range() -> None:
    assert reserved_ports("8080,9000-9100", 9000, 9049) == 50
    assert reserved_ports("8080, 9000-9100", 1, 65535) == 102
    assert reserved_ports("7-, abc,40000-40001", 40000, 40999) == 2  # bad parts are skipped
    assert reserved_ports("", 1, 10) == 0


def test_records_are_frozen_and_take_keywords_only() -> None:
    finding = Finding(severity="info", key="k", message="m", source="s")
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.message = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Finding("info", "k", "m", "s")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("cap", "tw", "overflow", "expected"),
    [
        ("100", 10, 0, []),
        ("100", 85, 0, [model.WARNING]),
        ("100", 100, 0, [model.ERROR]),
        ("100", 130, 17, [model.ERROR, model.WARNING]),
        ("0", 0, 3, [model.ERROR, model.WARNING]),
        ("-1", 5, 0, [model.ERROR]),
    ],
)
def test_check_and_sockets_judge_the_time_wait_cap_alike(
    modern: FakeMachine, cap: str, tw: int, overflow: int, expected: list[str]
) -> None:
    """One rule for tcp_max_tw_buckets: `check` and `sockets` reach the same severities."""
    modern.set("net.ipv4.tcp_max_tw_buckets", cap).sockets(tw=tw, overflow=overflow)
    report = gather(System(modern.root))
    from_check = [
        f.severity
        for f in report.findings
        if f.key == "net.ipv4.tcp_max_tw_buckets"
        and "/proc/net/" in f.source  # the cap rule's, not the generic range check's
        and f.severity != model.INFO
    ]
    counted = census.Tally(census.PROC, 32768, 60999).finish()
    facts = census.CensusInput(
        census=counted,
        owners=[],
        sysctl={"tcp_max_tw_buckets": cap},
        counters={"TCPTimeWaitOverflow": overflow},
        tw_live=tw,
        port_range=(32768, 60999),
        usable=28232,
    )
    from_sockets = [
        f.severity for f in census.findings(facts) if f.key == "net.ipv4.tcp_max_tw_buckets"
    ]
    assert from_check == from_sockets == expected


def test_removed_keys_are_special_through_the_knowledge_base_alone() -> None:
    """tcp_tw_recycle is the removed key; every command treats it through its KeySpec."""
    removed = [spec.name for spec in keys.KEYS.values() if spec.removed is not None]
    assert removed == ["net.ipv4.tcp_tw_recycle"]
    spec = keys.KEYS["net.ipv4.tcp_tw_recycle"]
    assert set(spec.refused) == {"1"} and "0" not in spec.refused


def test_boot_summary_is_one_answer_for_check_and_apply() -> None:
    key = "net.ipv4.tcp_keepalive_time"
    only_procps = [
        ConfFile(directory="", name="sysctl.conf", path="/etc/sysctl.conf", text=f"{key} = 600\n")
    ]
    checks = sysctld.persistence(sysctld.BootModel(only_procps), key, "600")
    assert sysctld.boot_summary(checks) == "survives under procps"
    assert sysctld.boot_summary(checks, detailed=True) == "survives under procps"
    overriding = sysctld.persistence(sysctld.BootModel(only_procps), key, "700")
    assert sysctld.boot_summary(overriding) == "overridden (procps)"
    assert sysctld.boot_summary(overriding, detailed=True) == (
        "procps: overridden by /etc/sysctl.conf:1 (value 600)"
    )
    nothing = sysctld.persistence(sysctld.BootModel([]), key, "600")
    assert sysctld.boot_summary(nothing) == "not persisted"


def test_worst_severity() -> None:
    def of(*severities: str) -> list[Finding]:
        return [Finding(severity=s, key="k", message="m", source="s") for s in severities]

    assert model.worst(of()) is None
    assert model.worst(of(model.INFO)) == model.INFO
    assert model.worst(of(model.INFO, model.ERROR, model.WARNING)) == model.ERROR
    assert rules.CheckReport(
        release=None, version=None, settings=[], findings=of(model.WARNING)
    ).worst() == (model.WARNING)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x 60999", None),  # one side unreadable
        ("32768 y", None),
        ("0 60999", (0, 60999)),  # 0 is a port number all the same
        ("", None),
        ("65535 65535", (65535, 65535)),
    ],
)
def test_port_range_edges(text: str, expected: tuple[int, int] | None) -> None:
    assert parse_port_range(text) == expected


# (range, ip_local_reserved_ports) -> usable ephemeral ports, counted by hand
USABLE = [
    ((40000, 40999), "", 1000),
    ((40000, 40999), None, 1000),
    ((40000, 40999), "40500", 999),
    ((40000, 40999), "40000,40999", 998),  # both ends inclusive
    ((40000, 40999), "39000-40009", 990),  # only the part inside counts
    ((40000, 40001), "40000-40001", 0),  # all reserved
    ((40000, 40001), "1-65535", 0),
    ((5, 5), "5", 0),
    ((5, 5), "4,6", 1),
]


@pytest.mark.parametrize(("port_range", "reserved", "usable"), USABLE)
def test_usable_ports(port_range, reserved, usable) -> None:
    from tcptune.model import usable_ports

    assert usable_ports(port_range, reserved) == usable


def test_reserved_ports_skip_what_is_not_a_port_or_range() -> None:
    assert reserved_ports("8080,,9000,", 1, 65535) == 2  # empty parts
    assert reserved_ports("x-9000,9001", 1, 65535) == 1  # one side not a number
    assert reserved_ports("9000-y,9001", 1, 65535) == 1
    assert reserved_ports(" 9000 - 9002 , 9005", 1, 65535) == 4  # blanks anywhere
