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
