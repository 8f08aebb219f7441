"""Kernel-version boundaries and boot persistence, from tables written by hand from the kernel's
history (the commits named in docs/kernel-facts.md) and the loaders' documentation, not from
tcptune's own tables."""

from __future__ import annotations

import pytest

from tcptune import drift, sysctld
from tcptune.drift import DRIFT
from tcptune.model import MISSING, OK, PRESENT, UNREADABLE, ConfFile, Reading

# (key, kernel, live value or None for a missing file, target) -> (status, reason or "")
# tcp_tw_recycle: removed in 4.12 (commit 4396e46187ca); tcp_tw_reuse_delay: added in 6.14
# (commit ca6a6f93867a); tcp_tw_reuse = 2 (loopback only): since 4.18 (commit 79e9fed46079);
# tcp_max_orphans is one global value, not per network namespace.
TABLE = [
    (
        "net.ipv4.tcp_tw_recycle",
        (4, 12, 0),
        None,
        "0",
        MISSING,
        "removed in 4.12; skipped on this kernel",
    ),
    (
        "net.ipv4.tcp_tw_recycle",
        (4, 12, 9),
        None,
        "0",
        MISSING,
        "removed in 4.12; skipped on this kernel",
    ),
    (
        "net.ipv4.tcp_tw_recycle",
        (5, 4, 0),
        None,
        "0",
        MISSING,
        "removed in 4.12; skipped on this kernel",
    ),
    ("net.ipv4.tcp_tw_recycle", (4, 11, 12), None, "0", MISSING, "not present; skipped"),
    ("net.ipv4.tcp_tw_recycle", (4, 11, 12), "0", "0", OK, ""),
    (
        "net.ipv4.tcp_tw_reuse_delay",
        (6, 13, 9),
        None,
        "1000",
        MISSING,
        "added in 6.14; skipped on this older kernel",
    ),
    (
        "net.ipv4.tcp_tw_reuse_delay",
        (5, 15, 0),
        None,
        "1000",
        MISSING,
        "added in 6.14; skipped on this older kernel",
    ),
    ("net.ipv4.tcp_tw_reuse_delay", (6, 14, 0), None, "1000", MISSING, "not present; skipped"),
    ("net.ipv4.tcp_tw_reuse_delay", (6, 14, 0), "1000", "1000", OK, ""),
    ("net.ipv4.tcp_tw_reuse_delay", None, None, "1000", MISSING, "not present; skipped"),
    (
        "net.ipv4.tcp_max_orphans",
        (6, 1, 0),
        None,
        "65536",
        MISSING,
        "global key, not visible inside a network namespace; skipped",
    ),
    (
        "net.ipv4.tcp_tw_reuse",
        (4, 17, 19),
        "1",
        "2",
        MISSING,
        "value 2 needs kernel 4.18 or later; skipped",
    ),
    ("net.ipv4.tcp_tw_reuse", (4, 18, 0), "1", "2", DRIFT, ""),
    ("net.ipv4.tcp_tw_reuse", (4, 18, 0), "2", "2", OK, ""),
    ("net.ipv4.tcp_tw_reuse", None, "1", "2", DRIFT, ""),
    ("net.ipv4.tcp_tw_reuse", (4, 17, 0), "1", "1", OK, ""),
    ("net.ipv4.tcp_rmem", (6, 1, 0), "4096 131072 6291456", "4096  131072   6291456", OK, ""),
    ("net.ipv4.ip_local_reserved_ports", (6, 1, 0), "8080,9000-9100", "8080, 9000-9100", OK, ""),
]


@pytest.mark.parametrize(("key", "kernel", "live", "target", "status", "reason"), TABLE)
def test_compare_at_the_version_boundaries(key, kernel, live, target, status, reason) -> None:
    reading = (
        Reading(key=key, state=PRESENT, value=live)
        if live is not None
        else Reading(key=key, state=MISSING)
    )
    (found,) = drift.compare({key: target}, {key: "p"}, {key: reading}, kernel)
    assert (found.status, found.reason) == (status, reason)
    assert found.value == live and found.target == target and found.origin == "p"


def test_a_missing_key_s_own_error_is_its_reason() -> None:
    key = "net.ipv4.tcp_fin_timeout"
    reading = Reading(key=key, state=MISSING, error="no such key on this kernel")
    (found,) = drift.compare({key: "30"}, {}, {key: reading}, (6, 1, 0))
    assert found.reason == "no such key on this kernel; skipped" and found.origin == ""


def conf(directory: str, name: str, text: str) -> ConfFile:
    path = f"/{directory}/{name}" if directory else "/etc/sysctl.conf"
    return ConfFile(directory=directory, name=name, path=path, text=text)


def summary(files: list[ConfFile], key: str, target: str) -> str:
    return sysctld.boot_summary(sysctld.persistence(sysctld.BootModel(files), key, target))


def test_a_key_set_only_in_etc_sysctl_conf_survives_under_procps_only() -> None:
    """systemd-sysctl reads only the sysctl.d directories (sysctl.d(5)); procps' --system reads
    /etc/sysctl.conf last."""
    files = [conf("", "sysctl.conf", "net.ipv4.tcp_fin_timeout = 30\n")]
    assert summary(files, "net.ipv4.tcp_fin_timeout", "30") == "survives under procps"
    files.append(conf("etc/sysctl.d", "60-x.conf", "net.ipv4.tcp_fin_timeout = 30\n"))
    assert summary(files, "net.ipv4.tcp_fin_timeout", "30") == "survives reboot"
    assert summary([], "net.ipv4.tcp_fin_timeout", "30") == "not persisted"


def test_a_file_writing_the_value_in_another_spacing_persists_it() -> None:
    files = [conf("etc/sysctl.d", "60-x.conf", "net.ipv4.tcp_rmem = 4096\t131072   6291456\n")]
    checks = sysctld.persistence(
        sysctld.BootModel(files), "net.ipv4.tcp_rmem", "4096 131072 6291456"
    )
    assert [p.survives for p in checks] == [True, True]


def test_a_key_outside_the_knowledge_base_is_compared_as_it_reads() -> None:
    """A profile may set a network key tcptune knows nothing about (no version facts): it is
    compared as read, on any kernel."""
    key = "net.ipv4.tcp_no_such_knowledge"
    for live, status in (("1", OK), ("0", DRIFT)):
        reading = Reading(key=key, state=PRESENT, value=live)
        (found,) = drift.compare({key: "1"}, {}, {key: reading}, (3, 10, 0))
        assert (found.status, found.reason, found.value) == (status, "", live)
    missing = Reading(key=key, state=MISSING, error="no such key on this kernel")
    (found,) = drift.compare({key: "1"}, {}, {key: missing}, (6, 1, 0))
    assert (found.status, found.reason) == (MISSING, "no such key on this kernel; skipped")


def test_an_unreadable_key_carries_its_error() -> None:
    key = "net.ipv4.tcp_fin_timeout"
    reading = Reading(key=key, state=UNREADABLE, error="permission denied")
    (found,) = drift.compare({key: "30"}, {key: "p"}, {key: reading}, (6, 1, 0))
    assert (found.status, found.reason, found.value, found.in_sync) == (
        UNREADABLE,
        "permission denied",
        None,
        None,
    )
