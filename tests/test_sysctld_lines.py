"""Lines that the two loaders split and strip differently (CR, NUL, VT, FF and other control
bytes, '-' prefixes, a second '=', a 1 MiB line), the kernel command line, and the boot summary
users read. The LINES table is what procps-ng 4.0.2 `sysctl --system` and systemd 252's
systemd-sysctl leave in each key: test_the_table_is_what_the_real_loaders_do runs both programs
on every row inside a private network and mount namespace (tests/loader_layouts.py --table);
the fast test holds the model to the same table, with the line each value comes from."""

from __future__ import annotations

import json

import pytest
from conftest import run_in_namespace

from tcptune import sysctld
from tcptune.model import PROCPS, SYSTEMD, ConfFile
from tcptune.sysctld import BootModel

FIN = "net.ipv4.tcp_fin_timeout"
IDLE = "net.ipv4.tcp_keepalive_time"
INTVL = "net.ipv4.tcp_keepalive_intvl"
FILE = "/etc/sysctl.d/10-a.conf"
LONG = "#" * (1024 * 1024)  # a line systemd-sysctl refuses, and stops reading the file at

# (text of /etc/sysctl.d/10-a.conf, key, procps, systemd): (value, line) or None when the key
# keeps the value it had
LINES = [
    # a trailing FF or VT: procps strips it (C isspace), systemd keeps it and the kernel refuses
    (f"{FIN} = 31\f\n", FIN, ("31", 1), None),
    (f"{FIN} = 43\v\n", FIN, ("43", 1), None),
    # a VT before '=': part of systemd's key
    (f"{FIN}\v= 32\n", FIN, ("32", 1), None),
    # a VT before the '-': procps strips it and sees the prefix, systemd sees neither
    (f"\v-{FIN} = 33\n", FIN, ("33", 1), None),
    # the first '=' splits (a second one is in the value, after the number and a blank)
    (f"{FIN}=35 # a=b\r\n", FIN, ("35", 1), ("35", 1)),
    # NUL: procps ends the line at the first one, systemd starts a new line at each
    (f"{FIN} = 37\0x\0y\n", FIN, ("37", 1), ("37", 1)),
    (f"# a\0\n{FIN} = 36\0\n", FIN, ("36", 2), ("36", 2)),
    # comments after blanks only procps strips
    (f"\f# {FIN} = 39\n", FIN, None, None),
    (f"\f;{FIN} = 39\n", FIN, None, None),
    (f"\f\n{FIN} = 40\r\n", FIN, ("40", 2), ("40", 2)),
    (f"  {FIN} = 44\r\n", FIN, ("44", 1), ("44", 1)),
    # '-' prefixes on lines with a CR
    (f"-{FIN} = 41\r\n", FIN, ("41", 1), ("41", 1)),
    (f"--{FIN} = 47\r\n", FIN, ("47", 1), None),
    (f"{IDLE} = 45\n{INTVL} = 45\n-{IDLE}\r\n", IDLE, ("45", 1), None),
    (f"net.ipv4.tcp_keepalive_* = 42\n-{IDLE}\r\n", IDLE, None, None),
    (f"net.ipv4.tcp_keepalive_* = 42\n-{IDLE}\r\n", INTVL, ("42", 1), ("42", 1)),
    (f"net.ipv4.tcp_keepalive_* = 42\n-{IDLE}\0\n", IDLE, None, None),
    # a control byte that is no blank to anyone: the kernel refuses the value
    (f"{FIN} =\x1c46\r\n", FIN, None, None),
    (f"{FIN} = \x1c\n", FIN, None, None),
    # a control byte Python counts as a blank and C does not: part of the key for both
    (f"\x1c{FIN} = 51\r\n", FIN, None, None),
    # a name value: procps strips the FF, systemd keeps it and the kernel knows no such name
    (
        "net.ipv4.tcp_congestion_control =\freno\r\n",
        "net.ipv4.tcp_congestion_control",
        ("reno", 1),
        None,
    ),
    # systemd stops at a line of 1 MiB; the lines before it count
    (f"net.ipv4.tcp_keepalive_* = 42\n-{IDLE}\r\n{LONG}\n", IDLE, None, None),
    (f"{FIN} = 50\r\n{LONG}\n{FIN} = 49\r\n", FIN, ("49", 3), ("50", 1)),
    (f"{LONG}\n{FIN} = 49\n", FIN, ("49", 2), None),
    # NUL first: procps's line ends before it begins, systemd's next line starts after it
    (f"\0{FIN} = 52\n", FIN, None, ("52", 1)),
    (f"x\0{FIN} = 64\n", FIN, None, ("64", 1)),
    (f"\0\n{FIN} = 52\n", FIN, ("52", 2), ("52", 2)),
    (f"{FIN} = 63\0\n", FIN, ("63", 1), ("63", 1)),
    # lines too short to set anything, with and without their LF: the line before still counts
    ("net.ipv4.tcp_keepalive_* = 42\n-*\n", IDLE, ("42", 1), ("42", 1)),
    ("net.ipv4.tcp_keepalive_* = 42\n-*", IDLE, ("42", 1), ("42", 1)),
    (f"{FIN} = 57\n-\n", FIN, ("57", 1), ("57", 1)),
    (f"{FIN} = 58\n;\n", FIN, ("58", 1), ("58", 1)),
    (f"{FIN} = 59\nx", FIN, ("59", 1), ("59", 1)),
    (f"{FIN}=6", FIN, ("6", 1), ("6", 1)),
    (f"{FIN}\t=\t62\t\n", FIN, ("62", 1), ("62", 1)),
    # a comment after a blank, and an exclusion after an FF: nothing for either
    (f" #{FIN} = 61\n", FIN, None, None),
    (f"\f-{FIN}\n", FIN, None, None),
    # '-KEY' excludes the key from systemd's globs and earlier lines alone; blanks around it
    (f"{IDLE} = 45\n-{IDLE}\n", IDLE, ("45", 1), None),
    (f"{IDLE} = 46\n -{IDLE}\n", IDLE, ("46", 1), None),
    (f"{IDLE} = 47\n-{IDLE} \f\n", IDLE, ("47", 1), ("47", 1)),
    (f"{IDLE} = 48\n-{IDLE}=\n", IDLE, ("48", 1), None),
]


def model_answers(text: str, key: str) -> dict:
    conf = ConfFile(directory="etc/sysctl.d", name="10-a.conf", path=FILE, text=text)
    model = BootModel([conf])
    found = {}
    for loader in (PROCPS, SYSTEMD):
        answer = model.answer(key, loader)
        assert answer.known, answer.unknown
        found[loader] = None if answer.value is None else (answer.value, answer.source)
    return found


def ids(rows) -> list[str]:
    """Plain ids (a test id holding a control byte cannot be asked for again by name)."""
    return [f"line{i}-{key.rsplit('.', 1)[-1]}" for i, (_, key, *_) in enumerate(rows)]


@pytest.mark.parametrize(("text", "key", "procps", "systemd"), LINES, ids=ids(LINES))
def test_the_model_reads_each_line_as_the_loaders_do(text, key, procps, systemd) -> None:
    def where(found):
        return None if found is None else (found[0], f"{FILE}:{found[1]}")

    assert model_answers(text, key) == {PROCPS: where(procps), SYSTEMD: where(systemd)}


@pytest.mark.netns
def test_the_table_is_what_the_real_loaders_do(netns, tmp_path) -> None:
    layouts = tmp_path / "layouts.json"
    layouts.write_text(json.dumps([{FILE: text} for text, *_ in LINES]))
    script = str(__import__("pathlib").Path(__file__).resolve().parent / "loader_layouts.py")
    result = run_in_namespace(["-n", "-m"], [script, "--table", str(layouts)], timeout=600)
    wrong = []
    for (text, key, procps, systemd), real in zip(LINES, result["results"], strict=True):
        for loader, want in ((PROCPS, procps), (SYSTEMD, systemd)):
            expected = result["untouched"][key] if want is None else want[0]
            if real[loader][key] != expected:
                wrong.append((text[:60], key, loader, expected, real[loader][key]))
    assert wrong == []


# --- the kernel command line: lib/cmdline.c next_arg() and process_sysctl_arg() ----------------

CMDLINES = [
    ("sysctl.net.ipv4.tcp_fin_timeout=25", [("net/ipv4/tcp_fin_timeout", "25")]),
    ("sysctl/net/ipv4/tcp_fin_timeout=25", [("net/ipv4/tcp_fin_timeout", "25")]),
    (" \t sysctl.net.ipv4.tcp_fin_timeout=25  ", [("net/ipv4/tcp_fin_timeout", "25")]),
    # "sysctl" must be followed by '.' or '/'
    ("sysctlXnet.ipv4.tcp_fin_timeout=25", []),
    ("sysctl=25", []),
    ("xsysctl.net.ipv4.tcp_fin_timeout=25", []),
    # no value, or an empty one: nothing is written
    ("sysctl.net.ipv4.tcp_fin_timeout", []),
    ("sysctl.net.ipv4.tcp_fin_timeout=", []),
    # quotes: a leading one opens a quoted word, a '"' inside toggles the quoting
    ('""x sysctl.net.ipv4.tcp_fin_timeout=25', [("net/ipv4/tcp_fin_timeout", "25")]),
    ('"sysctl.net.ipv4.tcp_fin_timeout=25"', [("net/ipv4/tcp_fin_timeout", "25")]),
    ('sysctl.net.ipv4.tcp_fin_timeout="25"', [("net/ipv4/tcp_fin_timeout", "25")]),
    ('sysctl.net.ipv4.tcp_fin_timeout=25"', [("net/ipv4/tcp_fin_timeout", '25"')]),
    ('x" sysctl.net.ipv4.tcp_fin_timeout=25', []),  # the '"' opens a quote: one word to the end
    # a control byte is no blank to the kernel (isspace): it stays in the word
    ("\x1csysctl.net.ipv4.tcp_fin_timeout=25", []),
    ("a \x1csysctl.net.ipv4.tcp_fin_timeout=25", []),
    ("a=1 \x1csysctl.net.ipv4.tcp_fin_timeout=25", []),
    # '--' ends the kernel's parameters; what follows is init's
    ("-- sysctl.net.ipv4.tcp_fin_timeout=25", []),
    ("--=x sysctl.net.ipv4.tcp_fin_timeout=25", [("net/ipv4/tcp_fin_timeout", "25")]),
    (
        "sysctl.net.ipv4.tcp_fin_timeout=25 quiet sysctl.net.ipv4.tcp_fin_timeout=26",
        [("net/ipv4/tcp_fin_timeout", "25"), ("net/ipv4/tcp_fin_timeout", "26")],
    ),
]


@pytest.mark.parametrize(
    ("cmdline", "found"), CMDLINES, ids=[f"cmdline{i}" for i in range(len(CMDLINES))]
)
def test_kernel_command_line_sysctls(cmdline: str, found: list) -> None:
    assert sysctld.command_line_sysctls(cmdline) == found


def test_a_value_the_kernel_refuses_on_the_command_line() -> None:
    model = BootModel([], 'ro sysctl.net.ipv4.tcp_fin_timeout=25" quiet')
    for answer in model.answers(FIN):
        assert (answer.value, answer.source, answer.refused) == (None, None, ("/proc/cmdline",))
    (check, _) = sysctld.persistence(model, FIN, "25")
    assert check.describe() == (
        "procps: not set by any file (the kernel default applies at boot); the kernel refuses the "
        "value of /proc/cmdline"
    )


# --- what users read about boot -------------------------------------------------------------------


def conf(path: str, text: str, state: str = "text", reason: str = "") -> ConfFile:
    directory, _, name = path.lstrip("/").rpartition("/")
    if path == "/etc/sysctl.conf":
        directory = ""
    return ConfFile(
        directory=directory, name=name, path=path, text=text, state=state, reason=reason
    )


def summary(files: list[ConfFile], target: str, cmdline: str | None = None, **kw) -> str:
    checks = sysctld.persistence(BootModel(files, cmdline), FIN, target)
    return sysctld.boot_summary(checks, **kw)


def test_boot_summaries() -> None:
    both = [conf("/etc/sysctl.d/10-a.conf", f"{FIN} = 30\n")]
    assert summary(both, "30") == "survives reboot"
    assert summary(both, "45") == "overridden (procps, systemd)"
    assert summary(both, "45", detailed=True) == (
        "procps: overridden by /etc/sysctl.d/10-a.conf:1 (value 30); systemd: overridden by "
        "/etc/sysctl.d/10-a.conf:1 (value 30)"
    )
    assert summary([], "30", "sysctl.net.ipv4.tcp_fin_timeout=30") == (
        "survives reboot (kernel command line)"
    )
    # the command line for one loader, a file for the other
    procps_only = [conf("/etc/sysctl.conf", f"{FIN} = 30\n")]
    assert summary(procps_only, "30", "sysctl.net.ipv4.tcp_fin_timeout=30") == "survives reboot"
    assert summary(procps_only, "30") == "survives under procps"
    assert summary([], "30") == "not persisted"
    hidden = conf("/etc/sysctl.d/50-x.conf", "", state="unknown", reason="permission denied")
    assert summary([hidden], "30") == "unknown (procps, systemd)"
    assert summary([hidden], "30", detailed=True) == (
        "procps: unknown (cannot read /etc/sysctl.d/50-x.conf: permission denied); systemd: "
        "unknown (cannot read /etc/sysctl.d/50-x.conf: permission denied)"
    )
    # overridden under one loader, unknown under none, survives under the other
    mixed = [conf("/etc/sysctl.d/10-a.conf", f"{FIN} = 30\n"), procps_only[0]]
    mixed[1] = conf("/etc/sysctl.conf", f"{FIN} = 31\n")
    assert summary(mixed, "30") == "overridden (procps)"


def test_reserved_ports_as_the_kernel_prints_them() -> None:
    key = "net.ipv4.ip_local_reserved_ports"
    text = f"{key} = 8002,80,443,8000-8001,8003\n"
    for answer in BootModel([conf("/etc/sysctl.d/1.conf", text)]).answers(key):
        assert answer.value == "80,443,8000-8003"
    single = f"{key} = 9000\n"
    for answer in BootModel([conf("/etc/sysctl.d/1.conf", single)]).answers(key):
        assert answer.value == "9000"


def test_a_boot_value_written_another_way_is_the_same_value() -> None:
    """The value a file sets survives when the kernel would print it the same way as the target:
    blanks collapsed, no blanks around list commas (the kernel prints 'a b c' and '1,2-3')."""
    rmem = "net.ipv4.tcp_rmem"
    files = [conf("/etc/sysctl.d/10-a.conf", f"{rmem} = 4096\t131072   6291456\n")]
    checks = sysctld.persistence(BootModel(files), rmem, "4096  131072 6291456")
    assert [p.survives for p in checks] == [True, True]
    reserved = "net.ipv4.ip_local_reserved_ports"
    files = [conf("/etc/sysctl.d/10-a.conf", f"{reserved} = 9000-9100,8080\n")]
    checks = sysctld.persistence(BootModel(files), reserved, "8080, 9000-9100")
    assert [p.survives for p in checks] == [True, True]
    assert sysctld.boot_summary(checks) == "survives reboot"


def test_where_each_loader_reads_a_line_naming_a_key() -> None:
    recycle = "net.ipv4.tcp_tw_recycle"
    text = f"# x\r\n-{recycle} = 0\r\n-{recycle}\r\n"
    model = BootModel([conf(FILE, text)])
    for loader in (PROCPS, SYSTEMD):
        found = [(w, line.value, line.ignore) for w, line in model.lines_naming(recycle, loader)]
        assert found == [(f"{FILE}:2", "0", True), (f"{FILE}:3", None, False)], loader


# kernel/sysctl.c proc_get_long(): at most 21 characters are looked at (TMPBUFLEN - 1), a '-' counts
# only when more follows, strtoul base 0 (0x hex, 0 octal) must not pass ULONG_MAX, a number that
# fills all 21 characters is refused, and what follows must be a blank, a tab or a newline.
PROC_GET_LONG = [
    ("-5", 1, [-5], False),  # a '-' with one more character, no newline
    ("1 5", 2, [1, 5], False),  # the last number ends the data
    ("-\t5\n", 1, [], True),  # a '-' then no digit
    ("X5\n", 1, [], True),
    ("0X\n", 1, [], True),  # '0' then 'X' with no hex digit after it: octal 0, then 'X'
    ("18446744073709551615\n", 1, [18446744073709551615], False),  # ULONG_MAX
    ("18446744073709551616\n", 1, [], True),  # one more
    ("0" * 20 + "1\n", 1, [], True),  # 21 characters, small as it is
    ("0" * 19 + "1\n", 1, [1], False),  # 20
]


@pytest.mark.parametrize(
    ("data", "count", "stored", "failed"),
    PROC_GET_LONG,
    ids=[f"long{i}" for i in range(len(PROC_GET_LONG))],
)
def test_what_proc_get_long_reads(data: str, count: int, stored: list, failed: bool) -> None:
    assert sysctld.kernel_ints(data, count) == (stored, failed)


# What the kernel makes of one write (sysctld.kernel_write): (key, fields before, data written,
# fields after, refused, part of the reason it cannot be told or ""). Rows marked True are also
# written to the real kernel by test_the_writes_are_what_the_kernel_does, in a network namespace of
# their own; there "bbr" stands for an algorithm other than reno that a network namespace may
# choose (tcp_allowed_congestion_control). The others hold a name no algorithm has or a value the
# kernel may refuse for a reason tcptune cannot see, where the model says so.
CC, RESERVED, RANGE, OTHER = (
    "net.ipv4.tcp_congestion_control",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.conf.all.forwarding",
)
WRITES = [
    # proc_dostring(): up to a newline or a NUL, at most 15 characters (TCP_CA_NAME_MAX - 1)
    (CC, ("bbr",), "reno\n", ("reno",), False, "", True),
    (CC, ("bbr",), "reno\0cubic\0x", ("reno",), False, "", True),
    (CC, ("bbr",), "reno\ncubic\nx", ("reno",), False, "", True),
    (CC, ("reno",), "cu bic\n", ("reno",), True, "", True),
    (CC, ("reno",), "c!\n", ("reno",), True, "", True),
    (CC, ("bbr",), "abcdefghijklmno\n", ("abcdefghijklmno",), False, "", False),
    (CC, ("bbr",), "abcdefghijklmnop\n", ("bbr",), False, "longer than an algorithm", False),
    (CC, ("bbr",), "abcdefghijklmno!\n", ("bbr",), False, "longer than an algorithm", False),
    # proc_do_large_bitmap(): printed back sorted, ranges merged
    (RESERVED, ("",), "8082,8080-8081\n", ("8080-8082",), False, "", True),
    (RESERVED, ("",), "8080;8081\n", ("",), False, "does not model how the kernel reads", False),
    # ipv4_local_port_range(): both fields or none, the start at least 1024, not reversed
    (RANGE, ("32768", "60999"), "1024 65000\n", ("1024", "65000"), False, "", True),
    (RANGE, ("32768", "60999"), "40000 30000\n", ("32768", "60999"), True, "", True),
    (RANGE, ("32768", "60999"), "40000\n", ("40000", "60999"), False, "", True),
    (RANGE, ("32768", "60999"), "x\n", ("32768", "60999"), True, "", True),
    (RANGE, ("32768", "60999"), "500 600\n", ("32768", "60999"), False,
     "below ip_unprivileged_port_start", False),
    (RANGE, (None, None), "40000\n", (sysctld._UNKNOWN, sysctld._UNKNOWN), False,
     "sets part of the range", False),
    (FIN, ("60",), "30\n", ("30",), False, "", True),
    (FIN, ("60",), "30#x\n", ("60",), True, "", True),
    # past what the knowledge base knows the key takes (jiffies: INT_MAX / 1000 seconds)
    (FIN, ("60",), "2147484\n", ("60",), False, "may refuse 2147484", False),
    # a key tcptune has no entry for: one word of digits or a name is kept as written; more
    # words, or anything else, tcptune cannot tell
    (OTHER, ("1",), "0\n", ("0",), False, "", True),
    (OTHER, ("1",), "0 \t1\n", ("1",), False, "does not know how many fields", False),
    (OTHER, ("1",), "a$b\n", ("1",), False, "does not know how the kernel reads", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("key", "before", "data", "after", "refused", "uncertain", "real"),
    WRITES,
    ids=[f"write{i}" for i in range(len(WRITES))],
)
def test_what_one_write_does(key, before, data, after, refused, uncertain, real) -> None:
    done = sysctld.kernel_write(key, before, data)
    assert (done.fields, done.refused) == (after, refused)
    if uncertain:
        assert uncertain in done.uncertain
    else:
        assert done.uncertain == ""


WRITE_IN_NAMESPACE = """
import json, os, sys
with open("/proc/sys/net/ipv4/tcp_allowed_congestion_control") as f:
    other = [name for name in f.read().split() if name != "reno"][0]
rows, out = json.loads(sys.argv[1]), [other]
for key, before, data in rows:
    before = [other if field == "bbr" else field for field in before]
    path = "/proc/sys/" + key.replace(".", "/")
    with open(path, "w") as f:
        f.write(" ".join(before) + "\\n")
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data.encode())
        refused = False
    except OSError:
        refused = True
    finally:
        os.close(fd)
    with open(path) as f:
        out.append([f.read().split(), refused])
print(json.dumps(out))
"""


@pytest.mark.netns
def test_the_writes_are_what_the_kernel_does(netns) -> None:
    rows = [row for row in WRITES if row[-1]]
    script = ["-c", WRITE_IN_NAMESPACE, json.dumps([[k, b, d] for k, b, d, *_ in rows])]
    other, *found = run_in_namespace(["-n"], script)
    wanted = [
        [[other if field == "bbr" else field for field in " ".join(after).split()], refused]
        for _, _, _, after, refused, _, _ in rows
    ]
    assert found == wanted


def test_every_refused_write_is_named() -> None:
    files = [conf(FILE, f"{FIN} = 30#x\n")]
    model = BootModel(files, 'sysctl.net.ipv4.tcp_fin_timeout=25"')
    (check, _) = sysctld.persistence(model, FIN, "25")
    assert check.describe() == (
        "procps: not set by any file (the kernel default applies at boot); the kernel refuses the "
        f"value of /proc/cmdline, {FILE}:1"
    )
