"""The loader model, pure: each rule of procps `sysctl --system` and systemd-sysctl on a hand-made
layout. Every expected answer here is what procps-ng 4.0.2 and systemd 252 left on Linux 6.18 in
a fresh network namespace (docs/kernel-facts.md, "sysctl.d: the loaders"); the generated layouts
of tests/test_loaders_differential.py hold the model to both programs."""

from __future__ import annotations

import pytest

from tcptune import sysctld
from tcptune.model import CONF_MASK, CONF_UNKNOWN, PROCPS, SYSTEMD, ConfFile
from tcptune.sysctld import BootModel, kernel_ints, persistence

KEY = "net.ipv4.tcp_fin_timeout"
IDLE = "net.ipv4.tcp_keepalive_time"
INTVL = "net.ipv4.tcp_keepalive_intvl"


def conf(where: str, text: str = "", state: str = "text", reason: str = "") -> ConfFile:
    """A file from its path: '/etc/sysctl.d/10-a.conf' or '/etc/sysctl.conf'."""
    directory, _, name = where.lstrip("/").rpartition("/")
    if where == "/etc/sysctl.conf":
        directory = ""
    return ConfFile(
        directory=directory, name=name, path=where, text=text, state=state, reason=reason
    )


def values(files: list[ConfFile], key: str = KEY, cmdline: str | None = None) -> dict:
    model = BootModel(files, cmdline)
    found = {}
    for loader in (PROCPS, SYSTEMD):
        answer = model.answer(key, loader)
        found[loader] = answer.value if answer.known else "?"
    return found


# (files, key, procps, systemd): None = no file sets the key
CASES = {
    "an /etc name masks the vendor file": (
        [conf("/usr/lib/sysctl.d/50-a.conf", f"{KEY} = 31"), conf("/etc/sysctl.d/50-a.conf")],
        KEY,
        None,
        None,
    ),
    "names sort across directories": (
        [
            conf("/etc/sysctl.d/10-x.conf", f"{KEY} = 33"),
            conf("/usr/lib/sysctl.d/90-y.conf", f"{KEY} = 34"),
        ],
        KEY,
        "34",
        "34",
    ),
    "sysctl.conf last, procps only": (
        [conf("/etc/sysctl.d/99-z.conf", f"{KEY} = 35"), conf("/etc/sysctl.conf", f"{KEY} = 36")],
        KEY,
        "36",
        "35",
    ),
    "a dangling link masks": (
        [
            conf("/etc/sysctl.d/50-a.conf", state=CONF_MASK, reason="a link to nothing"),
            conf("/usr/lib/sysctl.d/50-a.conf", f"{KEY} = 32"),
        ],
        KEY,
        None,
        None,
    ),
    "a directory masks": (
        [
            conf("/etc/sysctl.d/50-a.conf", state=CONF_MASK, reason="a directory"),
            conf("/run/sysctl.d/50-a.conf", f"{KEY} = 33"),
        ],
        KEY,
        None,
        None,
    ),
    "/lib/sysctl.d is read by both": (
        [conf("/lib/sysctl.d/70-c.conf", f"{KEY} = 40")],
        KEY,
        "40",
        "40",
    ),
    "byte order of names": (
        [conf("/etc/sysctl.d/a.conf", f"{KEY} = 41"), conf("/etc/sysctl.d/B.conf", f"{KEY} = 42")],
        KEY,
        "41",
        "41",
    ),
    "only *.conf": ([conf("/etc/sysctl.d/99-x.conf.bak", f"{KEY} = 43")], KEY, None, None),
    "hidden names: procps only": (
        [conf("/etc/sysctl.d/.conf", f"{KEY} = 68")],
        KEY,
        "68",
        None,
    ),
    "an explicit key beats a later glob": (
        [
            conf("/etc/sysctl.d/10-a.conf", f"{KEY} = 36"),
            conf("/etc/sysctl.d/90-b.conf", "net.ipv4.tcp_fin_time* = 37"),
        ],
        KEY,
        "36",
        "36",
    ),
    "an explicit key beats an earlier glob": (
        [
            conf("/etc/sysctl.d/10-a.conf", "net.ipv4.tcp_fin_time* = 38"),
            conf("/etc/sysctl.d/90-b.conf", f"{KEY} = 39"),
        ],
        KEY,
        "39",
        "39",
    ),
    "-key keeps a glob off": (
        [conf("/etc/sysctl.d/10-a.conf", "net.ipv4.tcp_keepalive_* = 40\n-" + IDLE)],
        IDLE,
        None,
        None,
    ),
    "-key after key: systemd drops the key": (
        [
            conf("/etc/sysctl.d/10-a.conf", f"{KEY} = 41"),
            conf("/etc/sysctl.d/20-b.conf", "-" + KEY),
        ],
        KEY,
        "41",
        None,
    ),
    "CR: systemd splits, procps writes one odd value": (
        [conf("/etc/sysctl.d/10-a.conf", f"{KEY} = 42\r{IDLE} = 43\r\n")],
        IDLE,
        None,
        "43",
    ),
    "FF: procps strips it, systemd does not": (
        [conf("/etc/sysctl.d/10-a.conf", f"\f{KEY} = 44\n")],
        KEY,
        "44",
        None,
    ),
    "U+2028 splits no line": (
        [conf("/etc/sysctl.d/10-a.conf", f"{KEY} = 46\u2028{IDLE} = 47\n")],
        IDLE,
        None,
        None,
    ),
    "0x1a is 26": ([conf("/etc/sysctl.d/1.conf", f"{KEY} = 0x1a")], KEY, "26", "26"),
    "025 is 21": ([conf("/etc/sysctl.d/1.conf", f"{KEY} = 025")], KEY, "21", "21"),
    "a comment after a blank is ignored": (
        [conf("/etc/sysctl.d/1.conf", f"{KEY} = 30 # thirty")],
        KEY,
        "30",
        "30",
    ),
    "a comment glued on is refused": (
        [conf("/etc/sysctl.d/1.conf", f"{KEY} = 30#thirty")],
        KEY,
        None,
        None,
    ),
    "a refused last value: procps keeps the earlier one, systemd writes only the last": (
        [
            conf("/etc/sysctl.d/10-a.conf", f"{KEY} = 48"),
            conf("/etc/sysctl.d/20-a.conf", f"{KEY} = abc"),
        ],
        KEY,
        "48",
        None,
    ),
    "'- key': procps keeps the blank in the path": (
        [conf("/etc/sysctl.d/1.conf", f"- {KEY} = 50")],
        KEY,
        None,
        "50",
    ),
    "'--key': procps drops both dashes": (
        [conf("/etc/sysctl.d/1.conf", f"--{KEY} = 78")],
        KEY,
        "78",
        None,
    ),
    "a double slash escapes procps' explicit-key check": (
        [
            conf("/etc/sysctl.d/10-a.conf", "net//ipv4/tcp_fin_timeout = 63"),
            conf("/etc/sysctl.d/20-a.conf", "net.ipv4.tcp_fin_time* = 64"),
        ],
        KEY,
        "64",
        "63",
    ),
    "systemd keeps a repeated glob in its first place": (
        [
            conf("/etc/sysctl.d/10-a.conf", "net.ipv4.tcp_keepalive_* = 61"),
            conf("/etc/sysctl.d/20-a.conf", "net.ipv4.tcp_keepalive_t* = 62"),
            conf("/etc/sysctl.d/30-a.conf", "net.ipv4.tcp_keepalive_* = 61"),
        ],
        IDLE,
        "61",
        "62",
    ),
    "a line of 1 MiB ends the file for systemd": (
        [conf("/etc/sysctl.d/10-a.conf", "#" * (1024 * 1024) + f"\n{KEY} = 55\n")],
        KEY,
        "55",
        None,
    ),
    "a line just under 1 MiB does not": (
        [conf("/etc/sysctl.d/10-a.conf", "#" * (1024 * 1024 - 1) + f"\n{KEY} = 54\n")],
        KEY,
        "54",
        "54",
    ),
    "NUL: procps ends the line, systemd starts a new one": (
        [conf("/etc/sysctl.d/10-a.conf", f"{KEY} = 52\0{IDLE} = 9\n")],
        IDLE,
        None,
        "9",
    ),
    "bracket and ? globs": (
        [
            conf(
                "/etc/sysctl.d/10-a.conf",
                "net.ipv4.tcp_fin_timeou[t] = 75\nnet.ipv4.tcp_keepalive_tim? = 76",
            )
        ],
        IDLE,
        "76",
        "76",
    ),
    "systemd expands braces, procps does not": (
        [conf("/etc/sysctl.d/10-a.conf", "net.ipv4.tcp_keepalive_{time,intvl}* = 77")],
        INTVL,
        None,
        "77",
    ),
    "vector with a comment": (
        [conf("/etc/sysctl.d/10-a.conf", "net.ipv4.tcp_rmem = 8192 65536 1048576 # x")],
        "net.ipv4.tcp_rmem",
        "8192 65536 1048576",
        "8192 65536 1048576",
    ),
    "a written vector field keeps the others from an earlier line": (
        [
            conf(
                "/etc/sysctl.d/10-a.conf",
                "net.ipv4.tcp_rmem = 4096 87380 6291456\nnet.ipv4.tcp_rmem = 8192",
            )
        ],
        "net.ipv4.tcp_rmem",
        "8192 87380 6291456",
        "?",  # systemd writes only '8192' over whatever boot had
    ),
    "a congestion control with a comment is refused": (
        [conf("/etc/sysctl.d/10-a.conf", "net.ipv4.tcp_congestion_control = reno # x")],
        "net.ipv4.tcp_congestion_control",
        None,
        None,
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_the_loaders_rules(case: str) -> None:
    files, key, procps, systemd = CASES[case]
    assert values(files, key) == {PROCPS: procps, SYSTEMD: systemd}


def test_sources_name_file_and_line_per_loader() -> None:
    files = [
        conf("/etc/sysctl.d/99-tcptune.conf", f"# header\n{KEY} = 30\n"),
        conf("/etc/sysctl.conf", f"# tuned by hand\n{KEY} = 10\n"),
    ]
    checks = {p.loader: p for p in persistence(BootModel(files), KEY, "30")}
    assert checks[SYSTEMD].survives is True
    assert checks[SYSTEMD].answer.source == "/etc/sysctl.d/99-tcptune.conf:2"
    assert checks[PROCPS].survives is False
    assert checks[PROCPS].describe() == "procps: overridden by /etc/sysctl.conf:2 (value 10)"
    assert sysctld.overridden(list(checks.values())) == [checks[PROCPS]]
    assert sysctld.boot_json(list(checks.values()))[PROCPS] == {
        "value": "10",
        "source": "/etc/sysctl.conf:2",
        "unknown": None,
        "refused": [],
        "survives": False,
    }


def test_nothing_sets_the_key() -> None:
    (p, s) = persistence(BootModel([]), KEY, "30")
    assert not p.survives and p.answer.value is None and p.answer.source is None
    assert "not set by any file" in s.describe()


def test_the_kernel_command_line_comes_first() -> None:
    cmdline = (
        f'ro quiet sysctl.{KEY}=25 "sysctl.net.ipv4.tcp_keepalive_time=600" -- sysctl.{INTVL}=9'
    )
    assert sysctld.command_line_sysctls(cmdline) == [
        ("net/ipv4/tcp_fin_timeout", "25"),
        ("net/ipv4/tcp_keepalive_time", "600"),
    ]
    assert values([], KEY, cmdline) == {PROCPS: "25", SYSTEMD: "25"}
    assert values([], INTVL, cmdline) == {PROCPS: None, SYSTEMD: None}  # after '--': for init
    files = [conf("/etc/sysctl.conf", f"{KEY} = 40")]
    assert values(files, KEY, cmdline) == {PROCPS: "40", SYSTEMD: "25"}
    (p, s) = persistence(BootModel(files, cmdline), KEY, "25")
    assert s.survives and s.answer.source == sysctld.COMMAND_LINE
    assert s.describe() == "systemd: persisted by kernel command line"
    assert not p.survives


def test_quoted_values_on_the_command_line() -> None:
    assert sysctld.command_line_sysctls('sysctl/net/ipv4/ip_local_port_range="1024 65000" x') == [
        ("net/ipv4/ip_local_port_range", "1024 65000")
    ]


def test_an_unreadable_file_makes_the_answer_unknown_naming_it() -> None:
    hidden = conf("/etc/sysctl.d/50-secret.conf", state=CONF_UNKNOWN, reason="permission denied")
    model = BootModel([hidden, conf("/usr/lib/sysctl.d/10-v.conf", f"{KEY} = 30")])
    for loader in (PROCPS, SYSTEMD):
        answer = model.answer(KEY, loader)
        assert not answer.known and answer.value is None
        assert answer.unknown == "cannot read /etc/sysctl.d/50-secret.conf: permission denied"
    # a key set explicitly after the unreadable file is known all the same
    later = BootModel([hidden, conf("/usr/lib/sysctl.d/90-v.conf", f"{KEY} = 30")])
    assert [a.value for a in later.answers(KEY)] == ["30", "30"]


def test_a_glob_after_an_unreadable_file_is_unknown_for_procps() -> None:
    """The unread file may name the key, which would keep the glob off it."""
    hidden = conf("/etc/sysctl.d/50-secret.conf", state=CONF_UNKNOWN, reason="permission denied")
    model = BootModel([hidden, conf("/etc/sysctl.d/90-g.conf", "net.ipv4.tcp_fin_* = 30")])
    assert not model.answer(KEY, PROCPS).known
    assert not model.answer(KEY, SYSTEMD).known


def test_a_directory_that_cannot_be_listed_makes_every_answer_unknown() -> None:
    blind = ConfFile(
        directory="etc/sysctl.d",
        name="",
        path="/etc/sysctl.d",
        text="",
        state=CONF_UNKNOWN,
        reason="permission denied",
    )
    model = BootModel([blind, conf("/usr/lib/sysctl.d/99-v.conf", f"{KEY} = 30")])
    for answer in model.answers(KEY):
        assert answer.unknown == "cannot list /etc/sysctl.d: permission denied"


@pytest.mark.parametrize(
    ("data", "count", "stored", "failed"),
    [
        ("30\n", 1, [30], False),
        ("0x1a\n", 1, [26], False),
        ("0X1A\n", 1, [26], False),
        ("025\n", 1, [21], False),
        ("08\n", 1, [], True),
        ("0x\n", 1, [], True),
        ("+5\n", 1, [], True),
        ("-5\n", 1, [-5], False),
        ("30 # x\n", 1, [30], False),
        ("30#x\n", 1, [], True),
        ("30\f\n", 1, [], True),
        ("\f 30\n", 1, [30], False),
        ("\n", 1, [], True),
        ("1 2 3 4\n", 3, [1, 2, 3], False),
        ("1 x\n", 3, [1], True),
        ("1\n", 3, [1], False),
        ("1" * 21 + "\n", 1, [], True),
        ("99999999999999999999\n", 1, [], True),
    ],
)
def test_the_kernel_integer_parser(data: str, count: int, stored: list, failed: bool) -> None:
    """__do_proc_dointvec() and proc_get_long() of kernel/sysctl.c."""
    assert kernel_ints(data, count) == (stored, failed)


def test_out_of_range_values_are_not_guessed() -> None:
    files = [conf("/etc/sysctl.d/1.conf", "net.ipv4.tcp_tw_reuse = 7")]
    answer = BootModel(files).answer("net.ipv4.tcp_tw_reuse", PROCPS)
    assert not answer.known and "may refuse 7" in answer.unknown


def test_port_range_is_all_or_nothing() -> None:
    key = "net.ipv4.ip_local_port_range"
    assert values([conf("/etc/sysctl.d/1.conf", f"{key} = 2000 1000")], key) == {
        PROCPS: None,
        SYSTEMD: None,
    }
    files = [conf("/etc/sysctl.d/1.conf", f"{key} = 10240 65535\n{key} = 20000 10")]
    assert values(files, key) == {PROCPS: "10240 65535", SYSTEMD: None}


def test_reserved_ports_print_as_the_kernel_does() -> None:
    key = "net.ipv4.ip_local_reserved_ports"
    files = [conf("/etc/sysctl.d/1.conf", f"{key} = 9000-9100,8080,8081")]
    assert values(files, key) == {PROCPS: "8080-8081,9000-9100", SYSTEMD: "8080-8081,9000-9100"}


def test_the_lines_each_loader_reads() -> None:
    recycle = "net.ipv4.tcp_tw_recycle"
    files = [
        conf("/etc/sysctl.d/50-a.conf", state=CONF_MASK, reason="a link to /dev/null"),
        conf("/usr/lib/sysctl.d/50-a.conf", f"{recycle} = 1"),
        conf("/etc/sysctl.conf", f"-{recycle} = 0"),
        conf("/etc/sysctl.d/.old.conf", f"{recycle}=1"),
    ]
    model = BootModel(files)
    procps = [
        (where, line.value, line.ignore) for where, line in model.lines_naming(recycle, PROCPS)
    ]
    assert procps == [("/etc/sysctl.d/.old.conf:1", "1", False), ("/etc/sysctl.conf:1", "0", True)]
    assert model.lines_naming(recycle, SYSTEMD) == []  # masked, hidden, or not read at all


def test_lines_holding_a_needle_are_found_in_bounded_steps() -> None:
    """Each search starts past the line it found: an empty needle (every line holds it) ends too."""
    text = "a = 1\nb = 2\n\nc = 3"
    assert [n for n, *_ in sysctld.lf_lines(text, [""])] == [1, 2, 3, 4]
    assert [line for _, _, line, _ in sysctld.lf_lines(text, ["b", "c"])] == ["b = 2", "c = 3"]
    assert [n for n, *_ in sysctld.lf_lines("x\nx\nx\n", ["x"])] == [1, 2, 3]
