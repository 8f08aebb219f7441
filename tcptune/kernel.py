"""Kernel release strings and version comparison."""

import re

Version = tuple[int, int, int]

_RELEASE = re.compile(r"^(\d{1,9})\.(\d{1,9})(?:\.(\d{1,9}))?(?!\d)")


def parse_release(release: str | None) -> Version | None:
    """'6.18.44-fc-v595' -> (6, 18, 44); None when the string is not a kernel release."""
    if not release:
        return None
    match = _RELEASE.match(release.strip())
    if not match:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def format_version(version: Version | tuple[int, ...]) -> str:
    """(4, 12, 0) -> '4.12'; (4, 12, 3) -> '4.12.3'."""
    parts = list(version)
    while len(parts) > 2 and parts[-1] == 0:
        parts.pop()
    return ".".join(str(p) for p in parts)


def at_least(version: Version | None, wanted: tuple[int, int]) -> bool | None:
    """Is the kernel at least `wanted`? None when the kernel version is unknown."""
    if version is None:
        return None
    return version[:2] >= wanted
