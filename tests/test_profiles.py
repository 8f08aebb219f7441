"""Profiles: format, validation messages, extends chains, lookup rules, shipped profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcptune import profiles
from tcptune.errors import BadInput

HEADER = 'description = "test"\n'


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


VALID = [
    ('"net.ipv4.tcp_fin_timeout" = 30', {"net.ipv4.tcp_fin_timeout": "30"}),
    ('"net.ipv4.tcp_fin_timeout" = "30"', {"net.ipv4.tcp_fin_timeout": "30"}),
    (
        '"net.ipv4.ip_local_port_range" = [10240, 65535]',
        {"net.ipv4.ip_local_port_range": "10240 65535"},
    ),
    (
        '"net.ipv4.ip_local_port_range" = "10240   65535"',
        {"net.ipv4.ip_local_port_range": "10240 65535"},
    ),
    (
        '"net.ipv4.ip_local_reserved_ports" = "8080, 9000-9100"',
        {"net.ipv4.ip_local_reserved_ports": "8080,9000-9100"},
    ),
    (
        '"net.ipv4.ip_local_reserved_ports" = [8080, 8443]',
        {"net.ipv4.ip_local_reserved_ports": "8080,8443"},
    ),
    ('"net.ipv4.tcp_tw_recycle" = 0', {"net.ipv4.tcp_tw_recycle": "0"}),
    ('"net.ipv4.tcp_congestion_control" = "bbr"', {"net.ipv4.tcp_congestion_control": "bbr"}),
    (
        '"net.ipv4.tcp_tw_reuse" = 1\n"net.ipv4.tcp_timestamps" = 1',
        {"net.ipv4.tcp_tw_reuse": "1", "net.ipv4.tcp_timestamps": "1"},
    ),
    ('"net.core.netdev_max_backlog" = 5000', {"net.core.netdev_max_backlog": "5000"}),
]


@pytest.mark.parametrize(("body", "expected"), VALID)
def test_valid_profiles(tmp_path: Path, body: str, expected: dict) -> None:
    path = write(tmp_path, "p", HEADER + "[sysctl]\n" + body + "\n")
    profile = profiles.load(str(path), tmp_path)
    assert profile.sysctl == expected


def test_unknown_network_key_is_accepted_with_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "p", HEADER + '[sysctl]\n"net.core.netdev_max_backlog" = 5000\n')
    profile = profiles.load(str(path), tmp_path)
    (warning,) = profile.warnings
    assert "not range-checked" in warning.message
    assert warning.key == "net.core.netdev_max_backlog"


INVALID = [
    ('[sysctl]\n"net.ipv4.tcp_fin_timeout" = 30\n', "description: missing", False),
    ('description = ""\n', "description: must be a non-empty string", False),
    ('description = "x"\ncolour = "blue"\n', "colour: unknown top-level key", False),
    ('description = "x"\nsysctl = 5\n', "sysctl: must be a table", False),
    (HEADER + '[sysctl]\n"kernel.core_pattern" = "|/bin/sh"\n', "only network keys", True),
    (HEADER + '[sysctl]\n"vm.swappiness" = 10\n', "only network keys", True),
    (HEADER + '[sysctl]\n"net.ipv4.../../kernel" = 1\n', "not a valid sysctl key name", True),
    (HEADER + "[sysctl]\nnet.ipv4.tcp_fin_timeout = 30\n", "quote dotted keys", False),
    (
        HEADER + '[sysctl]\n"net.ipv4.tcp_fin_timeout" = "soon"\n',
        "must be an integer, got 'soon'",
        True,
    ),
    (HEADER + '[sysctl]\n"net.ipv4.tcp_fin_timeout" = true\n', "not true/false", True),
    (HEADER + '[sysctl]\n"net.ipv4.tcp_fin_timeout" = -5\n', "-5 is below the minimum 0", True),
    (
        HEADER + '[sysctl]\n"net.ipv4.tcp_keepalive_probes" = 300\n',
        "300 is above the maximum 255",
        True,
    ),
    (HEADER + '[sysctl]\n"net.ipv4.tcp_tw_reuse" = 3\n', "3 is not allowed; use one of: 0", True),
    (
        HEADER + '[sysctl]\n"net.ipv4.tcp_tw_recycle" = 1\n',
        "1 is refused: it drops SYNs from clients behind NAT",
        True,
    ),
    (
        HEADER + '[sysctl]\n"net.ipv4.ip_local_port_range" = [1024]\n',
        "needs exactly 2 integers, got 1",
        True,
    ),
    (
        HEADER + '[sysctl]\n"net.ipv4.ip_local_port_range" = [1024, 2048, 4096]\n',
        "needs exactly 2 integers, got 3",
        True,
    ),
    (
        HEADER + '[sysctl]\n"net.ipv4.ip_local_port_range" = [1024, 70000]\n',
        "70000 is above the maximum 65535",
        True,
    ),
    (
        HEADER + '[sysctl]\n"net.ipv4.ip_local_port_range" = [40000, 30001]\n',
        "low 40000 is above high 30001",
        True,
    ),
    (
        HEADER + '[sysctl]\n"net.ipv4.ip_local_port_range" = [500, 30001]\n',
        "low 500 is below 1024",
        True,
    ),
    (
        HEADER + '[sysctl]\n"net.ipv4.ip_local_port_range" = ["a", "b"]\n',
        "must hold only integers",
        True,
    ),
    (
        HEADER + '[sysctl]\n"net.ipv4.ip_local_reserved_ports" = "9100-9000"\n',
        "ascending order",
        True,
    ),
    (
        HEADER + '[sysctl]\n"net.ipv4.tcp_tw_reuse" = 1\n"net.ipv4.tcp_timestamps" = 0\n',
        "needs tcp_timestamps != 0",
        True,
    ),
    (
        HEADER + '[sysctl]\n"net.ipv4.tcp_rmem" = [4096, 1000000, 65536]\n',
        "'min default max' order",
        True,
    ),
    (HEADER + '[sysctl]\n"net.ipv4.tcp_congestion_control" = "bbr; reboot"\n', "single word", True),
    (HEADER + '[sysctl]\n"net.core.netdev_max_backlog" = {a = 1}\n', "is a table", False),
    (
        HEADER + '[sysctl]\n"net.core.netdev_max_backlog" = 1.5\n',
        "integer, a string, or a list",
        True,
    ),
]


@pytest.mark.parametrize(("text", "message", "names_key"), INVALID)
def test_invalid_profiles_name_the_problem(
    tmp_path: Path, text: str, message: str, names_key: bool
) -> None:
    path = write(tmp_path, "p", text)
    problems, _ = profiles.validate(str(path), tmp_path)
    assert problems, text
    rendered = [str(p) for p in problems]
    assert any(message in line for line in rendered), rendered
    assert all(line.startswith(str(path)) for line in rendered)
    if names_key:
        assert any(
            p.key.startswith("net.") or p.key.startswith(("kernel.", "vm.")) for p in problems
        )
    with pytest.raises(profiles.ProfileError):
        profiles.load(str(path), tmp_path)


@pytest.mark.parametrize("parent", ["../base.toml", "sub/../../base.toml", "/PARENT/base.toml"])
def test_a_parent_outside_the_profile_s_directory_is_refused_although_it_exists(
    tmp_path: Path, parent: str
) -> None:
    """The parent exists and is a valid profile: only the path rule can refuse it."""
    base = write(tmp_path, "base", HEADER + '[sysctl]\n"net.ipv4.tcp_fin_timeout" = 30\n')
    (tmp_path / "profiles" / "sub").mkdir(parents=True)
    assert profiles.load(str(base), tmp_path).sysctl == {"net.ipv4.tcp_fin_timeout": "30"}
    parent = parent.replace("/PARENT", str(tmp_path))
    child = write(tmp_path / "profiles", "child", HEADER + f"extends = {parent!r}\n")
    expected = "is an absolute path" if parent.startswith("/") else "would leave this profile's"
    problems, _ = profiles.validate(str(child), tmp_path)
    assert [p.key for p in problems] == ["extends"]
    assert expected in str(problems[0]), problems
    with pytest.raises(profiles.ProfileError, match=expected):
        profiles.load(str(child), tmp_path)


def test_every_problem_is_listed_not_only_the_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p",
        '[sysctl]\n"vm.swappiness" = 1\n"net.ipv4.tcp_fin_timeout" = -1\n"net.ipv4.tcp_tw_recycle" = 1\n',
    )
    problems, _ = profiles.validate(str(path), tmp_path)
    assert {p.key for p in problems} == {
        "description",
        "vm.swappiness",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_tw_recycle",
    }


def test_malformed_toml_points_at_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p", HEADER + '[sysctl]\n"net.ipv4.tcp_fin_timeout" = \n')
    (problem,) = profiles.validate(str(path), tmp_path)[0]
    assert problem.line == 3
    assert str(problem).startswith(f"{path}:3: invalid TOML")


def test_non_utf8_and_directory_and_huge_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'description = "\xff"\n')
    assert "not UTF-8" in str(profiles.validate(str(bad), tmp_path)[0][0])
    (tmp_path / "dir.toml").mkdir()
    assert "not a regular file" in str(
        profiles.validate(str(tmp_path / "dir.toml"), tmp_path)[0][0]
    )
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"#" * (profiles.MAX_PROFILE_BYTES + 1))
    assert "limited to 1 MiB" in str(profiles.validate(str(huge), tmp_path)[0][0])


def test_extends_chain_merges_child_last(tmp_path: Path) -> None:
    local = profiles.local_dir(tmp_path)
    write(
        local,
        "base",
        'description = "base"\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = 60\n"net.ipv4.tcp_syncookies" = 1\n',
    )
    write(
        local,
        "middle",
        'description = "m"\nextends = "base"\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = 40\n',
    )
    write(
        local,
        "top",
        'description = "t"\nextends = "middle"\n[sysctl]\n"net.ipv4.tcp_tw_reuse" = 1\n',
    )
    profile = profiles.load("top", tmp_path)
    assert profile.chain == ["top", "middle", "base"]
    assert profile.sysctl == {
        "net.ipv4.tcp_fin_timeout": "40",
        "net.ipv4.tcp_syncookies": "1",
        "net.ipv4.tcp_tw_reuse": "1",
    }
    assert profile.origin == {
        "net.ipv4.tcp_fin_timeout": "middle",
        "net.ipv4.tcp_syncookies": "base",
        "net.ipv4.tcp_tw_reuse": "top",
    }


def test_extends_cycle_is_named(tmp_path: Path) -> None:
    local = profiles.local_dir(tmp_path)
    write(local, "a", 'description = "a"\nextends = "b"\n')
    write(local, "b", 'description = "b"\nextends = "c"\n')
    write(local, "c", 'description = "c"\nextends = "a"\n')
    with pytest.raises(profiles.ProfileError) as caught:
        profiles.load("a", tmp_path)
    assert "cycle: a -> b -> c -> a" in caught.value.line()


def test_extends_self_and_missing_parent(tmp_path: Path) -> None:
    local = profiles.local_dir(tmp_path)
    write(local, "selfish", 'description = "s"\nextends = "selfish"\n')
    with pytest.raises(profiles.ProfileError, match="cycle: selfish -> selfish"):
        profiles.load("selfish", tmp_path)
    write(local, "orphan", 'description = "o"\nextends = "nobody-here"\n')
    with pytest.raises(profiles.ProfileError, match="parent 'nobody-here': unknown profile"):
        profiles.load("orphan", tmp_path)


def test_merged_chain_is_checked_across_files(tmp_path: Path) -> None:
    local = profiles.local_dir(tmp_path)
    write(local, "base", 'description = "b"\n[sysctl]\n"net.ipv4.tcp_timestamps" = 0\n')
    write(
        local,
        "child",
        'description = "c"\nextends = "base"\n[sysctl]\n"net.ipv4.tcp_tw_reuse" = 1\n',
    )
    with pytest.raises(profiles.ProfileError, match="needs tcp_timestamps"):
        profiles.load("child", tmp_path)


def test_local_profile_shadows_the_shipped_one(tmp_path: Path) -> None:
    assert profiles.find("server-profile", tmp_path).parent == profiles.shipped_dir()
    local = write(profiles.local_dir(tmp_path), "server-profile", HEADER)
    assert profiles.find("server-profile", tmp_path) == local
    assert profiles.available(tmp_path)["server-profile"] == local


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("", "empty profile name"),
        ("Server", "invalid profile name"),
        ("-x", "invalid profile name"),
        ("a" * 65, "longer than 64"),
        ("bad\x00name", "NUL"),
        ("../etc/passwd", "does not exist"),
        ("/nonexistent/x.toml", "does not exist"),
        ("serverprofile", "did you mean server-profile"),
    ],
)
def test_name_rules_and_lookup_errors(tmp_path: Path, argument: str, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        profiles.find(argument, tmp_path)
    assert message in caught.value.line()


def test_path_arguments_are_paths(tmp_path: Path) -> None:
    path = write(tmp_path / "elsewhere", "mine", HEADER)
    assert profiles.find(str(path), tmp_path) == path


SHIPPED = ["kernel-defaults", "server-profile", "client-profile", "proxy-profile"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_validate_without_warnings(tmp_path: Path, name: str) -> None:
    profile = profiles.load(name, tmp_path)
    assert profile.description
    assert profile.warnings == []
    assert profile.sysctl.get("net.ipv4.tcp_tw_recycle", "0") == "0"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_explain_every_value(name: str) -> None:
    """Each value has a comment saying why (on the line above it, or in the block above)."""
    lines = (profiles.shipped_dir() / f"{name}.toml").read_text().splitlines()
    for number, line in enumerate(lines):
        if line.startswith('"net.'):
            block = lines[max(0, number - 6) : number]
            assert any(previous.startswith("#") for previous in block), line


def test_shipped_profiles_never_lower_time_wait_protection(tmp_path: Path) -> None:
    for name in SHIPPED:
        sysctl = profiles.load(name, tmp_path).sysctl
        assert "net.ipv4.tcp_max_tw_buckets" not in sysctl
        assert sysctl.get("net.ipv4.tcp_timestamps", "1") != "0"
        assert int(sysctl.get("net.ipv4.tcp_fin_timeout", "60")) >= 60
