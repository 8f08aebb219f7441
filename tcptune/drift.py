"""Pure: live readings against a profile's targets. Used by `check PROFILE` (and apply's plan)."""

from dataclasses import dataclass, replace

from tcptune import keys, sysctld
from tcptune.kernel import Version, format_version
from tcptune.model import MISSING, OK, PRESENT, UNREADABLE, Reading, same_value

DRIFT = "drift"  # the status of a key whose live value (or boot value) is not the target


@dataclass(frozen=True, kw_only=True, slots=True)
class Comparison:
    """One profile key against the machine."""

    key: str
    value: str | None  # live, normalised
    target: str
    origin: str  # the profile in the extends chain that set the target
    status: str  # OK, DRIFT, MISSING (skipped here) or UNREADABLE
    reason: str = ""  # why a key is skipped or unreadable
    boot: tuple[sysctld.Persistence, ...] = ()  # per loader: what the key holds after boot
    boot_note: str = ""  # the same, as a sentence per loader
    boot_summary: str = ""

    @property
    def in_sync(self) -> bool | None:
        if self.status in (OK, DRIFT):
            return self.status == OK
        return None


def _skip_reason(key: str, reading: Reading, version: Version | None) -> str:
    spec = keys.KEYS.get(key)
    if spec is not None:
        if spec.removed and version and version[:2] >= spec.removed[:2]:
            return f"removed in {format_version(spec.removed)}; skipped on this kernel"
        if spec.added and version and version[:2] < spec.added[:2]:
            return f"added in {format_version(spec.added)}; skipped on this older kernel"
        if spec.per_netns == "no":
            return "global key, not visible inside a network namespace; skipped"
    return f"{reading.error or 'not present'}; skipped"


def compare(
    targets: dict[str, str],
    origin: dict[str, str],
    readings: dict[str, Reading],
    version: Version | None,
) -> list[Comparison]:
    result = []
    for key, target in targets.items():
        reading = readings[key]
        spec = keys.KEYS.get(key)
        needs = spec.value_since.get(target) if spec else None
        if reading.state == MISSING:
            status, reason = MISSING, _skip_reason(key, reading, version)
        elif reading.state != PRESENT or reading.value is None:
            status, reason = UNREADABLE, reading.error
        elif needs and version and version[:2] < needs[:2]:
            status = MISSING
            reason = f"value {target} needs kernel {format_version(needs)} or later; skipped"
        else:
            status = OK if same_value(reading.value, target) else DRIFT
            reason = ""
        value = reading.value if reading.state == PRESENT else None
        result.append(
            Comparison(
                key=key,
                value=value,
                target=target,
                origin=origin.get(key, ""),
                status=status,
                reason=reason,
            )
        )
    return result


def with_boot(comparisons: list[Comparison], model: sysctld.BootModel) -> list[Comparison]:
    """Add what each loader leaves at boot. A key that another file overrides at boot is drift
    even when its live value matches (under either loader: which one runs differs by distro);
    one whose boot value cannot be told (a file tcptune cannot read) is unreadable, naming it."""
    result = []
    for c in comparisons:
        if c.status == MISSING:
            result.append(c)
            continue
        checks = sysctld.persistence(model, c.key, c.target)
        found = replace(
            c,
            boot=tuple(checks),
            boot_note="; ".join(p.describe() for p in checks),
            boot_summary=sysctld.boot_summary(checks),
        )
        if c.status == OK and sysctld.overridden(checks):
            at_boot = sysctld.boot_summary(checks, detailed=True)
            found = replace(
                found, status=DRIFT, reason=f"live value matches, but at boot {at_boot}"
            )
        elif c.status == OK and sysctld.unknown(checks):
            at_boot = sysctld.boot_summary(checks, detailed=True)
            found = replace(
                found,
                status=UNREADABLE,
                reason=f"live value matches, but what boot sets cannot be told: {at_boot}",
            )
        result.append(found)
    return result
