"""sysctl.d parsing and precedence under the two loaders (pure; checked against the real loaders
in tests/test_apply_netns.py)."""

from __future__ import annotations

import pytest

from tcptune import sysctld
from tcptune.model import PROCPS, SYSTEMD, ConfFile, parse_assignments
from tcptune.sysctld import boot_value, persistence

KEY = "net.ipv4.tcp_fin_timeout"


def conf(directory: str, name: str, text: str) -> ConfFile:
    path = f"/{directory}/{name}" if directory else "/etc/sysctl.conf"
    return ConfFile(directory=directory, name=name, path=path, text=text)


def test_parse_syntax() -> None:
    text = (
        "# comment\n"
        "; also a comment\n"
        "\n"
        "net.ipv4.tcp_fin_timeout = 30\n"
        "  net/ipv4/tcp_keepalive_time=600  \n"
        "-net.ipv4.tcp_tw_reuse = 1\n"
        "net.ipv4.ip_local_port_range =   1024\t65000\n"
        "no equals sign here\n"
    )
    assigned = parse_assignments(text, "/etc/sysctl.d/x.conf")
    assert [(a.key, a.value, a.line, a.ignore_failure) for a in assigned] == [
        ("net.ipv4.tcp_fin_timeout", "30", 4, False),
        ("net.ipv4.tcp_keepalive_time", "600", 5, False),
        ("net.ipv4.tcp_tw_reuse", "1", 6, True),
        ("net.ipv4.ip_local_port_range", "1024 65000", 7, False),
    ]


@pytest.mark.parametrize(
    ("files", "procps", "systemd"),
    [
        # the same name in /etc masks the vendor file
        (
            [
                conf("usr/lib/sysctl.d", "50-a.conf", f"{KEY} = 31"),
                conf("etc/sysctl.d", "50-a.conf", f"{KEY} = 32"),
            ],
            "32",
            "32",
        ),
        # file names sort across directories: 90-y in /usr/lib beats 10-x in /etc
        (
            [
                conf("etc/sysctl.d", "10-x.conf", f"{KEY} = 33"),
                conf("usr/lib/sysctl.d", "90-y.conf", f"{KEY} = 34"),
            ],
            "34",
            "34",
        ),
        # /etc/sysctl.conf: last for procps, ignored by systemd
        (
            [
                conf("etc/sysctl.d", "99-z.conf", f"{KEY} = 35"),
                conf("", "sysctl.conf", f"{KEY} = 36"),
            ],
            "36",
            "35",
        ),
        # a /dev/null mask (read as empty) hides the vendor file
        (
            [
                conf("etc/sysctl.d", "50-a.conf", ""),
                conf("usr/lib/sysctl.d", "50-a.conf", f"{KEY} = 37"),
            ],
            None,
            None,
        ),
        # within one file the last assignment wins
        ([conf("run/sysctl.d", "60-b.conf", f"{KEY} = 38\n{KEY} = 39\n")], "39", "39"),
        # /lib/sysctl.d is read by procps only
        ([conf("lib/sysctl.d", "70-c.conf", f"{KEY} = 40")], "40", None),
        # byte order: upper case sorts before lower case
        (
            [
                conf("etc/sysctl.d", "a.conf", f"{KEY} = 41"),
                conf("etc/sysctl.d", "B.conf", f"{KEY} = 42"),
            ],
            "41",
            "41",
        ),
        # only *.conf files count
        ([conf("etc/sysctl.d", "99-x.conf.bak", f"{KEY} = 43")], None, None),
        # a glob key matches
        ([conf("etc/sysctl.d", "10-glob.conf", "net.ipv4.tcp_fin_* = 44")], "44", "44"),
    ],
)
def test_precedence(files, procps, systemd) -> None:
    for loader, expected in ((PROCPS, procps), (SYSTEMD, systemd)):
        winner = boot_value(files, KEY, loader).winner
        assert (winner.value if winner else None) == expected, loader


def test_persistence_names_the_overriding_file_and_line() -> None:
    files = [
        conf("etc/sysctl.d", "99-tcptune.conf", f"{KEY} = 30\n"),
        conf("", "sysctl.conf", f"# tuned by hand\n{KEY} = 10\n"),
    ]
    checks = {p.loader: p for p in persistence(files, KEY, "30")}
    assert checks[SYSTEMD].survives is True
    assert checks[PROCPS].survives is False
    assert checks[PROCPS].describe("30") == f"procps: overridden by /etc/sysctl.conf:2 ({KEY} = 10)"
    assert sysctld.overridden(list(checks.values())) == [checks[PROCPS]]


def test_nothing_sets_the_key() -> None:
    (p, s) = persistence([], KEY, "30")
    assert not p.survives and p.winner is None
    assert "not set by any file" in s.describe("30")
