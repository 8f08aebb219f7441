"""What `tcptune explain` says about a key's history and namespace scope, word for word, and the
small parsers every command shares (tcptune.model), at their edges. The versions and commits are
docs/kernel-facts.md's."""

from __future__ import annotations

import pytest

from tcptune import keys, model
from tcptune.kernel import at_least
from tcptune.keys import KEYS, KeySpec


def test_the_namespace_scope_of_a_global_key() -> None:
    assert KEYS["net.ipv4.tcp_max_orphans"].netns_text() == (
        "no: global, absent inside a network namespace. "
        "Source: probe: Linux 6.18.44 in a private network namespace (unshare -n)"
    )


def test_the_namespace_scope_of_a_key_namespaced_before_its_removal() -> None:
    assert KEYS["net.ipv4.tcp_tw_recycle"].netns_text() == (
        "yes, since 4.11 (until its removal in 4.12); before that global, and absent inside a "
        'network namespace. Source: commit 1946e672c173 "ipv4: Namespaceify tcp_tw_recycle and '
        'tcp_max_tw_buckets knob" (4.11, inferred)'
    )
    assert (
        KEYS["net.ipv4.tcp_fin_timeout"]
        .netns_text()
        .startswith(
            "yes, since 4.6; before that global, and absent inside a network namespace. Source: "
        )
    )


def test_the_namespace_scope_of_a_key_namespaced_from_its_start() -> None:
    assert KEYS["net.ipv4.tcp_tw_reuse_delay"].netns_text() == "yes"


def test_a_key_s_history() -> None:
    assert KEYS["net.ipv4.tcp_tw_reuse_delay"].history() == "added in 6.14 (commit ca6a6f93867a)"
    assert KEYS["net.ipv4.tcp_fin_timeout"].history() == (
        "long-standing (present in every kernel tcptune supports)"
    )
    assert KEYS["net.ipv4.tcp_tw_recycle"].history() == (
        "long-standing (present in every kernel tcptune supports); removed in 4.12 "
        '(commit 4396e46187ca "tcp: remove tcp_tw_recycle")'
    )


def made_up(**fields) -> KeySpec:
    return KeySpec(
        **{"name": "net.ipv4.made_up", "type": keys.INT, "summary": "", "explanation": "",
           "sources": ("x",), "defaults": ((None, "1"),), **fields}
    )  # fmt: skip


def test_history_and_scope_without_sources_name_none() -> None:
    spec = made_up(added=(5, 1, 0), removed=(6, 0, 0), netns_since=(5, 2, 0))
    assert spec.history() == "added in 5.1; removed in 6.0"
    assert spec.netns_text() == (
        "yes, since 5.2 (until its removal in 6.0); before that global, and absent inside a "
        "network namespace"
    )
    assert made_up(per_netns="no").netns_text() == "no: global, absent inside a network namespace"


def test_a_default_that_starts_at_a_version_is_unknown_before_it() -> None:
    spec = made_up(defaults=(((4, 0, 0), "1"), ((5, 0, 0), "2")))
    assert spec.default_for((3, 10, 0)) is None
    assert spec.default_for((4, 0, 0)) == "1"
    assert spec.default_for((5, 3, 0)) == "2"
    assert spec.default_for(None) is None


def test_version_checks_take_the_release_not_the_patch_level() -> None:
    spec = made_up(added=(4, 11, 0), removed=(4, 12, 0), netns_since=(4, 11, 0))
    assert spec.exists_on((4, 10, 200)) is False
    assert spec.exists_on((4, 11, 0)) is True
    assert spec.exists_on((4, 11, 99)) is True
    assert spec.exists_on((4, 12, 0)) is False
    assert spec.namespaced_on((4, 10, 99)) is False
    assert spec.namespaced_on((4, 11, 0)) is True
    assert at_least((4, 11, 7), (4, 11)) is True and at_least((4, 10, 99), (4, 11)) is False


@pytest.mark.parametrize(
    ("typo", "first", "count"),
    [
        ("tcp_fin_timeot", "net.ipv4.tcp_fin_timeout", 3),
        ("tcp_tw_recyle", "net.ipv4.tcp_tw_recycle", 3),
        ("tw_reuse", "net.ipv4.tcp_tw_reuse", 2),
        ("tcp_tw_re", "net.ipv4.tcp_tw_reuse", 3),  # more are close: three are offered
    ],
)
def test_did_you_mean_offers_up_to_three_distinct_keys(typo: str, first: str, count: int) -> None:
    """A key has a short and a full name: both may be close, but a key is offered once."""
    found = keys.close_matches(typo)
    assert found[0] == first and len(found) == count == len(set(found))
    assert all(name in KEYS for name in found)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("32768 60999", (32768, 60999)),
        ("0 5", (0, 5)),
        ("5 5", (5, 5)),
        ("  1024\t65535 ", (1024, 65535)),
        ("-1 5", None),
        ("5 4", None),
        ("5", None),
        ("", None),
        (None, None),
        ("a 5", None),
        ("5 a", None),
        ("1 2 3", None),
    ],
)
def test_the_port_range_as_the_kernel_prints_it(value: str | None, parsed) -> None:
    assert model.parse_port_range(value) == parsed


@pytest.mark.parametrize(
    ("text", "low", "high", "taken"),
    [
        ("8080, 9000-9002", 8000, 9001, 3),  # 8080, 9000, 9001: the range clips the list
        ("8080,8080,8075-8085", 8000, 9000, 11),  # each port once
        ("x,8080", 8000, 9000, 1),  # a part that is not a port is skipped, not the rest
        ("9000-x,8080", 8000, 9000, 1),
        ("8080,,9000", 8000, 9000, 2),  # an empty part is skipped too
        ("", 8000, 9000, 0),
        (None, 8000, 9000, 0),
        ("7000-7999,9001", 8000, 9000, 0),
    ],
)
def test_reserved_ports_inside_the_range(text: str | None, low: int, high: int, taken: int) -> None:
    assert model.reserved_ports(text, low, high) == taken


def test_usable_ports() -> None:
    assert model.usable_ports((100, 199), "150") == 99
    assert model.usable_ports((100, 199), "150,1-99") == 99
    assert model.usable_ports((100, 199), "50-250") == 0
    assert model.usable_ports((1, 10), None) == 10


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("/proc/sys/net/ipv4/tcp_tw_reuse", "net.ipv4.tcp_tw_reuse"),
        ("proc/sys/net/ipv4/tcp_tw_reuse", "net.ipv4.tcp_tw_reuse"),
        ("net/ipv4/tcp_tw_reuse/", "net.ipv4.tcp_tw_reuse"),
        (" net.core.somaxconn ", "net.core.somaxconn"),
        ("/proc/sys/net/core/X", "net.core.X"),
    ],
)
def test_a_key_named_as_a_path_or_a_dotted_name(text: str, name: str) -> None:
    assert keys.canonical_name(text) == name


def test_what_looks_like_a_key() -> None:
    assert keys.is_key_shaped("net.ipv4.tcp_tw_reuse") and keys.is_key_shaped("tcp_tw_reuse")
    assert not keys.is_key_shaped("net.ipv4.tcp tw")
    assert not keys.is_key_shaped("net.ipv4..tcp_tw_reuse")


def test_twenty_digits_is_the_longest_kernel_number() -> None:
    assert model.parse_int("18446744073709551615") == 2**64 - 1  # 20 digits: an unsigned long
    assert model.parse_int("-9223372036854775808") == -(2**63)
    assert model.parse_int("1" * 21) is None


def test_a_drop_in_line_is_cut_at_its_first_equals_as_the_loaders_cut_it() -> None:
    assert model.only_network_assignments(["net.ipv4.tcp_fin_timeout = 30 = 40"]) == [
        "net.ipv4.tcp_fin_timeout = 30 = 40"
    ]
    with pytest.raises(ValueError, match="not ours"):
        model.only_network_assignments(["kernel.x = 1 = net.ipv4.y"])
