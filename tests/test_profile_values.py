"""One profile entry at a time: the value each key takes as the kernel prints it, and the exact
problem a bad one gets (the line `profiles validate` prints). The ranges are the kernel's, as the
knowledge base records them from its sources (docs/kernel-facts.md): each limit is accepted and
the number beyond it refused."""

from __future__ import annotations

import os

import pytest

from tcptune import keys, profiles
from tcptune.errors import BadInput
from tcptune.profiles import Problem, ProfileError


def entry(key: str, value: object) -> tuple[str | None, list[str], list[str]]:
    problems: list[Problem] = []
    warnings: list[Problem] = []
    got = profiles.check_value(key, value, "p.toml", problems, warnings)
    return got, [p.message for p in problems], [w.message for w in warnings]


def accepted(key: str, value: object) -> str | None:
    got, problems, warnings = entry(key, value)
    assert problems == [] and warnings == [], (key, value, problems)
    return got


def refused(key: str, value: object) -> str:
    got, problems, _ = entry(key, value)
    assert got is None and len(problems) == 1, (key, value, got, problems)
    return problems[0]


LIMITED = [(k, s) for k, s in keys.KEYS.items() if s.type == keys.INT]


@pytest.mark.parametrize(("key", "spec"), LIMITED, ids=[k for k, _ in LIMITED])
def test_each_integer_key_takes_its_limits_and_refuses_beyond(key: str, spec) -> None:
    if spec.minimum is not None:
        assert accepted(key, spec.minimum) == str(spec.minimum)
        assert refused(key, spec.minimum - 1) == (
            f"{spec.minimum - 1} is below the minimum {spec.minimum}"
        )
    if spec.maximum is not None:
        assert accepted(key, str(spec.maximum)) == str(spec.maximum)
        assert refused(key, spec.maximum + 1) == (
            f"{spec.maximum + 1} is above the maximum {spec.maximum}"
        )


@pytest.mark.parametrize(
    ("key", "value", "normalised"),
    [
        ("net.ipv4.tcp_fin_timeout", 30, "30"),
        ("net.ipv4.tcp_fin_timeout", " 30 ", "30"),
        ("net.ipv4.tcp_tw_reuse", "2", "2"),
        ("net.ipv4.tcp_tw_recycle", 0, "0"),
        ("net.ipv4.ip_local_port_range", [10240, 65535], "10240 65535"),
        ("net.ipv4.ip_local_port_range", " 10240   65535 ", "10240 65535"),
        ("net.ipv4.ip_local_port_range", ["1", 65535], "1 65535"),
        ("net.ipv4.tcp_rmem", "4096 131072 6291456", "4096 131072 6291456"),
        ("net.ipv4.ip_local_reserved_ports", "8080, 9000-9100", "8080,9000-9100"),
        ("net.ipv4.ip_local_reserved_ports", [8080, 9000], "8080,9000"),
        ("net.ipv4.ip_local_reserved_ports", "", ""),
        ("net.ipv4.ip_local_reserved_ports", "1,65535,9000-9000", "1,65535,9000-9000"),
        ("net.ipv4.ip_local_reserved_ports", "1-65535", "1-65535"),
        ("net.ipv4.tcp_congestion_control", " bbr ", "bbr"),
        ("net.ipv4.tcp_congestion_control", "cubic", "cubic"),
    ],
)
def test_values_as_the_kernel_prints_them(key: str, value: object, normalised: str) -> None:
    assert accepted(key, value) == normalised


PORTS = "'8080,9000-9100'"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("net.ipv4.tcp_fin_timeout", True, "must be a number, not true/false"),
        ("net.ipv4.tcp_fin_timeout", "0x1e", "must be an integer, got '0x1e'"),
        ("net.ipv4.tcp_fin_timeout", 1.5, "must be an integer, got 1.5"),
        ("net.ipv4.tcp_fin_timeout", [30], "must be an integer, got [30]"),
        ("net.ipv4.ip_local_port_range", [1024], "needs exactly 2 integers, got 1"),
        ("net.ipv4.ip_local_port_range", "1 2 3", "needs exactly 2 integers, got 3"),
        ("net.ipv4.ip_local_port_range", [0, 100], "0 is below the minimum 1"),
        ("net.ipv4.ip_local_port_range", [1024, 65536], "65536 is above the maximum 65535"),
        ("net.ipv4.ip_local_port_range", "a b", "must hold only integers, got 'a b'"),
        ("net.ipv4.ip_local_port_range", [1024, True], "must hold only integers, got [1024, True]"),
        (
            "net.ipv4.ip_local_port_range",
            5,
            'must be a list of 2 integers or a string like "1 2"',
        ),
        ("net.ipv4.tcp_wmem", [0, 1, 2], "0 is below the minimum 1"),
        ("net.ipv4.ip_local_reserved_ports", "0", "'0' is not within 1..65535 in ascending order"),
        (
            "net.ipv4.ip_local_reserved_ports",
            "65536",
            "'65536' is not within 1..65535 in ascending order",
        ),
        (
            "net.ipv4.ip_local_reserved_ports",
            "9100-9000",
            "'9100-9000' is not within 1..65535 in ascending order",
        ),
        (
            "net.ipv4.ip_local_reserved_ports",
            "0-5",
            "'0-5' is not within 1..65535 in ascending order",
        ),
        (
            "net.ipv4.ip_local_reserved_ports",
            "65535-65536",
            "'65535-65536' is not within 1..65535 in ascending order",
        ),
        (
            "net.ipv4.ip_local_reserved_ports",
            "80-",
            "'80-' is not a port or a range like 9000-9100",
        ),
        (
            "net.ipv4.ip_local_reserved_ports",
            [True],
            f"a port list holds integers or a string like {PORTS}",
        ),
        (
            "net.ipv4.ip_local_reserved_ports",
            5,
            f"must be a string like {PORTS} or a list of ports",
        ),
        (
            "net.ipv4.tcp_congestion_control",
            "cubic;reboot",
            "must be a single word such as 'cubic', got 'cubic;reboot'",
        ),
        (
            "net.ipv4.tcp_congestion_control",
            5,
            "must be a single word such as 'cubic', got 5",
        ),
        ("kernel.panic", 1, "only network keys (net.ipv4.*, net.ipv6.*, net.core.*) are allowed"),
        ("net.ipv5.x", 1, "only network keys (net.ipv4.*, net.ipv6.*, net.core.*) are allowed"),
        ("net.ipv4..tcp_fin_timeout", 1, "not a valid sysctl key name"),
        ("net.ipv4.", 1, "not a valid sysctl key name"),
        ("net.ipv4/tcp_fin_timeout", 1, "not a valid sysctl key name"),
        ("../../etc/x", 1, "not a valid sysctl key name"),
        ("x/y", 1, "not a valid sysctl key name"),
        ("net.core.netdev_max_backlog", [], "value must be an integer, a string, or a list of integers"),
        ("net.core.netdev_max_backlog", True, "value must be an integer, a string, or a list of integers"),
        ("net.core.netdev_max_backlog", [1, True], "value must be an integer, a string, or a list of integers"),
        ("net.core.netdev_max_backlog", 1.5, "value must be an integer, a string, or a list of integers"),
    ],
)  # fmt: skip
def test_the_problem_of_each_bad_value(key: str, value: object, message: str) -> None:
    assert refused(key, value) == message


def test_an_enum_names_its_values_with_their_meaning() -> None:
    message = refused("net.ipv4.tcp_tw_reuse", 3)
    assert message.startswith("3 is not allowed; use one of: 0 (")
    for value, meaning in keys.KEYS["net.ipv4.tcp_tw_reuse"].values.items():
        assert f"{value} ({meaning})" in message


def test_a_harmful_value_is_refused_with_its_source_and_the_way_out() -> None:
    spec = keys.KEYS["net.ipv4.tcp_tw_recycle"]
    message = refused("net.ipv4.tcp_tw_recycle", 1)
    assert message == (
        "1 is refused: it drops SYNs from clients behind NAT and the key is gone since 4.12 "
        f"(source: {spec.sources[0]}; {spec.removed_source}); use 0 or leave it out"
    )


@pytest.mark.parametrize(
    ("value", "normalised"), [(5000, "5000"), ("  a   b ", "a b"), ([1, 2], "1 2")]
)
def test_a_key_tcptune_does_not_know_is_taken_with_a_warning(
    value: object, normalised: str
) -> None:
    got, problems, warnings = entry("net.ipv4.conf.eth-1.rp_filter", value)
    assert got == normalised and problems == []
    assert warnings == ["not in tcptune's knowledge base: accepted, but not range-checked"]


@pytest.mark.parametrize(
    ("sysctl", "messages"),
    [
        ({"net.ipv4.ip_local_port_range": "1024 65535"}, []),
        ({"net.ipv4.ip_local_port_range": "2000 2000"}, []),
        (
            {"net.ipv4.ip_local_port_range": "1023 65535"},
            ["low 1023 is below 1024: ephemeral ports would take privileged ports"],
        ),
        ({"net.ipv4.ip_local_port_range": "2000 1999"}, ["low 2000 is above high 1999"]),
        (
            {"net.ipv4.ip_local_port_range": "1000 999"},
            [
                "low 1000 is above high 999",
                "low 1000 is below 1024: ephemeral ports would take privileged ports",
            ],
        ),
        (
            {"net.ipv4.tcp_tw_reuse": "2", "net.ipv4.tcp_timestamps": "0"},
            ["tcp_tw_reuse = 2 needs tcp_timestamps != 0, but this profile sets it to 0"],
        ),
        (
            {"net.ipv4.tcp_tw_reuse": "1", "net.ipv4.tcp_timestamps": "0"},
            ["tcp_tw_reuse = 1 needs tcp_timestamps != 0, but this profile sets it to 0"],
        ),
        ({"net.ipv4.tcp_tw_reuse": "0", "net.ipv4.tcp_timestamps": "0"}, []),
        ({"net.ipv4.tcp_tw_reuse": "1", "net.ipv4.tcp_timestamps": "2"}, []),
        ({"net.ipv4.tcp_tw_reuse": "1"}, []),
        ({"net.ipv4.tcp_rmem": "1 1 1", "net.ipv4.tcp_wmem": "1 2 3"}, []),
        ({"net.ipv4.tcp_rmem": "1 2 1"}, ["must be in 'min default max' order"]),
        ({"net.ipv4.tcp_wmem": "2 1 3"}, ["must be in 'min default max' order"]),
    ],
)
def test_rules_between_keys(sysctl: dict[str, str], messages: list[str]) -> None:
    found = profiles.cross_key_problems(sysctl, "p.toml")
    assert [p.message for p in found] == messages
    assert all(p.path == "p.toml" for p in found)


def test_a_problem_reads_as_file_line_key_message() -> None:
    assert str(Problem(path="p.toml", key="k", message="m", line=3)) == "p.toml:3: k: m"
    assert str(Problem(path="p.toml", key="k", message="m")) == "p.toml: k: m"
    assert str(Problem(path="p.toml", key="", message="m")) == "p.toml: m"
    assert str(Problem(path="p\x1b[2J.toml", key="", message="m")) == "p\\x1b[2J.toml: m"


def test_the_error_for_an_invalid_profile_names_the_first_problem_and_counts_the_rest() -> None:
    one = ProfileError([Problem(path="p.toml", key="k", message="m")])
    assert str(one) == "invalid profile: p.toml: k: m"
    assert one.hint == "check every problem with: tcptune profiles validate PATH"
    three = ProfileError([Problem(path="p.toml", key="k", message="m")] * 3)
    assert str(three) == "invalid profile: p.toml: k: m (and 2 more problems)"
    two = ProfileError([Problem(path="p.toml", key="k", message="m")] * 2)
    assert str(two) == "invalid profile: p.toml: k: m (and 1 more problem)"
    untrusted = ProfileError([Problem(path="p.toml", key="", message="m", untrusted=True)])
    assert str(untrusted) == "refusing profile p.toml: m"
    assert untrusted.hint == "only root may be able to change what root reads; fix it as shown"


HINT = "name a profile, or a file in this profile's directory such as base.toml"


@pytest.mark.parametrize(
    ("parent", "problem"),
    [
        ("base", None),
        ("base.toml", None),
        ("sub/base.toml", None),
        ("..base.toml", None),  # a name that starts with dots, not a step up
        ("a\x00.toml", f"'a\\x00.toml' contains a NUL byte ({HINT})"),
        ("/etc/x.toml", f"'/etc/x.toml' is an absolute path, which a parent may not be ({HINT})"),
        ("sub/../../x.toml", f"'sub/../../x.toml' would leave this profile's directory with '..' ({HINT})"),
        ("..", f"'..' would leave this profile's directory with '..' ({HINT})"),
    ],
)  # fmt: skip
def test_where_a_parent_may_come_from(parent: str, problem: str | None) -> None:
    assert profiles.parent_path_problem(parent) == problem


@pytest.mark.parametrize(
    ("name", "message", "hint"),
    [
        ("", "empty profile name", "names look like server-profile: [a-z0-9][a-z0-9_-]*"),
        ("a\x00b", "profile name contains a NUL byte", "names are [a-z0-9][a-z0-9_-]*"),
        ("a" * 65, "profile name longer than 64 characters", "use a shorter name"),
        (
            "Server",
            "invalid profile name 'Server'",
            "names are lower-case letters, digits, '-' and '_' ([a-z0-9][a-z0-9_-]*); to load "
            "a file, give a path containing '/' or ending in .toml",
        ),
    ],
)
def test_profile_names(name: str, message: str, hint: str) -> None:
    with pytest.raises(BadInput) as raised:
        profiles.check_name(name)
    assert str(raised.value) == message and raised.value.hint == hint
    profiles.check_name("a" * 64)
    profiles.check_name("server-profile_2")


def test_the_shipped_profiles_come_from_the_wheel_when_it_holds_them(tmp_path, monkeypatch) -> None:
    package = tmp_path / "site" / "tcptune"
    package.mkdir(parents=True)
    monkeypatch.setattr(profiles, "__file__", str(package / "profiles.py"))
    assert profiles.shipped_dir() == tmp_path / "site" / "profiles"  # a source tree
    (package / "_profiles").mkdir()
    assert profiles.shipped_dir() == package / "_profiles"  # a wheel


def test_an_unreadable_file_keeps_its_name_and_path(tmp_path) -> None:
    path = tmp_path / "broken.toml"
    path.write_bytes(b"\xff")
    read = profiles.read_file(path, "shown-name")
    assert read.name == "shown-name" and read.path == path
    assert [str(p) for p in read.problems] == [f"{path}:1: not UTF-8 text"]


def test_a_parent_named_by_path_is_read_from_the_child_s_directory(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.toml").write_text(
        'description = "b"\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = 20\n'
    )
    (tmp_path / "base.toml").write_text(
        'description = "b"\nextends = "sub/base.toml"\n[sysctl]\n"net.ipv4.tcp_tw_reuse" = 1\n'
    )
    (tmp_path / "child.toml").write_text(
        'description = "c"\nextends = "base.toml"\n[sysctl]\n"net.ipv4.tcp_tw_reuse" = 2\n'
    )
    loaded = profiles.load(str(tmp_path / "child.toml"), tmp_path / "no-root")
    assert loaded.chain == ["child", "base", "base"]
    assert loaded.sysctl == {"net.ipv4.tcp_fin_timeout": "20", "net.ipv4.tcp_tw_reuse": "2"}


def test_a_profile_that_cannot_be_found_is_one_problem_without_a_key(tmp_path) -> None:
    profile, problems = profiles.try_load("no-such-profile", tmp_path)
    assert profile is None and len(problems) == 1
    assert problems[0].key == "" and problems[0].path == "no-such-profile"
    assert str(problems[0]).startswith("no-such-profile: unknown profile 'no-such-profile' (")


def test_validate_finds_a_profile_below_the_root(tmp_path) -> None:
    local = tmp_path / "etc/tcptune/profiles"
    local.mkdir(parents=True)
    (local / "mine.toml").write_text('description = "m"\n[sysctl]\n"net.core.x_y" = 1\n')
    problems, warnings = profiles.validate("mine", tmp_path)
    assert problems == [] and [w.message for w in warnings] == [
        "not in tcptune's knowledge base: accepted, but not range-checked"
    ]


# --- whole documents and lookups: every problem, in the words `profiles validate` prints --------


def document(text: str, tmp_path) -> profiles.ProfileFile:
    path = tmp_path / "p.toml"
    path.write_text(text)
    return profiles.read_file(path)


@pytest.mark.parametrize(
    ("text", "problems", "description"),
    [
        ('[sysctl]\n"net.ipv4.tcp_fin_timeout" = 30\n',
         ["description: missing: every profile needs a description"], ""),
        ('description = "  "\n', ["description: must be a non-empty string"], ""),
        ("description = 5\n", ["description: must be a non-empty string"], ""),
        ('description = " busy server "\n', [], "busy server"),
        ('description = "d"\nextends = 5\n', ["extends: must be a profile name (a string)"], "d"),
        ('description = "d"\nextends = ""\n', ["extends: must be a profile name (a string)"], "d"),
        ('description = "d"\nextends = "Bad Name"\n',
         ["extends: 'Bad Name' is not a valid profile name"], "d"),
        ('description = "d"\nextends = "/etc/x.toml"\n',
         ["extends: '/etc/x.toml' is an absolute path, which a parent may not be (name a "
          "profile, or a file in this profile's directory such as base.toml)"], "d"),
        ('description = "d"\ncolour = "red"\n',
         ["colour: unknown top-level key (allowed: description, extends, [sysctl])"], "d"),
        ('description = "d"\nsysctl = 5\n', ["sysctl: must be a table: [sysctl]"], "d"),
        ('description = "d"\n[sysctl]\nnet.ipv4.tcp_fin_timeout = 30\n',
         ['net: is a table: quote dotted keys, e.g. "net.ipv4.tcp_fin_timeout" = 30'], "d"),
        ('description = "d"\n[sysctl]\n"net.ipv4.ip_local_port_range" = "100 200"\n',
         ["net.ipv4.ip_local_port_range: low 100 is below 1024: ephemeral ports would take "
          "privileged ports"], "d"),
    ],
)  # fmt: skip
def test_each_document_problem(tmp_path, text: str, problems: list[str], description: str) -> None:
    read = document(text, tmp_path)
    shown = str(tmp_path / "p.toml")
    assert [str(p) for p in read.problems] == [f"{shown}: {p}" for p in problems]
    assert read.description == description
    assert read.extends is None or not read.problems


def test_a_word_value_keeps_its_case() -> None:
    assert accepted("net.ipv4.tcp_congestion_control", "Reno_2") == "Reno_2"


@pytest.mark.parametrize(
    ("argument", "message", "hint"),
    [
        ("a\x00b", "profile argument contains a NUL byte", "give a profile name or a path"),
        ("./missing.toml", "profile file ./missing.toml does not exist", "check the path"),
        (
            "server-profil",
            "unknown profile 'server-profil'",
            "did you mean server-profile, proxy-profile, client-profile?",  # closest first
        ),
        # "kernel" is 0.57 like kernel-defaults (difflib's ratio): a half-way match is offered
        ("kernel", "unknown profile 'kernel'", "did you mean kernel-defaults?"),
    ],
)
def test_each_lookup_problem(argument: str, message: str, hint: str, tmp_path) -> None:
    with pytest.raises(BadInput) as raised:
        profiles.find(argument, tmp_path)
    assert str(raised.value) == message and raised.value.hint == hint


def test_a_directory_named_as_a_profile_file(tmp_path) -> None:
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(BadInput) as raised:
        profiles.find(str(tmp_path / "dir.toml"), tmp_path)
    assert str(raised.value) == f"profile {tmp_path}/dir.toml is not a regular file"
    assert raised.value.hint == "give a .toml file"


def test_an_unknown_profile_far_from_every_name_lists_them_all(tmp_path) -> None:
    with pytest.raises(BadInput) as raised:
        profiles.find("zzzzzzzz", tmp_path)
    names = sorted(profiles.available(tmp_path))
    assert raised.value.hint == "known profiles: " + ", ".join(names)
    assert names[:2] == ["client-profile", "kernel-defaults"]


def test_up_to_three_close_names_are_offered(tmp_path) -> None:
    local = tmp_path / "etc/tcptune/profiles"
    local.mkdir(parents=True)
    for name in ("web-1", "web-2", "web-3", "web-4"):
        (local / f"{name}.toml").write_text('description = "w"\n')
    with pytest.raises(BadInput) as raised:
        profiles.find("web-", tmp_path)
    offered = raised.value.hint.removeprefix("did you mean ").removesuffix("?").split(", ")
    assert len(offered) == 3 and set(offered) < {"web-1", "web-2", "web-3", "web-4"}


def test_a_cycle_names_every_profile_on_it(tmp_path) -> None:
    (tmp_path / "a.toml").write_text('description = "a"\nextends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('description = "b"\nextends = "a.toml"\n')
    with pytest.raises(ProfileError) as raised:
        profiles.load(str(tmp_path / "a.toml"), tmp_path)
    assert [str(p) for p in raised.value.problems] == [
        f"{tmp_path}/b.toml: extends: cycle: a -> b -> a"
    ]


def test_a_missing_parent_is_named_in_the_child(tmp_path) -> None:
    (tmp_path / "a.toml").write_text('description = "a"\nextends = "gone.toml"\n')
    with pytest.raises(ProfileError) as raised:
        profiles.load(str(tmp_path / "a.toml"), tmp_path)
    assert [str(p) for p in raised.value.problems] == [
        f"{tmp_path}/a.toml: extends: parent 'gone.toml' does not exist"
    ]


# --- files a profile may not be read from, as root (the suite runs as root in CI) --------------


def safe_dir(tmp_path):
    """A directory only root may change, below the (sticky or root-only) temporary directory."""
    directory = tmp_path / "safe"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    return directory


def test_a_fifo_is_not_a_profile_file(tmp_path) -> None:
    path = safe_dir(tmp_path) / "fifo.toml"
    os.mkfifo(path)
    read = profiles.read_file(path, "shown")
    assert read.name == "shown" and read.path == path
    assert [str(p) for p in read.problems] == [f"{path}: not a regular file"]
    assert not read.problems[0].untrusted


def test_a_file_others_may_write_is_refused_to_root_with_the_fix(tmp_path) -> None:
    assert os.geteuid() == 0, "the suite runs as root"
    path = safe_dir(tmp_path) / "p.toml"
    path.write_text('description = "d"\n')
    os.chmod(path, 0o664)
    read = profiles.read_file(path, "shown")
    assert read.name == "shown" and read.path == path and read.problems[0].untrusted is True
    assert [str(p) for p in read.problems] == [
        f"{path}: writable by group or others (mode 0664); refusing it while running as root "
        f"(fix: chmod go-w {path})"
    ]
    os.chmod(path, 0o645)  # others may read and execute it: not change it
    assert profiles.read_file(path).problems == []


def test_a_directory_others_may_write_is_refused_on_the_way(tmp_path) -> None:
    directory = safe_dir(tmp_path) / "open"
    directory.mkdir()
    os.chmod(directory, 0o775)
    path = directory / "p.toml"
    path.write_text('description = "d"\n')
    read = profiles.read_file(path, "shown")
    assert read.name == "shown" and read.path == path
    problem = read.problems[0]
    assert problem.untrusted is True and problem.key == ""
    assert str(problem) == (
        f"{path}: directory {directory} on the way to it is writable by group or others (mode "
        f"0775), so the file could be replaced; refusing it while running as root (fix: chmod "
        f"go-w {directory}, or move the profile)"
    )


def test_without_root_the_ownership_rules_do_not_apply(tmp_path, monkeypatch) -> None:
    directory = safe_dir(tmp_path) / "open"
    directory.mkdir()
    os.chmod(directory, 0o777)
    path = directory / "p.toml"
    path.write_text('description = "d"\n')
    os.chmod(path, 0o666)
    monkeypatch.setattr(profiles, "running_as_root", lambda: False)
    assert profiles.read_file(path).problems == []


def test_one_mebibyte_is_the_largest_profile(tmp_path) -> None:
    path = safe_dir(tmp_path) / "big.toml"
    body = b'description = "d"\n#'
    path.write_bytes(body + b"x" * (profiles.MAX_PROFILE_BYTES - len(body) - 1) + b"\n")
    assert path.stat().st_size == profiles.MAX_PROFILE_BYTES
    assert profiles.read_file(path).problems == []
    path.write_bytes(path.read_bytes() + b"\n")
    read = profiles.read_file(path, "shown")
    assert read.name == "shown" and read.path == path
    assert [str(p) for p in read.problems] == [
        f"{path}: file is 1048577 bytes; profiles are limited to 1 MiB"
    ]


def test_a_merged_chain_names_the_files_in_its_problems(tmp_path) -> None:
    directory = safe_dir(tmp_path)
    (directory / "base.toml").write_text(
        'description = "b"\n[sysctl]\n"net.ipv4.tcp_timestamps" = 0\n'
    )
    (directory / "child.toml").write_text(
        'description = "c"\nextends = "base.toml"\n[sysctl]\n"net.ipv4.tcp_tw_reuse" = 1\n'
    )
    with pytest.raises(ProfileError) as raised:
        profiles.load(str(directory / "child.toml"), tmp_path)
    assert [str(p) for p in raised.value.problems] == [
        f"{directory}/child.toml (merged with base): net.ipv4.tcp_tw_reuse: tcp_tw_reuse = 1 "
        "needs tcp_timestamps != 0, but this profile sets it to 0"
    ]


def test_a_loaded_profile_says_where_it_came_from(tmp_path) -> None:
    directory = safe_dir(tmp_path)
    path = directory / "mine.toml"
    path.write_text('description = " mine "\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = 30\n')
    loaded = profiles.load(str(path), tmp_path)
    assert loaded.path == path and loaded.name == "mine" and loaded.description == "mine"
    assert loaded.origin == {"net.ipv4.tcp_fin_timeout": "mine"} and loaded.chain == ["mine"]


def test_a_parent_that_cannot_be_found_is_a_problem_of_the_child(tmp_path) -> None:
    directory = safe_dir(tmp_path)
    (directory / "child.toml").write_text('description = "c"\nextends = "zzzzzzzz"\n')
    with pytest.raises(ProfileError) as raised:
        profiles.load(str(directory / "child.toml"), tmp_path)
    (problem,) = raised.value.problems
    assert problem.path == str(directory / "child.toml") and problem.key == "extends"
    assert problem.message.startswith("parent 'zzzzzzzz': unknown profile 'zzzzzzzz' (known ")
