"""The knowledge base: complete against docs/kernel-facts.md, consistent, found in any form."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tcptune import keys

FACTS = Path(__file__).resolve().parent.parent / "docs" / "kernel-facts.md"


def keys_named_in_facts() -> set[str]:
    """Every key in the facts table, expanding 'tcp_keepalive_time / _intvl / _probes'."""
    names: set[str] = set()
    for line in FACTS.read_text().splitlines():
        if not line.startswith("| net."):
            continue
        cell = line.split("|")[1].strip()
        parts = [p.strip() for p in cell.split("/")]
        first = parts[0]
        names.add(first)
        stem = first.rsplit("_", 1)[0] if parts[1:] and parts[1].startswith("_") else None
        for part in parts[1:]:
            if part.startswith("_") and stem:
                names.add(stem + part)
            else:
                names.add(first.rsplit(".", 1)[0] + "." + part)
    return names


def test_facts_table_parses() -> None:
    names = keys_named_in_facts()
    assert "net.ipv4.tcp_keepalive_probes" in names
    assert "net.ipv4.tcp_wmem" in names
    assert len(names) >= 20


def test_every_key_in_the_facts_is_known() -> None:
    missing = keys_named_in_facts() - set(keys.KEYS)
    assert not missing


@pytest.mark.parametrize("spec", keys.KEYS.values(), ids=lambda s: s.name)
def test_every_key_is_complete(spec: keys.KeySpec) -> None:
    assert re.fullmatch(r"net\.(ipv4|ipv6|core)\.[a-z0-9_]+", spec.name)
    assert spec.type in {
        keys.BOOL,
        keys.INT,
        keys.ENUM,
        keys.INT_VECTOR,
        keys.STRING,
        keys.PORT_LIST,
    }
    assert spec.summary and len(spec.explanation) > 60
    assert spec.sources, "every fact needs a source"
    assert spec.defaults
    for _, value in spec.defaults:
        if value is None:
            assert spec.default_note, "a machine-dependent default must say how it is derived"
    if spec.type in (keys.BOOL, keys.ENUM):
        assert spec.values
        for _, value in spec.defaults:
            assert value is None or value in spec.values
    if spec.type == keys.INT_VECTOR:
        assert spec.length
    if spec.added:
        assert spec.added_source
    if spec.removed:
        assert spec.removed_source
    assert spec.per_netns in ("yes", "no")
    if spec.netns_since is not None or spec.per_netns == "no":
        assert spec.netns_source, "a per-netns version or a global key needs its source"


@pytest.mark.parametrize(
    "text",
    [
        "net.ipv4.tcp_tw_reuse",
        "tcp_tw_reuse",
        "/proc/sys/net/ipv4/tcp_tw_reuse",
        "net/ipv4/tcp_tw_reuse",
        " tcp_tw_reuse ",
    ],
)
def test_lookup_accepts_every_form(text: str) -> None:
    spec = keys.lookup(text)
    assert spec is not None
    assert spec.name == "net.ipv4.tcp_tw_reuse"


def test_lookup_of_core_key_by_short_name() -> None:
    spec = keys.lookup("somaxconn")
    assert spec is not None and spec.name == "net.core.somaxconn"


def test_unknown_key_gets_close_matches() -> None:
    assert keys.lookup("tcp_tw_reues") is None
    assert keys.close_matches("tcp_tw_reues")[0] == "net.ipv4.tcp_tw_reuse"
    assert keys.close_matches("zzzzzz") == []


def test_default_for_version() -> None:
    reuse = keys.KEYS["net.ipv4.tcp_tw_reuse"]
    assert reuse.default_for((4, 17, 9)) == "0"
    assert reuse.default_for((4, 18, 0)) == "2"
    assert reuse.default_for(None) is None
    assert keys.KEYS["net.ipv4.tcp_fin_timeout"].default_for(None) == "60"


def test_exists_on() -> None:
    recycle = keys.KEYS["net.ipv4.tcp_tw_recycle"]
    assert recycle.exists_on((4, 11, 12)) is True
    assert recycle.exists_on((4, 12, 0)) is False
    delay = keys.KEYS["net.ipv4.tcp_tw_reuse_delay"]
    assert delay.exists_on((6, 13, 0)) is False
    assert delay.exists_on((6, 14, 1)) is True
    assert delay.exists_on(None) is None


def test_history_names_versions_and_commits() -> None:
    assert "removed in 4.12" in keys.KEYS["net.ipv4.tcp_tw_recycle"].history()
    assert "4396e46187ca" in keys.KEYS["net.ipv4.tcp_tw_recycle"].history()
    assert "added in 6.14" in keys.KEYS["net.ipv4.tcp_tw_reuse_delay"].history()


@pytest.mark.parametrize(
    ("key", "said"),
    [
        # docs/kernel-facts.md, "per netns": 4.11 only, then removed; global; every kernel
        (
            "net.ipv4.tcp_tw_recycle",
            "yes, since 4.11 (until its removal in 4.12); before that global, and absent inside "
            "a network namespace",
        ),
        (
            "net.ipv4.tcp_timestamps",
            "yes, since 4.13; before that global, and absent inside a network namespace",
        ),
        ("net.ipv4.tcp_max_orphans", "no: global, absent inside a network namespace"),
        ("net.core.somaxconn", "yes"),
    ],
)
def test_per_netns_sentence(key: str, said: str) -> None:
    spec = keys.KEYS[key]
    assert spec.netns_text() == f"{said}. Source: {spec.netns_source}"


def test_per_netns_sentence_without_a_source() -> None:
    assert keys.KEYS["net.ipv4.tcp_tw_reuse_delay"].netns_text() == "yes"


def test_history_sentences() -> None:
    assert keys.KEYS["net.ipv4.tcp_fin_timeout"].history() == (
        "long-standing (present in every kernel tcptune supports)"
    )
    assert keys.KEYS["net.ipv4.tcp_tw_recycle"].history() == (
        "long-standing (present in every kernel tcptune supports); removed in 4.12 (commit "
        '4396e46187ca "tcp: remove tcp_tw_recycle")'
    )
    assert keys.KEYS["net.ipv4.tcp_tw_reuse_delay"].history() == (
        "added in 6.14 (commit ca6a6f93867a)"
    )


def test_close_matches_are_the_closest_keys_by_either_name() -> None:
    """Ranked by difflib's ratio against each key's full and short name, the best of the two;
    a key is named once (hand-checked rankings)."""
    assert keys.close_matches("cp_keepalive_intvl") == [
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_keepalive_probes",
    ]
    assert keys.close_matches("et.ipv4.ip_local_port_range") == [
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_max_orphans",
    ]
    assert keys.close_matches("cp_keepalive_intvl", limit=1) == ["net.ipv4.tcp_keepalive_intvl"]
    assert keys.close_matches("tcp_fin") == ["net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_fastopen"]


@pytest.mark.parametrize(
    "text",
    [
        "proc/sys/net/ipv4/tcp_tw_reuse",
        "/proc/sys/net/ipv4/tcp_tw_reuse/",
        "net/ipv4/tcp_tw_reuse/",
        "/net/ipv4/tcp_tw_reuse",
        "  net.ipv4.tcp_tw_reuse\n",
    ],
)
def test_lookup_of_paths_with_and_without_slashes(text: str) -> None:
    spec = keys.lookup(text)
    assert spec is not None and spec.name == "net.ipv4.tcp_tw_reuse"


def test_key_shape() -> None:
    assert keys.is_key_shaped("net.ipv4.tcp_fin_timeout")
    assert keys.is_key_shaped("/proc/sys/net/ipv4/conf/eth0/rp_filter")
    assert not keys.is_key_shaped("not a key!")
    assert not keys.is_key_shaped("net.ipv4..tcp_fin_timeout")
    assert not keys.is_key_shaped("net/ipv4/../../kernel/core_pattern")


def test_close_matches_default_to_three() -> None:
    assert len(keys.close_matches("tcp_rmem", limit=6)) == 4
    assert keys.close_matches("tcp_rmem") == keys.close_matches("tcp_rmem", limit=6)[:3]
