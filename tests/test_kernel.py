from __future__ import annotations

import pytest

from tcptune.kernel import at_least, format_version, parse_release


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ("6.18.44-fc-v595", (6, 18, 44)),
        ("4.9.0-19-amd64", (4, 9, 0)),
        ("5.4", (5, 4, 0)),
        ("3.10.0-1160.el7.x86_64", (3, 10, 0)),
        ("", None),
        (None, None),
        ("linux", None),
    ],
)
def test_parse_release(release, expected) -> None:
    assert parse_release(release) == expected


def test_format_and_compare() -> None:
    assert format_version((4, 12, 0)) == "4.12"
    assert format_version((4, 12, 3)) == "4.12.3"
    assert at_least((4, 12, 0), (4, 12)) is True
    assert at_least((4, 11, 99), (4, 12)) is False
    assert at_least(None, (4, 12)) is None


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        (" 6.1.0-13-amd64\n", (6, 1, 0)),  # as /proc/sys/kernel/osrelease reads, newline and all
        ("6.18-rc3", (6, 18, 0)),
        ("6.183.2", (6, 183, 2)),
        ("5.15.0+", (5, 15, 0)),
        ("6", None),  # no minor version
        ("6.", None),
        (".6.1", None),
        ("v6.1.0", None),
        ("123456789.1.2", (123456789, 1, 2)),  # nine digits: the longest field read
        ("1234567890.1.2", None),  # ten: not a release
        ("6.1234567890", None),
        ("6.1.1234567890", (6, 1, 0)),  # a ten-digit patch level is not read as one
        ("6.1.2.3", (6, 1, 2)),
    ],
)
def test_parse_release_edges(release, expected) -> None:
    assert parse_release(release) == expected


@pytest.mark.parametrize(
    ("version", "text"),
    [((4, 0, 0), "4.0"), ((5, 10, 0), "5.10"), ((5, 10, 1), "5.10.1"), ((6, 0, 10), "6.0.10")],
)
def test_format_version_keeps_major_and_minor(version, text) -> None:
    assert format_version(version) == text


@pytest.mark.parametrize(
    ("version", "wanted", "answer"),
    [
        ((4, 12, 0), (4, 12), True),
        ((4, 13, 0), (4, 12), True),
        ((5, 0, 0), (4, 12), True),
        ((4, 11, 0), (4, 12), False),
        ((3, 99, 99), (4, 12), False),
        ((4, 12, 5), (4, 13), False),
    ],
)
def test_at_least_compares_major_then_minor(version, wanted, answer) -> None:
    assert at_least(version, wanted) is answer
