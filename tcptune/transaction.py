"""Carry out a plan: lock, backup, atomic drop-in write, runtime writes with read-back; revert.

Order matters for safety: the backup is complete on disk (fsynced) before anything is changed,
so whatever happens next, `tcptune revert` can put back the drop-in and every live value. A
failure removes that backup only while the drop-in is still byte for byte what it recorded.

Each backup records what the apply wrote (the SHA-256 of the new drop-in), so a revert notices a
drop-in edited since, and a sequence number (one more than any before it, given under the lock):
backups are ordered by it, never by the clock, which can be stepped back.
"""

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tcptune import __version__
from tcptune.errors import BadInput, EnvironmentProblem, TcptuneError
from tcptune.model import PRESENT, same_value
from tcptune.plan import Plan
from tcptune.system import (
    MAX_BACKUP_BYTES,
    MAX_DROP_IN_BYTES,
    LockBusy,
    SysctlWriteError,
    System,
    atomic_write,
    discard_file,
    exclusive_lock,
    exists,
    list_files,
    make_dirs,
    netns_record,
    private_dir,
    prune_files,
    read_bytes_no_follow,
    read_file_and_mode,
    refuse_linked_dir,
    remove_file,
    remove_stale_temp_files,
    write_errors,
)

STATE_DIR = "var/lib/tcptune"
BACKUP_DIR = f"{STATE_DIR}/backups"
LOCK_FILE = f"{STATE_DIR}/lock"
BACKUP_FORMAT = 1
KEEP_BACKUPS = 50
DEFAULT_LOCK_WAIT = 30.0

# Per-key outcomes of a runtime write
WRITTEN = "written"
FAILED = "failed"
MISMATCH = "mismatch"  # written, but the kernel reads back something else
NOT_REACHED = "not reached"  # an earlier key failed, so this one was not attempted
RESTORED = "restored"

# How the drop-in compares with what a backup recorded (see plan_revert)
AS_WRITTEN = "as written"  # what that apply wrote
AS_BEFORE = "as before"  # what it was before that apply (an apply that stopped, or a revert)
CHANGED = "changed"  # anything else: edited by hand, written by a later apply, removed


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyResult:
    """What a runtime write (or restore) of one key did."""

    key: str
    outcome: str
    detail: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class TransactionResult:
    """What an apply or a revert did."""

    backup_id: str | None
    drop_in_written: bool
    results: list[KeyResult]
    saved: Path | None = None  # where revert --force saved a changed drop-in

    @property
    def ok(self) -> bool:
        return all(r.outcome in (WRITTEN, RESTORED) for r in self.results)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)  # noqa: UP017 (explicit for readers on older Pythons)


# --- lock ---------------------------------------------------------------------------------------


@contextmanager
def locked(system: System, wait: float = DEFAULT_LOCK_WAIT) -> Iterator[None]:
    """One apply or revert at a time: an flock on var/lib/tcptune/lock, waiting up to `wait` s."""
    with write_errors(system.path(STATE_DIR)):
        path = private_dir(system.path(STATE_DIR)) / "lock"
    try:
        with exclusive_lock(path, wait):
            yield
    except LockBusy as busy:
        raise EnvironmentProblem(
            f"another tcptune apply or revert (pid {busy.holder}) holds {path}; waited {wait:g} s",
            hint="wait for it to finish, or raise --lock-wait",
        ) from None


# --- backups ------------------------------------------------------------------------------------


def backup_dir(system: System) -> Path:
    with write_errors(system.path(BACKUP_DIR)):
        return private_dir(system.path(BACKUP_DIR))


def write_file(path: Path, data: bytes, mode: int) -> None:
    """atomic_write, any failure in one line; and on any failure, Ctrl-C included, the temp file
    an interrupt right after its creation can leave is removed (the lock is held: no other
    tcptune is writing one)."""
    try:
        with write_errors(path):
            atomic_write(path, data, mode=mode)
    except BaseException:
        with suppress(Exception):
            remove_stale_temp_files(path)
        raise


def _new_backup_id(directory: Path, at: datetime) -> str:
    base = at.strftime("%Y%m%dT%H%M%S") + f"{at.microsecond:06d}Z"
    candidate, n = base, 1
    while exists(directory / f"{candidate}.json"):
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def make_backup(
    system: System, plan: Plan, drop_in: Path, release: str | None, at: datetime
) -> dict[str, Any]:
    found = read_file_and_mode(drop_in, MAX_DROP_IN_BYTES)
    previous, mode = found if found is not None else (None, None)
    runtime = []
    for key in plan.runtime_changes:
        reading = system.read_sysctl(key.key)
        runtime.append({"key": key.key, "state": reading.state, "previous": reading.value})
    touched = plan.persist and plan.drop_in_changes
    return {
        "format": BACKUP_FORMAT,
        "created": at.isoformat(timespec="seconds"),
        "tool_version": __version__,
        "kernel_release": release,
        "profile": {"name": plan.profile, "path": plan.profile_path},
        "drop_in": {
            "path": plan.drop_in_path,
            "touched": touched,
            "existed": previous is not None,
            "mode": mode,
            "sha256": hashlib.sha256(previous).hexdigest() if previous is not None else None,
            "content_b64": base64.b64encode(previous).decode() if previous is not None else None,
            # What this apply writes: a revert restores only over these bytes (or the old ones)
            # unless --force.
            "written_sha256": (
                hashlib.sha256(plan.new_text.encode()).hexdigest() if touched else None
            ),
        },
        "runtime": runtime,
        "netns": netns_record(system),  # whose live values these are
        "reverted": None,
    }


def save_backup(system: System, backup: dict[str, Any], at: datetime) -> str:
    """Write `backup` (fsynced) under a new id and the next sequence number; prune the oldest.
    Nothing has been changed yet when this runs: on any failure the new backup is removed."""
    directory = backup_dir(system)
    backup_id = _new_backup_id(directory, at)
    backup["id"] = backup_id
    backup["sequence"] = next_sequence(system)
    data = json.dumps(backup, indent=2).encode() + b"\n"
    path = directory / f"{backup_id}.json"
    try:
        write_file(path, data, mode=0o600)
        with write_errors(directory):
            prune_files(directory, "*.json", KEEP_BACKUPS, order=backup_order)
    except BaseException:
        _discard(path)  # a backup of nothing would only confuse `revert`
        raise
    return backup_id


def _stored_sequence(path: Path) -> int | None:
    """The sequence number a backup file records; None for a backup made before tcptune recorded
    one, and for a file that cannot be read or parsed (those sort with the old ones)."""
    try:
        raw = read_bytes_no_follow(path, MAX_BACKUP_BYTES)
        value = json.loads(raw)["sequence"] if raw is not None else None
    except (TcptuneError, OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def next_sequence(system: System) -> int:
    """One more than the highest sequence number of the backups there (1 for the first); called
    under the lock, so no two backups get the same."""
    numbers = [_stored_sequence(p) for p in list_files(system.path(BACKUP_DIR), "*.json")]
    return max((n for n in numbers if n is not None), default=0) + 1


def _order_by_name(stem: str) -> tuple[str, int]:
    """The order of backups made before sequence numbers: by the time in the id, then by the -N
    that tells apart backups of the same microsecond (by name alone "T...Z-1" would sort before
    "T...Z", "-" being before ".")."""
    base, _, n = stem.partition("-")
    return base, int(n) if n.isdigit() else 0


def backup_order(path: Path) -> tuple[int, int, tuple[str, int]]:
    """Oldest first: backups without a sequence number (made by an older tcptune) by their id,
    then every numbered backup by its number (the id only tells apart copies of one number, as
    no two backups tcptune makes share one). The clock plays no part among numbered ones."""
    sequence = _stored_sequence(path)
    name = _order_by_name(path.stem)
    return (0, 0, name) if sequence is None else (1, sequence, name)


def list_backups(system: System) -> list[dict[str, Any]]:
    """Every backup, oldest first (the order of `backup_order`), each file read once; a corrupt
    one as {"id", "corrupt"}."""
    found = []
    refuse_linked_dir(system.path(BACKUP_DIR))
    for path in list_files(system.path(BACKUP_DIR), "*.json"):
        try:
            backup = load_backup(system, path.stem)
        except BadInput as err:
            found.append((backup_order(path), {"id": path.stem, "corrupt": err.message}))
            continue
        sequence = backup.get("sequence")  # load_backup accepts only a positive whole number
        name = _order_by_name(path.stem)
        found.append(((0, 0, name) if sequence is None else (1, sequence, name), backup))
    return [backup for _, backup in sorted(found, key=lambda item: item[0])]


def load_backup(system: System, backup_id: str) -> dict[str, Any]:
    import re

    if not re.fullmatch(r"[0-9]{8}T[0-9]{12}Z(-[0-9]+)?", backup_id):
        raise BadInput(f"invalid backup id {backup_id!r}", hint="list them with: tcptune backups")
    directory = system.path(BACKUP_DIR)
    refuse_linked_dir(directory)  # before anything is read through a planted link
    path = directory / f"{backup_id}.json"
    raw = read_bytes_no_follow(path, MAX_BACKUP_BYTES)
    if raw is None:
        raise BadInput(f"no backup {backup_id!r}", hint="list them with: tcptune backups")
    try:
        backup = json.loads(raw)
        _check_backup(backup, backup_id)
    except (ValueError, KeyError, TypeError) as err:
        raise BadInput(
            f"backup {path} is corrupted or was edited: {err}",
            hint="restore it from another copy, or remove it; tcptune will not guess",
        ) from None
    return backup


SHA256_HEX = frozenset("0123456789abcdef")


def _check_backup(backup: Any, backup_id: str) -> None:
    if not isinstance(backup, dict):
        what = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}
        raise ValueError(f"it holds {what.get(type(backup), 'a number')}, not a JSON object")
    if backup.get("format") != BACKUP_FORMAT:
        raise ValueError(f"unknown format {backup.get('format')!r}")
    if backup.get("id") != backup_id:
        raise ValueError("its id does not match its file name")
    sequence = backup.get("sequence")  # absent in backups of older versions
    if sequence is not None and (
        not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1
    ):
        raise ValueError(f"sequence {sequence!r} is not a positive whole number")
    drop_in = backup["drop_in"]
    if not isinstance(drop_in["path"], str) or not drop_in["path"].startswith("/etc/sysctl.d/"):
        raise ValueError("drop-in path outside /etc/sysctl.d")
    if "/" in drop_in["path"][len("/etc/sysctl.d/") :] or ".." in drop_in["path"]:
        raise ValueError("drop-in path is not a plain file name")
    if drop_in["existed"]:
        content = base64.b64decode(drop_in["content_b64"], validate=True)
        if hashlib.sha256(content).hexdigest() != drop_in["sha256"]:
            raise ValueError("drop-in content does not match its checksum")
    written = drop_in.get("written_sha256")  # absent in backups of older versions
    if written is not None and not (
        isinstance(written, str) and len(written) == 64 and set(written) <= SHA256_HEX
    ):
        raise ValueError("written_sha256 is not a SHA-256 in hex")
    _check_netns(backup.get("netns"))
    for item in backup["runtime"]:
        key = item["key"]
        if not isinstance(key, str) or not key.startswith(("net.ipv4.", "net.ipv6.", "net.core.")):
            raise ValueError(f"runtime key {key!r} is not a network key")
        if ".." in key or "/" in key:
            raise ValueError(f"runtime key {key!r} is not a sysctl name")
        if item["previous"] is not None and not isinstance(item["previous"], str):
            raise ValueError(f"previous value of {key} is not a string")


def _check_netns(record: Any) -> None:
    """A backup's namespace record: absent or null (older backups, --root), or the fields
    netns_record writes, each of its type."""
    if record is None:
        return
    if not isinstance(record, dict) or set(record) != {"inode", "cookie", "entered"}:
        raise ValueError("netns is not {inode, cookie, entered}")
    inode, cookie, entered = record["inode"], record["cookie"], record["entered"]
    if not isinstance(inode, str) or not inode.isascii() or not inode.isdigit() or len(inode) > 20:
        raise ValueError("netns inode is not a number")
    if cookie is not None and (type(cookie) is not int or not 0 <= cookie < 2**64):
        raise ValueError("netns cookie is not a 64-bit number")
    if entered is not None and (not isinstance(entered, str) or len(entered) > 4200):
        raise ValueError("netns entered is not a short string")


def same_netns(recorded: dict[str, Any] | None, current: dict[str, Any] | None) -> bool:
    """Were a backup's live values taken in the namespace this run is in? Unknown on either side
    (an older backup, a tree below --root) counts as the same, as before namespaces were
    recorded. The cookie decides when both have one (an inode number can be used again by a
    later namespace), else the inode."""
    if recorded is None or current is None:
        return True
    if recorded["cookie"] is not None and current["cookie"] is not None:
        return recorded["cookie"] == current["cookie"]
    return recorded["inode"] == current["inode"]


def other_netns(backup: dict[str, Any], system: System) -> str | None:
    """A sentence naming the namespace a backup's live values belong to, when that is not this
    one; None when it is."""
    recorded = backup.get("netns")
    if same_netns(recorded, netns_record(system)):
        return None
    how = f", entered with {recorded['entered']}" if recorded["entered"] else ""
    return f"network namespace {recorded['inode']}{how}"


def mark_reverted(system: System, backup: dict[str, Any], at: datetime) -> None:
    backup["reverted"] = at.isoformat(timespec="seconds")
    data = json.dumps(backup, indent=2).encode() + b"\n"
    write_file(backup_dir(system) / f"{backup['id']}.json", data, mode=0o600)


def newest_unreverted(system: System) -> dict[str, Any]:
    """The newest backup not yet reverted, of this network namespace: a backup of live values
    set in another one (apply --runtime-only with --netns or --pid) is never reverted here."""
    elsewhere = 0
    here = netns_record(system)  # once, not per backup
    for backup in reversed(list_backups(system)):
        if "corrupt" in backup:
            raise BadInput(
                f"backup {backup['id']} is corrupted: {backup['corrupt']}",
                hint=f"revert an older one by id, or remove {BACKUP_DIR}/{backup['id']}.json",
            )
        if backup["reverted"]:
            continue
        if not same_netns(backup.get("netns"), here):
            elsewhere += 1
            continue
        return backup
    if elsewhere:
        raise BadInput(
            f"nothing to revert in this network namespace ({elsewhere} backup(s) of other "
            "namespaces are not reverted)",
            hint="tcptune backups lists them; revert one there: tcptune --netns PATH revert ID",
        )
    raise BadInput("nothing to revert: every backup is already reverted", hint="tcptune backups")


def _discard(path: Path) -> None:
    """Remove a backup of nothing; if even that fails, the stray backup restores nothing but
    harms nothing either (a revert of it puts back what is there), so the first error stands."""
    try:
        with write_errors(path):
            discard_file(path)
    except TcptuneError:
        pass


def _previous_content(backup: dict[str, Any]) -> bytes | None:
    drop_in = backup["drop_in"]
    return base64.b64decode(drop_in["content_b64"]) if drop_in["existed"] else None


def _as_before(drop_in: Path, backup: dict[str, Any]) -> bool:
    """Whether the drop-in is byte for byte (and mode for mode) what `backup` recorded before
    the apply. Anything that cannot be read counts as changed: the backup is then kept."""
    try:
        found = read_file_and_mode(drop_in, MAX_DROP_IN_BYTES)
    except Exception:  # an I/O error, a link or FIFO planted meanwhile: it may have changed
        return False
    if found is None:
        return not backup["drop_in"]["existed"]
    data, mode = found
    return data == _previous_content(backup) and mode == backup["drop_in"]["mode"]


# --- apply --------------------------------------------------------------------------------------


def write_runtime(system: System, key: str, value: str) -> KeyResult:
    try:
        system.write_sysctl(key, value)
    except SysctlWriteError as err:
        return KeyResult(key=key, outcome=FAILED, detail=err.reason)
    reading = system.read_sysctl(key)
    if reading.state != PRESENT or reading.value is None or not same_value(reading.value, value):
        seen = reading.value if reading.state == PRESENT else reading.error
        return KeyResult(
            key=key, outcome=MISMATCH, detail=f"wrote {value!r}, the kernel reads back {seen!r}"
        )
    return KeyResult(key=key, outcome=WRITTEN)


def execute(
    system: System,
    plan: Plan,
    release: str | None,
    *,
    clock: Callable[[], datetime] = now_utc,
) -> TransactionResult:
    """Apply a plan made by tcptune.plan, under the lock (see `locked`). The caller checked
    nothing_to_do and --force, and made the plan while holding the lock. `clock` gives the
    backup's time (and id); the order of backups does not depend on it."""
    drop_in = system.path(plan.drop_in_path)
    at = clock()
    backup = make_backup(system, plan, drop_in, release, at)
    backup_id = save_backup(system, backup, at)
    backup_file = system.path(f"{BACKUP_DIR}/{backup_id}.json")
    written = False
    if plan.persist and plan.drop_in_changes:
        try:
            with write_errors(drop_in):
                make_dirs(drop_in.parent)
                remove_stale_temp_files(drop_in)
            write_file(drop_in, plan.new_text.encode(), mode=0o644)
        except BaseException as err:
            # The rename may have happened before the failure (an I/O error syncing the
            # directory, Ctrl-C): the file, not the exception, tells. Only a drop-in still
            # byte-identical to the one backed up lets the backup go.
            if _as_before(drop_in, backup):
                _discard(backup_file)
                raise
            if isinstance(err, TcptuneError):
                hint = f"{err.hint}; " if err.hint else ""
                raise type(err)(
                    err.message,
                    hint=f"{hint}{plan.drop_in_path} may have changed: tcptune revert "
                    f"{backup_id} puts back the previous state",
                ) from None
            raise
        written = True
    results: list[KeyResult] = []
    failed = False
    for key in plan.runtime_changes:
        if failed:
            results.append(KeyResult(key=key.key, outcome=NOT_REACHED))
            continue
        result = write_runtime(system, key.key, key.target)
        results.append(result)
        failed = result.outcome == FAILED
    return TransactionResult(backup_id=backup_id, drop_in_written=written, results=results)


# --- revert -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class RevertPlan:
    """What a revert will put back, and what each key reads now."""

    backup: dict[str, Any]
    drop_in_action: str  # "restore", "remove", or "keep"
    runtime: list[tuple[str, str | None, str | None]]  # key, value now, value to restore
    drop_in_now: str = AS_WRITTEN  # AS_WRITTEN, AS_BEFORE or CHANGED ("keep": not looked at)
    current: bytes | None = None  # the drop-in's bytes now, when CHANGED (saved by --force)

    @property
    def changed(self) -> bool:
        return self.drop_in_now == CHANGED

    def why_changed(self) -> str:
        """Why the drop-in counts as changed, for the refusal."""
        path, backup_id = self.backup["drop_in"]["path"], self.backup["id"]
        if self.backup["drop_in"].get("written_sha256") is None:
            return (
                f"backup {backup_id} was made by a tcptune that did not record what it wrote, "
                f"and {path} is not what it was before that apply, so an edit cannot be ruled out"
            )
        if self.current is None:
            return f"{path} was removed after backup {backup_id} was made"
        return (
            f"{path} was changed after backup {backup_id} wrote it (edited, or written by a "
            "later apply)"
        )


def plan_revert(system: System, backup: dict[str, Any]) -> RevertPlan:
    drop_in = backup["drop_in"]
    runtime = []
    for item in backup["runtime"]:
        now = system.read_sysctl(item["key"])
        runtime.append((item["key"], now.value if now.state == PRESENT else None, item["previous"]))
    if not drop_in.get("touched", True):
        return RevertPlan(backup=backup, drop_in_action="keep", runtime=runtime)
    action = "restore" if drop_in["existed"] else "remove"
    current = read_bytes_no_follow(system.path(drop_in["path"]), MAX_DROP_IN_BYTES)
    written = drop_in.get("written_sha256")
    if current == _previous_content(backup):
        state = AS_BEFORE
    elif current is not None and written and hashlib.sha256(current).hexdigest() == written:
        state = AS_WRITTEN
    else:
        state = CHANGED
    return RevertPlan(
        backup=backup,
        drop_in_action=action,
        runtime=runtime,
        drop_in_now=state,
        current=current if state == CHANGED else None,
    )


def refuse_changed(plan: RevertPlan) -> None:
    """A revert would overwrite or remove a drop-in that is not what the apply wrote: refused,
    unless --force (which saves it first)."""
    if plan.changed:
        raise BadInput(
            plan.why_changed(),
            hint="revert the newer backups first, or --force, which saves the file as it is now "
            "next to the backups and reverts",
        )


def save_changed(system: System, plan: RevertPlan) -> Path | None:
    """Keep the changed drop-in (0600, fsynced) next to the backups, as ID.edited-N.conf, before
    a forced revert replaces it; None when there is nothing to keep (it was removed)."""
    if plan.current is None:
        return None
    directory = backup_dir(system)
    backup_id = plan.backup["id"]
    for n in range(1, 1000):
        path = directory / f"{backup_id}.edited-{n}.conf"
        if not exists(path):
            write_file(path, plan.current, mode=0o600)
            return path
    raise EnvironmentProblem(
        f"{directory} already holds 999 saved copies of {plan.backup['drop_in']['path']}",
        hint=f"move the {backup_id}.edited-*.conf files away",
    )


def revert(system: System, plan: RevertPlan, *, force: bool = False) -> TransactionResult:
    """Carry out `plan`. The caller holds the lock (`locked`), and chose the backup and made the
    plan under it: an apply that finished while it waited is then part of what it sees. A
    changed drop-in needs `force`, and is saved before it is replaced."""
    backup = plan.backup
    drop_in = system.path(backup["drop_in"]["path"])
    saved = None
    if plan.changed:
        if not force:
            refuse_changed(plan)
        saved = save_changed(system, plan)
    written = False
    if plan.drop_in_action == "restore":
        content = base64.b64decode(backup["drop_in"]["content_b64"])
        with write_errors(drop_in):
            make_dirs(drop_in.parent)
            remove_stale_temp_files(drop_in)
        write_file(drop_in, content, mode=backup["drop_in"]["mode"] or 0o644)
        written = True
    elif plan.drop_in_action == "remove":
        with write_errors(drop_in):
            remove_stale_temp_files(drop_in)
            remove_file(drop_in)
        written = True
    results = []
    for key, _now, previous in plan.runtime:
        if previous is None:
            results.append(
                KeyResult(
                    key=key, outcome=RESTORED, detail="had no readable value before; left as is"
                )
            )
            continue
        result = write_runtime(system, key, previous)
        results.append(replace(result, outcome=RESTORED) if result.outcome == WRITTEN else result)
    if all(r.outcome == RESTORED for r in results):
        mark_reverted(system, backup, now_utc())
    return TransactionResult(
        backup_id=backup["id"], drop_in_written=written, results=results, saved=saved
    )
