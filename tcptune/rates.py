"""Pure: CLOSE_WAIT growth per owner, in sockets per minute, between two looks at the machine.

A leak is a program whose CLOSE_WAIT count keeps rising; a count alone names it only once it is a
pile. Two snapshots of the owners' counts give the growth: over the window of `sockets --watch`
(both held in memory), or between two runs of `sockets --output` (the previous one kept in a small
state file, /var/lib/tcptune/close-wait.json, which tcptune.system reads and writes). The state
file is read as hostile input: anything that is not exactly what `to_json` writes is refused
(ValueError) and the rates start again.
"""

import json
import math
from dataclasses import dataclass

from tcptune.census import Owner

STATE_DIR = "var/lib/tcptune"  # below the root; the backups' directory too (tcptune.transaction)
STATE_FILE = "close-wait.json"
STATE_FORMAT = 1
MAX_STATE_OWNERS = 1000  # owners kept in the state file, largest first
MAX_STATE_BYTES = 1024 * 1024
_MAX_LABEL = 256

# An owner as the metrics name it: (pid, command, uid), each a string. Sockets no visible process
# holds are "unknown" per uid; the owners beyond the top N shown are summed as "other".
OwnerKey = tuple[str, str, str]
UNKNOWN = "unknown"
OTHER: OwnerKey = ("other", "other", "")


def owner_key(owner: Owner) -> OwnerKey:
    if owner.pid is None:
        return (UNKNOWN, UNKNOWN, str(owner.uid))
    return (str(owner.pid), owner.command or "?", str(owner.uid))


@dataclass(frozen=True, kw_only=True, slots=True)
class Snapshot:
    """The CLOSE_WAIT owners' counts at one moment."""

    time: float  # seconds since the epoch
    boot_id: str | None  # /proc/sys/kernel/random/boot_id: pids mean nothing across a reboot
    netns: str  # the network namespace counted (tcptune.system.netns_id)
    close_wait: int  # every CLOSE_WAIT socket
    owners: dict[OwnerKey, int]
    complete: bool  # every owner is in `owners` (an owner absent had none)


def snapshot(
    owners: list[Owner], close_wait: int, *, time: float, boot_id: str | None, netns: str
) -> Snapshot:
    counts: dict[OwnerKey, int] = {}
    for owner in owners:
        key = owner_key(owner)
        counts[key] = counts.get(key, 0) + owner.count
    return Snapshot(
        time=time,
        boot_id=boot_id,
        netns=netns,
        close_wait=close_wait,
        owners=counts,
        complete=True,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Growth:
    """CLOSE_WAIT sockets gained per minute over `window` seconds (negative: released)."""

    window: float
    total: float  # all CLOSE_WAIT sockets
    per_owner: dict[OwnerKey, float]  # owners seen now; absent: no baseline for it

    def ranked(self) -> list[tuple[OwnerKey, float]]:
        """Fastest growing first; ties in the order of the key."""
        return sorted(self.per_owner.items(), key=lambda item: (-item[1], item[0]))


def growth(before: Snapshot | None, after: Snapshot) -> Growth | None:
    """The growth from `before` to `after`; None when there is no usable baseline: none yet,
    another boot or namespace (pids differ), or a clock that did not move forward."""
    if before is None or before.boot_id != after.boot_id or before.netns != after.netns:
        return None
    window = after.time - before.time
    if not window > 0:
        return None
    minutes = window / 60
    per_owner = {}
    for key, count in after.owners.items():
        previous = before.owners.get(key)
        if previous is None and not before.complete:
            continue  # it may have been among the owners the state file left out
        per_owner[key] = (count - (previous or 0)) / minutes
    return Growth(
        window=window,
        total=(after.close_wait - before.close_wait) / minutes,
        per_owner=per_owner,
    )


def to_json(snap: Snapshot) -> bytes:
    """The state file: the largest MAX_STATE_OWNERS owners (complete is false if more)."""
    ranked = sorted(snap.owners.items(), key=lambda item: (-item[1], item[0]))
    kept = ranked[:MAX_STATE_OWNERS]
    document = {
        "format": STATE_FORMAT,
        "time": snap.time,
        "boot_id": snap.boot_id,
        "netns": snap.netns,
        "close_wait": snap.close_wait,
        "complete": snap.complete and len(kept) == len(ranked),
        "owners": [[*key, count] for key, count in kept],
    }
    return (json.dumps(document, ensure_ascii=True, separators=(",", ":")) + "\n").encode()


def _label(value: object) -> str:
    if not isinstance(value, str) or len(value) > _MAX_LABEL:
        raise ValueError("a label that is not a short string")
    return value


def _count(value: object) -> int:
    if type(value) is not int or not 0 <= value < 2**32:
        raise ValueError("a count that is not a whole number of sockets")
    return value


def from_json(data: bytes) -> Snapshot:
    """Read a state file; ValueError for anything to_json would not have written."""
    if len(data) > MAX_STATE_BYTES:
        raise ValueError(f"larger than {MAX_STATE_BYTES // 1024} KiB")
    try:
        document = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"not JSON ({err})") from None
    if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
        raise ValueError(f"not a format {STATE_FORMAT} state file")
    if set(document) != {"format", "time", "boot_id", "netns", "close_wait", "complete", "owners"}:
        raise ValueError("unexpected fields")
    moment = document["time"]
    if type(moment) not in (int, float) or not math.isfinite(moment):
        raise ValueError("a time that is not a number")
    boot_id = document["boot_id"]
    if boot_id is not None:
        boot_id = _label(boot_id)
    if type(document["complete"]) is not bool:
        raise ValueError("complete is not true or false")
    rows = document["owners"]
    if not isinstance(rows, list) or len(rows) > MAX_STATE_OWNERS:
        raise ValueError(f"owners is not a list of at most {MAX_STATE_OWNERS}")
    owners: dict[OwnerKey, int] = {}
    for row in rows:
        if not isinstance(row, list) or len(row) != 4:
            raise ValueError("an owner that is not [pid, command, uid, count]")
        key = (_label(row[0]), _label(row[1]), _label(row[2]))
        if key in owners:
            raise ValueError("an owner listed twice")
        owners[key] = _count(row[3])
    return Snapshot(
        time=float(moment),
        boot_id=boot_id,
        netns=_label(document["netns"]),
        close_wait=_count(document["close_wait"]),
        owners=owners,
        complete=document["complete"],
    )
