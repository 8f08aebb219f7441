"""Which sysctl.d assignment wins at boot, under procps `sysctl --system` and systemd-sysctl.

Pure: the files are read by tcptune.system and handed in. The rules (docs/kernel-facts.md,
"sysctl.d precedence", checked against the real loaders in tests/test_apply_netns.py):

- directories, in order: /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d,
  and for procps also /lib/sysctl.d; only *.conf files;
- a file name seen in an earlier directory masks the same name in later ones (a symlink to
  /dev/null masks a vendor file);
- the surviving files are applied in byte order of their file name, whatever their directory,
  each assignment in turn, so the last one wins;
- procps applies /etc/sysctl.conf last; systemd-sysctl does not read it.
"""

from __future__ import annotations

import fnmatch
from typing import NamedTuple

PROCPS = "procps"  # sysctl --system
SYSTEMD = "systemd"  # systemd-sysctl
LOADERS = (PROCPS, SYSTEMD)

COMMON_DIRS = ("etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d")
DIRS = {PROCPS: (*COMMON_DIRS, "lib/sysctl.d"), SYSTEMD: COMMON_DIRS}
SYSCTL_CONF = "etc/sysctl.conf"


class ConfFile(NamedTuple):
    """One configuration file as found below the root."""

    directory: str  # e.g. "etc/sysctl.d", or "" for etc/sysctl.conf
    name: str  # file name, e.g. "99-tcptune.conf"
    path: str  # as shown to the user, e.g. "/etc/sysctl.d/99-tcptune.conf"
    text: str  # empty for a /dev/null mask


class Assignment(NamedTuple):
    key: str  # dotted, as written (may be a glob)
    value: str  # whitespace-normalised
    path: str
    line: int
    ignore_failure: bool  # a leading '-'


def canonical_key(raw: str) -> str:
    """'net/ipv4/tcp_fin_timeout' -> 'net.ipv4.tcp_fin_timeout' (the first separator decides)."""
    raw = raw.strip()
    for char in raw:
        if char == "/":
            return raw.replace("/", ".")
        if char == ".":
            return raw
    return raw


def parse(text: str, path: str) -> list[Assignment]:
    """sysctl.conf syntax: '#' or ';' comments, 'key = value', a leading '-' ignores failures."""
    result = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            continue  # both loaders warn and skip a line without '='
        key = key.strip()
        ignore = key.startswith("-")
        if ignore:
            key = key[1:].strip()
        if not key:
            continue
        result.append(Assignment(canonical_key(key), " ".join(value.split()), path, number, ignore))
    return result


def order(files: list[ConfFile], loader: str) -> list[ConfFile]:
    """The files a loader applies, in the order it applies them."""
    seen: dict[str, ConfFile] = {}
    for directory in DIRS[loader]:
        for conf in files:
            if (
                conf.directory == directory
                and conf.name.endswith(".conf")
                and conf.name not in seen
            ):
                seen[conf.name] = conf
    ordered = [seen[name] for name in sorted(seen, key=lambda n: n.encode())]
    if loader == PROCPS:
        ordered += [f for f in files if f.directory == "" and f.path.endswith("/sysctl.conf")]
    return ordered


def _matches(pattern: str, key: str) -> bool:
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(key, pattern)
    return pattern == key


class Outcome(NamedTuple):
    """What a loader leaves a key at boot: the winning assignment, or None if no file sets it."""

    loader: str
    winner: Assignment | None


def boot_value(files: list[ConfFile], key: str, loader: str) -> Outcome:
    winner = None
    for conf in order(files, loader):
        for assignment in parse(conf.text, conf.path):
            if _matches(assignment.key, key):
                winner = assignment
    return Outcome(loader, winner)


class Persistence(NamedTuple):
    """Will `target` survive a reboot under `loader`?"""

    loader: str
    survives: bool
    winner: Assignment | None  # what sets the key at boot (None: no file does)

    def describe(self, target: str) -> str:
        if self.winner is None:
            return f"{self.loader}: not set by any file (the kernel default applies at boot)"
        where = f"{self.winner.path}:{self.winner.line}"
        if self.survives:
            return f"{self.loader}: persisted by {where}"
        return f"{self.loader}: overridden by {where} ({self.winner.key} = {self.winner.value})"


def persistence(files: list[ConfFile], key: str, target: str) -> list[Persistence]:
    from tcptune.drift import same_value

    result = []
    for loader in LOADERS:
        outcome = boot_value(files, key, loader)
        survives = outcome.winner is not None and same_value(outcome.winner.value, target)
        result.append(Persistence(loader, survives, outcome.winner))
    return result


def overridden(checks: list[Persistence]) -> list[Persistence]:
    """The loaders under which another file sets a different value at boot."""
    return [p for p in checks if p.winner is not None and not p.survives]
