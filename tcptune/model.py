"""The values tcptune's layers hand to each other, and the pure functions over them.

A Reading (what one sysctl read found), a Finding (what a rule says, how severe, on what
authority), a sysctl.d file and its assignments, the holders of sockets, and how values are
normalised, compared and parsed. This module imports no other tcptune module, so the system layer,
the rules, the census and the commands all build on it without import cycles.
"""

from collections.abc import Iterable
from dataclasses import dataclass

# What reading a key found (Reading.state). A setting or a profile comparison whose key could not be
# read carries the same word as its status; OK is the status of one that is fine.
PRESENT = "present"
MISSING = "missing"
UNREADABLE = "unreadable"
OK = "ok"

# Severities of findings, in rising order.
INFO = "info"
WARNING = "warning"
ERROR = "error"
SEVERITY_RANK = {INFO: 0, WARNING: 1, ERROR: 2}


@dataclass(frozen=True, kw_only=True, slots=True)
class Reading:
    """One sysctl as read below the root."""

    key: str
    state: str  # PRESENT, MISSING or UNREADABLE
    value: str | None = None  # whitespace-normalised, as `sysctl -n` prints it with single spaces
    error: str = ""  # why it is missing or unreadable


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """What a rule says about a key (or a socket state such as CLOSE_WAIT), and its source."""

    severity: str  # INFO, WARNING or ERROR
    key: str
    message: str
    source: str


def worst(findings: Iterable[Finding]) -> str | None:
    """The highest severity among the findings; None when there are none."""
    seen = {f.severity for f in findings}
    return next((s for s in (ERROR, WARNING, INFO) if s in seen), None)


# --- values --------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Collapse the kernel's tabs and newlines: '32768\\t60999\\n' -> '32768 60999'."""
    return " ".join(text.split())


def canonical(value: str) -> str:
    """A value as the kernel prints it back: blanks collapsed, no blanks around list commas."""
    return normalise(value).replace(", ", ",").replace(" ,", ",")


def same_value(live: str, target: str) -> bool:
    """Compare as the kernel would print them: whitespace and list form normalised."""
    return canonical(live) == canonical(target)


MAX_DIGITS = 20  # a 64-bit value has at most 20 decimal digits


def parse_int(text: str | None) -> int | None:
    """A decimal integer as the kernel prints one ('4096', '-1'), blanks around it allowed;
    None for anything else (hex, '+1', '1_000', other scripts' digits, more digits than any
    kernel value has)."""
    if text is None:
        return None
    text = text.strip()
    digits = text[1:] if text.startswith("-") else text
    usable = digits.isascii() and digits.isdigit() and len(digits) <= MAX_DIGITS
    return int(text) if usable else None


def parse_port_range(value: str | None) -> tuple[int, int] | None:
    """ip_local_port_range 'low high' as two ports, low <= high; None if it is not that."""
    parts = (value or "").split()
    if len(parts) != 2:
        return None
    low, high = parse_int(parts[0]), parse_int(parts[1])
    if low is None or high is None or low < 0 or low > high:
        return None
    return low, high


def reserved_ports(text: str | None, low: int, high: int) -> int:
    """How many ports of [low, high] ip_local_reserved_ports ('8080,9000-9100') takes away."""
    if not text:
        return 0
    taken: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        start, end = parse_int(first), parse_int(last or first)
        if start is None or end is None:
            continue
        taken.update(range(max(start, low), min(end, high) + 1))
    return len(taken)


def usable_ports(port_range: tuple[int, int], reserved: str | None) -> int:
    """Ephemeral ports per destination: the range less the reserved ports inside it."""
    low, high = port_range
    return max(0, high - low + 1 - reserved_ports(reserved, low, high))


# --- sysctl.d ------------------------------------------------------------------------------------

PROCPS = "procps"  # sysctl --system
SYSTEMD = "systemd"  # systemd-sysctl
LOADERS = (PROCPS, SYSTEMD)

# Where each loader looks, in order, below the root; procps also reads SYSCTL_CONF, last. Both read
# /lib/sysctl.d: procps always, systemd when built with split-usr (Debian 12's systemd 252 is); on a
# merged /usr it is /usr/lib/sysctl.d again and changes nothing (docs/kernel-facts.md).
COMMON_DIRS = (
    "etc/sysctl.d",
    "run/sysctl.d",
    "usr/local/lib/sysctl.d",
    "usr/lib/sysctl.d",
    "lib/sysctl.d",
)
DIRS = {PROCPS: COMMON_DIRS, SYSTEMD: COMMON_DIRS}
SYSCTL_CONF = "etc/sysctl.conf"
NETWORK_PREFIXES = ("net.ipv4.", "net.ipv6.", "net.core.")  # the only keys tcptune writes

# What was found under a sysctl.d name (ConfFile.state).
CONF_TEXT = "text"  # read: `text` holds it ("" for a link to /dev/null)
CONF_MASK = "mask"  # nothing to read, but the name hides later files: `reason` says what it is
CONF_UNKNOWN = "unknown"  # the loaders read it but tcptune cannot: `reason` says why


@dataclass(frozen=True, kw_only=True, slots=True)
class ConfFile:
    """One sysctl configuration file as found below the root; with an empty `name`, a directory
    that could not be listed (state CONF_UNKNOWN)."""

    directory: str  # e.g. "etc/sysctl.d", or "" for etc/sysctl.conf
    name: str  # file name, e.g. "99-tcptune.conf"
    path: str  # as shown to the user, e.g. "/etc/sysctl.d/99-tcptune.conf"
    text: str  # empty unless state is CONF_TEXT
    state: str = CONF_TEXT
    reason: str = ""  # for CONF_MASK and CONF_UNKNOWN: what it is, or why it was not read


# --- sockets -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Holders:
    """What a scan of /proc/<pid>/fd found: which processes hold which socket inodes."""

    by_inode: dict[int, list[int]]  # inode -> pids holding it
    commands: dict[int, str]  # pid -> command name (/proc/<pid>/comm)
    cmdlines: dict[int, str]  # pid -> command line
    scanned: int  # processes whose fd directory was read
    denied: int  # processes whose fd directory could not be read (permission)
    privileged: bool  # running as root


def only_network_assignments(lines: list[str]) -> list[str]:
    """`lines` as they are, once each is known to be a comment or a one-line network key
    assignment: anything else reaching a drop-in is a bug, and nothing is written."""
    for line in lines:
        key, equals, _ = line.lstrip("-").partition(" = ")
        assignment = equals and key.startswith(NETWORK_PREFIXES) and " " not in key
        if not (line.startswith("#") or assignment) or not line.isprintable():
            raise ValueError(f"refusing to write a drop-in line that is not ours: {line!r}")
    return lines
