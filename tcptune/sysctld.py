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

import fnmatch
from dataclasses import dataclass

from tcptune.model import DIRS, LOADERS, PROCPS, Assignment, ConfFile, same_value


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


@dataclass(frozen=True, kw_only=True, slots=True)
class BootValue:
    """What a loader leaves a key at boot: the winning assignment, or None if no file sets it."""

    loader: str
    winner: Assignment | None


def boot_value(files: list[ConfFile], key: str, loader: str) -> BootValue:
    winner = None
    for conf in order(files, loader):
        for assignment in conf.assignments():
            if _matches(assignment.key, key):
                winner = assignment
    return BootValue(loader=loader, winner=winner)


@dataclass(frozen=True, kw_only=True, slots=True)
class Persistence:
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
    result = []
    for loader in LOADERS:
        outcome = boot_value(files, key, loader)
        survives = outcome.winner is not None and same_value(outcome.winner.value, target)
        result.append(Persistence(loader=loader, survives=survives, winner=outcome.winner))
    return result


def overridden(checks: list[Persistence]) -> list[Persistence]:
    """The loaders under which another file sets a different value at boot."""
    return [p for p in checks if p.winner is not None and not p.survives]


def boot_summary(checks: list[Persistence], target: str, *, detailed: bool = False) -> str:
    """What happens to `target` at boot, in a few words: it survives, is not persisted, survives
    under some loaders only, or is overridden; `detailed` names the overriding file and line."""
    over = overridden(checks)
    if over and detailed:
        return "; ".join(p.describe(target) for p in over)
    if over:
        return "overridden (" + ", ".join(p.loader for p in over) + ")"
    if all(p.survives for p in checks):
        return "survives reboot"
    if any(p.survives for p in checks):
        return "survives under " + ", ".join(p.loader for p in checks if p.survives)
    return "not persisted"
