"""tcptune.metrics, line for line: the exposition of one census and of one check PROFILE, written
out by hand from docs/monitoring.md's table (names, types, labels) and the text format's rules
(https://prometheus.io/docs/instrumenting/exposition_formats/: values as Go's ParseFloat reads
them, "+Inf", "-Inf", "NaN"). promtool checks the same text in tests/test_metrics.py."""

from __future__ import annotations

import math

import pytest

from tcptune import census, metrics
from tcptune.census import Census, CensusInput, Group, Owner
from tcptune.model import ERROR, INFO, WARNING, Finding
from tcptune.rates import Growth


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (3, "3"),
        (2.0, "2"),
        (-2.0, "-2"),
        (0.12, "0.12"),
        (float(2**53 - 1), "9007199254740991"),
        (-float(2**53 - 1), "-9007199254740991"),
        (float(2**53), "9007199254740992.0"),  # beyond it a float need not be a whole number
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (0.5, "0.5"),
    ],
)
def test_values_as_the_text_format_writes_them(value: float, text: str) -> None:
    assert metrics.format_value(value) == text


def owner(pid: int | None, command: str | None, uid: int, count: int) -> Owner:
    return Owner(pid=pid, command=command, cmdline=None, uid=uid, count=count, local=[], remote=[])


STATES = dict.fromkeys(census.STATE_NAMES.values(), 0) | {"TIME_WAIT": 7, "CLOSE_WAIT": 9}
CENSUS = Census(
    source=census.NETLINK,
    states=STATES,
    total=16,
    orphans=1,
    fin_wait2_orphans=1,
    ephemeral=7,
    established_ephemeral=0,
    groups=[
        Group(
            family="ipv4",
            local_address="10.0.0.1",
            remote_address="10.0.0.2",
            remote_port=80,
            sockets=5,
            time_wait=5,
        ),
        Group(
            family="ipv6",
            local_address="fd00::1",
            remote_address="fd00::2",
            remote_port=443,
            sockets=2,
            time_wait=2,
        ),
    ],
    close_wait=[],
    interrupted=False,
)
FACTS = CensusInput(
    census=CENSUS,
    owners=[owner(11, "web", 33, 4), owner(10, "leaky", 0, 4), owner(None, None, 0, 1)],
    sysctl={"tcp_max_tw_buckets": "262144"},
    counters={"TW": 5, "TWKilled": 0, "TWRecycled": 2, "TCPTimeWaitOverflow": 1},
    tw_live=None,
    port_range=(32768, 60999),
    usable=10,
)
NS = 'netns="4026531840",netns_owner="host"'
FINDINGS = [
    Finding(key="k", severity=WARNING, message="w", source="s"),
    Finding(key="k", severity=WARNING, message="w2", source="s"),
    Finding(key="k", severity=ERROR, message="e", source="s"),
]


def help_and_type(name: str) -> list[str]:
    kind, _, text = metrics.METRICS[name]
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]


def test_a_census_line_for_line() -> None:
    growth = Growth(
        window=120.0,
        total=1.5,
        per_owner={("10", "leaky", "0"): 2.0, ("11", "web", "33"): 0.5, ("12", "x", "0"): 0.25},
    )
    text = metrics.sockets(
        FACTS, FINDINGS, top=1, netns="4026531840", netns_owner="host", now=1700000000.0,
        growth=growth,
    )  # fmt: skip
    expected = [
        *help_and_type("tcptune_sockets"),
        *(f'tcptune_sockets{{{NS},state="{s}"}} {n}' for s, n in STATES.items()),
        *help_and_type("tcptune_time_wait_buckets_used"),
        f"tcptune_time_wait_buckets_used{{{NS}}} 8",  # TIME_WAIT 7 + the FIN_WAIT2 orphan
        *help_and_type("tcptune_time_wait_buckets_max"),
        f"tcptune_time_wait_buckets_max{{{NS}}} 262144",
        *help_and_type("tcptune_tcpext_tw_total"),
        f"tcptune_tcpext_tw_total{{{NS}}} 5",
        *help_and_type("tcptune_tcpext_tw_killed_total"),
        f"tcptune_tcpext_tw_killed_total{{{NS}}} 0",
        *help_and_type("tcptune_tcpext_tw_recycled_total"),
        f"tcptune_tcpext_tw_recycled_total{{{NS}}} 2",
        *help_and_type("tcptune_tcpext_time_wait_overflow_total"),
        f"tcptune_tcpext_time_wait_overflow_total{{{NS}}} 1",
        *help_and_type("tcptune_close_wait_sockets"),
        # two owners of 4: the smaller key ("10") is the top 1; the rest (4 + 1) is "other"
        f'tcptune_close_wait_sockets{{command="leaky",{NS},pid="10",uid="0"}} 4',
        f'tcptune_close_wait_sockets{{command="other",{NS},pid="other",uid=""}} 5',
        *help_and_type("tcptune_close_wait_growth_per_minute"),
        f'tcptune_close_wait_growth_per_minute{{command="leaky",{NS},pid="10",uid="0"}} 2',
        f'tcptune_close_wait_growth_per_minute{{command="other",{NS},pid="other",uid=""}} 0.75',
        *help_and_type("tcptune_close_wait_growth_window_seconds"),
        f"tcptune_close_wait_growth_window_seconds{{{NS}}} 120",
        *help_and_type("tcptune_port_pressure_ratio"),
        f'tcptune_port_pressure_ratio{{local="10.0.0.1",{NS},remote="10.0.0.2:80"}} 0.5',
        *help_and_type("tcptune_findings"),
        f'tcptune_findings{{command="sockets",{NS},profile="",severity="info"}} 0',
        f'tcptune_findings{{command="sockets",{NS},profile="",severity="warning"}} 2',
        f'tcptune_findings{{command="sockets",{NS},profile="",severity="error"}} 1',
        *help_and_type("tcptune_last_run_timestamp_seconds"),
        f'tcptune_last_run_timestamp_seconds{{command="sockets",{NS},profile=""}} 1700000000',
    ]
    assert text.splitlines() == expected
    assert text.endswith("\n")


def test_an_ipv6_destination_is_bracketed_and_missing_counters_are_left_out() -> None:
    facts = CensusInput(
        census=CENSUS, owners=[], sysctl={}, counters={"TW": 3}, tw_live=11,
        port_range=None, usable=4,
    )  # fmt: skip
    text = metrics.sockets(facts, [], top=5, netns="n", netns_owner="o", now=0.0)
    lines = text.splitlines()
    assert 'tcptune_port_pressure_ratio{local="fd00::1",netns="n",netns_owner="o",' \
        'remote="[fd00::2]:443"} 0.5' in lines  # fmt: skip
    assert 'tcptune_time_wait_buckets_used{netns="n",netns_owner="o"} 11' in lines  # sockstat tw
    assert "tcptune_time_wait_buckets_max" not in text  # the cap is unreadable: no series
    assert 'tcptune_tcpext_tw_total{netns="n",netns_owner="o"} 3' in lines
    assert "tcptune_tcpext_tw_killed_total" not in text
    assert 'tcptune_close_wait_sockets{command="other",netns="n",netns_owner="o",pid="other",' \
        'uid=""} 0' in lines  # fmt: skip
    assert "growth" not in text
    nothing = CensusInput(
        census=CENSUS, owners=[], sysctl={}, counters=None, tw_live=None, port_range=None,
        usable=None,
    )  # fmt: skip
    text = metrics.sockets(nothing, [], top=5, netns="n", netns_owner="o", now=0.0)
    assert "tcptune_tcpext" not in text and "tcptune_port_pressure_ratio" not in text


def test_owners_with_the_same_key_are_one_series() -> None:
    facts = CensusInput(
        census=CENSUS, owners=[owner(None, None, 0, 2), owner(None, None, 0, 3)], sysctl={},
        counters=None, tw_live=None, port_range=None, usable=None,
    )  # fmt: skip
    lines = metrics.sockets(facts, [], top=5, netns="n", netns_owner="o", now=0.0).splitlines()
    unknown = [line for line in lines if 'pid="unknown"' in line and not line.startswith("#")]
    assert unknown == [
        'tcptune_close_wait_sockets{command="unknown",netns="n",netns_owner="o",pid="unknown",'
        'uid="0"} 5'
    ]


def test_check_profile_line_for_line() -> None:
    settings = [
        metrics.Setting(key="net.ipv4.tcp_fin_timeout", target="30", in_sync=True,
                        persisted=(("procps", None), ("systemd", True))),
        metrics.Setting(key="net.ipv4.tcp_tw_reuse_delay", target="1000", in_sync=None,
                        persisted=(("procps", False),)),
        metrics.Setting(key="net.ipv4.tcp_tw_reuse", target="1", in_sync=False,
                        persisted=(("procps", False), ("systemd", True))),
    ]  # fmt: skip
    findings = [Finding(key="k", severity=INFO, message="i", source="s")]
    text = metrics.check_profile(
        "server-profile", settings, findings, netns="n", netns_owner="o", now=1.5
    )
    label = 'netns="n",netns_owner="o",profile="server-profile"'
    assert text.splitlines() == [
        *help_and_type("tcptune_setting_in_sync"),
        f'tcptune_setting_in_sync{{key="net.ipv4.tcp_fin_timeout",{label}}} 1',
        f'tcptune_setting_in_sync{{key="net.ipv4.tcp_tw_reuse",{label}}} 0',
        *help_and_type("tcptune_setting_persisted"),
        f'tcptune_setting_persisted{{key="net.ipv4.tcp_fin_timeout",loader="systemd",{label}}} 1',
        f'tcptune_setting_persisted{{key="net.ipv4.tcp_tw_reuse",loader="procps",{label}}} 0',
        f'tcptune_setting_persisted{{key="net.ipv4.tcp_tw_reuse",loader="systemd",{label}}} 1',
        *help_and_type("tcptune_findings"),
        f'tcptune_findings{{command="check",{label},severity="info"}} 1',
        f'tcptune_findings{{command="check",{label},severity="warning"}} 0',
        f'tcptune_findings{{command="check",{label},severity="error"}} 0',
        *help_and_type("tcptune_last_run_timestamp_seconds"),
        f'tcptune_last_run_timestamp_seconds{{command="check",{label}}} 1.5',
    ]


def test_plain_check_publishes_its_findings_only() -> None:
    text = metrics.check(FINDINGS, netns="n", netns_owner="o", now=2.0)
    assert [line for line in text.splitlines() if not line.startswith("#")] == [
        'tcptune_findings{command="check",netns="n",netns_owner="o",profile="",severity="info"} 0',
        'tcptune_findings{command="check",netns="n",netns_owner="o",profile="",severity="warning"} 2',
        'tcptune_findings{command="check",netns="n",netns_owner="o",profile="",severity="error"} 1',
        'tcptune_last_run_timestamp_seconds{command="check",netns="n",netns_owner="o",profile=""} 2',
    ]  # fmt: skip


def test_nothing_to_publish_is_an_empty_file() -> None:
    assert metrics.Exposition().text() == ""
