"""Pure: live values + a profile -> the list of changes and the drop-in text. No I/O here, so
`apply --dry-run` and `apply` show and do exactly the same thing."""

from dataclasses import dataclass

from tcptune import __version__, drift, sysctld
from tcptune.errors import printable
from tcptune.kernel import Version
from tcptune.model import MISSING, OK, ConfFile, Reading, normalise, only_network_assignments

DEFAULT_DROP_IN = "99-tcptune.conf"
DROP_IN_DIR = "etc/sysctl.d"
HEADER_MARK = "# Managed by tcptune"
WRITTEN_MARK = "# Written "

CHANGE = "change"
UNCHANGED = "unchanged"
SKIP = "skip"


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyPlan:
    """What apply does to one key, and whether the result survives a reboot."""

    key: str
    live: str | None
    target: str
    origin: str
    action: str  # CHANGE, UNCHANGED or SKIP
    reason: str  # why skipped, or "" otherwise
    persistence: list[sysctld.Persistence]  # after the apply, per loader


@dataclass(frozen=True, kw_only=True, slots=True)
class RemovedKey:
    """A key the drop-in sets now and the new drop-in leaves out (another profile's key): its
    live value stays until a reboot, when `boot` (per loader) sets it instead."""

    key: str
    value: str  # what the drop-in says now
    live: str | None
    boot: list[sysctld.BootAnswer]  # after the apply, per loader


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """Everything one apply would change: runtime values and the drop-in."""

    profile: str
    profile_path: str
    keys: list[KeyPlan]
    drop_in_path: str  # as shown, e.g. /etc/sysctl.d/99-tcptune.conf
    old_text: str | None  # the drop-in now (None: absent)
    new_text: str
    drop_in_changes: bool  # False when the drop-in already says this (the time aside)
    foreign: bool  # a drop-in of that name exists and tcptune did not write it
    masks: list[str]  # files of the same name elsewhere (/usr/lib/sysctl.d, ...) it would hide
    removed: list[RemovedKey]  # keys the drop-in sets now and will no longer set
    runtime: bool  # runtime values will be written
    persist: bool  # the drop-in will be written

    @property
    def runtime_changes(self) -> list[KeyPlan]:
        return [k for k in self.keys if k.action == CHANGE] if self.runtime else []

    def overridden_at_boot(self) -> list[tuple[KeyPlan, sysctld.Persistence]]:
        """Each key the drop-in writes that another file sets differently at boot, with the
        loader and the winning line: after a reboot the machine will not match the profile. A
        runtime-only apply persists nothing, and claims nothing about boot."""
        if not self.persist:
            return []
        return [(k, p) for k in self.keys for p in sysctld.overridden(k.persistence)]

    @property
    def nothing_to_do(self) -> bool:
        return not self.runtime_changes and not (self.persist and self.drop_in_changes)

    def diff(self) -> str:
        import difflib

        old = (self.old_text or "").splitlines(keepends=True)
        new = self.new_text.splitlines(keepends=True)
        before = self.drop_in_path if self.old_text is not None else "/dev/null"
        return "".join(difflib.unified_diff(old, new, fromfile=before, tofile=self.drop_in_path))


def is_ours(text: str | None) -> bool:
    return text is not None and text.startswith(HEADER_MARK)


def _without_time(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [line for line in text.splitlines() if not line.startswith(WRITTEN_MARK)]


def render_drop_in(
    profile: str, profile_path: str, values: dict[str, str], written_at: str, release: str | None
) -> str:
    """The drop-in: tcptune's comment lines, then one `key = value` line per network key. Text
    from names and paths is shown escaped, so no field can start a line of its own."""
    lines = [
        f"{HEADER_MARK}: profile {printable(profile)}. Changes here are replaced by the next "
        "apply.",
        f"{WRITTEN_MARK}{written_at} by tcptune {__version__} on kernel "
        f"{printable(release or 'unknown')}.",
        f"# Profile file: {printable(profile_path)}. Undo with: tcptune revert",
    ]
    lines += [f"{key} = {value}" for key, value in values.items()]
    return "\n".join(only_network_assignments(lines)) + "\n"


def make_plan(
    *,
    profile: str,
    profile_path: str,
    targets: dict[str, str],
    origin: dict[str, str],
    readings: dict[str, Reading],
    version: Version | None,
    release: str | None,
    old_text: str | None,
    conf_files: list[ConfFile],
    cmdline: str | None = None,
    drop_in_name: str = DEFAULT_DROP_IN,
    runtime: bool,
    persist: bool,
    written_at: str,
) -> Plan:
    comparisons = drift.compare(targets, origin, readings, version)
    kept = {c.key: c.target for c in comparisons if c.status != MISSING}
    new_text = render_drop_in(profile, profile_path, kept, written_at, release)
    path = f"/{DROP_IN_DIR}/{drop_in_name}"
    after = conf_files
    if persist:
        after = [
            f for f in conf_files if not (f.directory == DROP_IN_DIR and f.name == drop_in_name)
        ]
        after.append(ConfFile(directory=DROP_IN_DIR, name=drop_in_name, path=path, text=new_text))
    dropped = {}
    if persist:
        dropped = {k: v for k, v in drop_in_values(old_text).items() if k not in kept}
    # every file parsed once, for the profile's keys and the ones the new drop-in leaves out
    boot = sysctld.BootModel(after, cmdline, keys=[*targets, *dropped])
    keys = []
    removed = [
        RemovedKey(
            key=key,
            value=value,
            live=readings[key].value if key in readings else None,
            boot=boot.answers(key),
        )
        for key, value in dropped.items()
    ]
    for c in comparisons:
        if c.status == MISSING:
            action, reason = SKIP, c.reason
        elif c.status == OK:
            action, reason = UNCHANGED, ""
        else:  # drift, or unreadable: write it and read it back
            action, reason = CHANGE, c.reason
        checks = sysctld.persistence(boot, c.key, c.target) if action != SKIP else []
        keys.append(
            KeyPlan(
                key=c.key,
                live=c.value,
                target=c.target,
                origin=c.origin,
                action=action,
                reason=reason,
                persistence=checks,
            )
        )
    return Plan(
        profile=profile,
        profile_path=profile_path,
        keys=keys,
        drop_in_path=path,
        old_text=old_text,
        new_text=new_text,
        drop_in_changes=_without_time(old_text) != _without_time(new_text),
        foreign=old_text is not None and not is_ours(old_text),
        masks=[
            f.path
            for f in conf_files
            if persist and f.name == drop_in_name and f.directory not in (DROP_IN_DIR, "")
        ],
        removed=removed,
        runtime=runtime,
        persist=persist,
    )


def drop_in_values(text: str | None) -> dict[str, str]:
    """The `key = value` lines of a drop-in (tcptune's own, or one --force replaces), by dotted
    key, in order: what it persists today. Comments, lines without '=' and globs are not keys."""
    found: dict[str, str] = {}
    for line in (text or "").splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        key, equals, value = stripped.partition("=")
        key = key.strip().lstrip("-").strip()
        if not equals or not key or any(c in key for c in "*?["):
            continue
        found[sysctld.dotted(sysctld.key_path(key)) if "/" in key else key] = normalise(value)
    return found
