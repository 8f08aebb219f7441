"""Glob lines against glibc's own glob(3): both loaders expand a glob key with glob() on
/proc/sys, systemd-sysctl with GLOB_BRACE as well (docs/kernel-facts.md, "sysctl.d: the
loaders"). Here glob() itself, called through ctypes, answers which paths of a tree under a
temporary directory a pattern matches; the model must set exactly those keys, under each loader.
No root, no namespace: the tree is plain files."""

from __future__ import annotations

import ctypes
import ctypes.util
import posixpath
import random
from pathlib import Path

import pytest

from tcptune.model import PROCPS, SYSTEMD, ConfFile
from tcptune.sysctld import BootModel

GLOB_BRACE = 1 << 10  # glibc <glob.h>


class _Glob(ctypes.Structure):
    _fields_ = [
        ("gl_pathc", ctypes.c_size_t),
        ("gl_pathv", ctypes.POINTER(ctypes.c_char_p)),
        ("gl_offs", ctypes.c_size_t),
        ("gl_flags", ctypes.c_int),
        ("gl_closedir", ctypes.c_void_p),
        ("gl_readdir", ctypes.c_void_p),
        ("gl_opendir", ctypes.c_void_p),
        ("gl_lstat", ctypes.c_void_p),
        ("gl_stat", ctypes.c_void_p),
    ]


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
_LIBC.glob.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_Glob)]
_LIBC.globfree.argtypes = [ctypes.POINTER(_Glob)]


def libc_glob(root: Path, pattern: str, flags: int) -> set[str]:
    """The paths below `root` glob(3) finds for `pattern` (relative to root)."""
    found = _Glob()
    prefix = str(root) + "/"
    code = _LIBC.glob((prefix + pattern).encode(), flags, None, ctypes.byref(found))
    try:
        if code != 0:
            return set()  # GLOB_NOMATCH (or an unreadable directory: none here)
        paths = {found.gl_pathv[i].decode() for i in range(found.gl_pathc)}
    finally:
        _LIBC.globfree(ctypes.byref(found))
    return {posixpath.normpath(p).removeprefix(prefix) for p in paths}  # '//' is '/'


# A /proc/sys-like tree: the watched keys and neighbours that differ by a character or two.
NAMES = {
    "net/ipv4": [
        "tcp_fin_timeout",
        "tcp_keepalive_time",
        "tcp_keepalive_intvl",
        "tcp_keepalive_probes",
        "tcp_rmem",
        "tcp_wmem",
        "tcp_mem",
        "tcp_tw_reuse",
        "tcp_tw_reuse_delay",
        "tcp_syncookies",
        "tcp_fin",
        "udp_mem",
        "ip-forward",
        "Tcp_X9",
        "a",
        "b",
        "ab",
        "a_b",
        "a-b",
        "z",
    ],
    "net/core": ["somaxconn", "rmem_max", "wmem_max", "a", "b-c"],
    "net/ipv6/conf/eth0": ["forwarding", "mtu"],
    "net/ipv6/conf/all": ["forwarding", "mtu"],
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("procsys")
    paths = []
    for directory, names in NAMES.items():
        (root / directory).mkdir(parents=True, exist_ok=True)
        for name in names:
            (root / directory / name).write_text("0\n")
            paths.append(f"{directory}/{name}")
    return root, paths


def model_matches(pattern: str, paths: list[str], loader: str) -> set[str]:
    """The paths a sysctl.d line `PATTERN = 1` sets under `loader`."""
    conf = ConfFile(
        directory="etc/sysctl.d", name="g.conf", path="/etc/sysctl.d/g.conf", text=f"{pattern} = 1"
    )
    model = BootModel([conf])
    found = set()
    for path in paths:
        answer = model.answer(path.replace("/", "."), loader)
        # a vector key (tcp_rmem) written in one field is set, its other fields unknown
        if answer.value == "1" or "sets 1 of the 3 fields" in answer.unknown:
            found.add(path)
    return found


def expanded(root: Path, pattern: str, flags: int) -> set[str]:
    """What a loader writes for the line: glob(3)'s paths when the key holds a glob character
    ('*', '?' or '[': both loaders test for these before they call glob()), else the one path
    named, when it exists."""
    if any(char in pattern for char in "*?["):
        # a directory found (a pattern ending in '/') is no key: writing it fails
        return {p for p in libc_glob(root, pattern, flags) if (root / p).is_file()}
    return {pattern} if (root / pattern).is_file() else set()


# Patterns worked out by hand, with what glob(3) must find (relative to net/ipv4 unless the
# pattern says otherwise); the test checks each against glob() as well.
HAND = [
    (
        "net/ipv4/tcp_keepalive_*",
        {"tcp_keepalive_time", "tcp_keepalive_intvl", "tcp_keepalive_probes"},
    ),
    ("net/ipv4/tcp_fin_time?ut", {"tcp_fin_timeout"}),
    ("net/ipv4/tcp_fin*", {"tcp_fin", "tcp_fin_timeout"}),
    ("net/ipv4/?", {"a", "b", "z"}),
    ("net/ipv4/??", {"ab"}),
    ("net/ipv4/[ab]", {"a", "b"}),
    ("net/ipv4/[!ab]", {"z"}),
    ("net/ipv4/[^ab]", {"z"}),
    ("net/ipv4/[a-c]", {"a", "b"}),
    ("net/ipv4/[b-z]", {"b", "z"}),
    ("net/ipv4/a[_-]b", {"a_b", "a-b"}),
    ("net/ipv4/a[-_]b", {"a_b", "a-b"}),
    ("net/ipv4/a[]_]b", {"a_b"}),
    ("net/ipv4/a[!]_]b", {"a-b"}),
    ("net/ipv4/[a", set()),  # an unclosed bracket is itself
    ("net/ipv4/\\a*", {"a", "ab", "a_b", "a-b"}),
    ("net/ipv4/\\a", set()),  # no glob character: a key named '\\a'
    ("net/ipv4/a", {"a"}),
    ("net/ipv4/\\*", set()),  # an escaped star is a star
    ("net/ipv4/tcp_*mem", {"tcp_rmem", "tcp_wmem", "tcp_mem"}),
    ("net/ipv4/tcp_tw_*", {"tcp_tw_reuse", "tcp_tw_reuse_delay"}),
    ("net/ipv4/*", set(NAMES["net/ipv4"])),
    ("net/*/a", {"net/ipv4/a", "net/core/a"}),
    (
        "net/ipv6/conf/*/forwarding",
        {"net/ipv6/conf/eth0/forwarding", "net/ipv6/conf/all/forwarding"},
    ),
    ("net/ipv4/*/x", set()),  # '*' stays within one component
    ("net/ipv4/[T]cp_X[0-9]", {"Tcp_X9"}),
    ("net/ipv4/tcp_X9", set()),  # case counts
    ("Xnet/ipv4/tcp_fin_time*", set()),  # no top directory of that name
    ("net/ipv4/[Xz]", {"z"}),  # 'X' is a member like any other
    ("net/ipv4/Tcp_[ab]9", set()),
    ("net/ipv4[/]a", set()),  # a bracket cannot hold the '/' glob() splits at
    ("net/ipv4/a[[::]]b", set()),  # an empty class name
    ("net/ipv4/[z-a]*", set()),  # a reversed range matches nothing
    ("net/ipv4/[b-b]", {"b"}),  # a range of one: its ends are members
    ("net/ipv4/[a-a]*", {"a", "ab", "a_b", "a-b"}),
    ("net/ipv4/[\\", set()),  # a '[' then a last '\\' escaping nothing
    ("net/ipv4/?\\", set()),
    ("net/ipv4/[z-ab]", {"b"}),
    ("net/ipv4/a[\\]_]b", {"a_b"}),  # '\\' escapes inside a bracket too
    ("net/ipv4/[\\]]*", set()),
    ("net/ipv4/[a\\]", set()),  # the ']' escaped: no bracket, a name '[a]'
    ("net/ipv4/[[:upper:]]cp_X9", {"Tcp_X9"}),
    ("net/ipv4/a[[:punct:]]b", {"a_b", "a-b"}),
    ("net/ipv4/[![:lower:]]*", {"Tcp_X9"}),
    ("net/ipv4/tcp_X[[:digit:]]", set()),
    ("net/ipv4/Tcp_X[[:digit:]]", {"Tcp_X9"}),
]


def _full(pattern: str, names: set[str]) -> set[str]:
    return {n if n.startswith("net/") else f"net/ipv4/{n}" for n in names}


@pytest.mark.parametrize(("pattern", "names"), HAND, ids=[f"hand{i}" for i in range(len(HAND))])
def test_hand_made_globs(tree, pattern: str, names: set[str]) -> None:
    root, paths = tree
    want = _full(pattern, names)
    assert expanded(root, pattern, 0) == want  # the table is glob(3)'s
    assert model_matches(pattern, paths, PROCPS) == want
    assert model_matches(pattern, paths, SYSTEMD) == want


# Braces: systemd only (GLOB_BRACE); procps takes '{' literally.
BRACES = [
    ("net/ipv4/tcp_{rmem,wmem}*", {"tcp_rmem", "tcp_wmem"}),
    ("net/ipv4/tcp_keepalive_{time,probes}*", {"tcp_keepalive_time", "tcp_keepalive_probes"}),
    ("net/ipv4/{a}?", {"ab"}),
    ("net/ipv4/{a,{b,z}}*", {"a", "ab", "a_b", "a-b", "b", "z"}),
    ("net/ipv4/a{,b}[b_]", {"ab"}),  # a[b_] or ab[b_]
    ("net/ipv4/a{,_}[b]", {"ab", "a_b"}),
    ("net/ipv4/{a,b*", set()),  # unclosed: literal
    ("net/{ipv4,core}/[a]", {"net/ipv4/a", "net/core/a"}),
    ("net/ipv4/{a,b}{,b}?", {"ab"}),
    ("net/ipv4/tcp_{rmem,wmem}", set()),  # no glob character: not expanded, a key of that name
    ("{/net}/ipv4/tcp_fin_time*", {"tcp_fin_timeout"}),  # /proc/sys//net/...: one slash
    ("{/net,/x}/ipv4/tcp_fin_time*", {"tcp_fin_timeout"}),
    ("{ net}/ipv4/tcp_fin_time*", set()),  # ' net' is no directory
    ("net/ipv4/\\{a,b}*", set()),  # an escaped brace opens no group
]


@pytest.mark.parametrize(
    ("pattern", "names"), BRACES, ids=[f"brace{i}" for i in range(len(BRACES))]
)
def test_braces_are_systemd_s(tree, pattern: str, names: set[str]) -> None:
    root, paths = tree
    want = _full(pattern, names)
    assert expanded(root, pattern, GLOB_BRACE) == want
    assert model_matches(pattern, paths, SYSTEMD) == want
    assert model_matches(pattern, paths, PROCPS) == expanded(root, pattern, 0)


PIECES = [
    "*", "?", "a", "b", "_", "-", "tcp_", "mem", "r", "w", "keepalive_", "time", "**",
    "[ab]", "[!a]", "[^_]", "[a-m]", "[]a]", "[-b]", "[a-]", "[!-]", "[[]", "[!]]", "[^]a]",
    "[]-a]", "[*]", "[?]", "[a-c-e]", "[z-a]", "[-]", "[!]", "[]]", "[]-]", "[a-]]",
    "[\\]]", "[\\a]", "[a\\]", "[a-\\z]", "[\\a-c]",
    "[[:alpha:]]", "[[:digit:]_]", "[![:lower:]]", "[[:alpha:]", "[[:upper:][:punct:]]",
    "\\a", "\\_", "\\[", "\\?", "\\\\", "\\{", "\\}", "[", "]", ",", "}",
    "{a,b}", "{rmem,wmem}", "{,_}", "{a,b\\,c}", "{[a],b}", "{a,}", "{}", "{,}", "{a\\}b,c}",
]  # fmt: skip
DIRECTORIES = ["net/ipv4/", "net/*/", "net/ipv?/", "net/[ic]*/", "net/{ipv4,core}/"]


def random_pattern(rng: random.Random) -> str:
    return rng.choice(DIRECTORIES) + "".join(rng.choice(PIECES) for _ in range(rng.randrange(1, 5)))


def test_random_globs_match_as_glob_3_does(tree) -> None:
    root, paths = tree
    rng = random.Random(13)
    disagreements = []
    for _ in range(300):
        pattern = random_pattern(rng)
        for loader, flags in ((PROCPS, 0), (SYSTEMD, GLOB_BRACE)):
            want = expanded(root, pattern, flags)
            got = model_matches(pattern, paths, loader)
            if got != want:
                disagreements.append((pattern, loader, sorted(got ^ want)))
    assert disagreements == []
