"""The machine: the only code in tcptune that reads or writes it.

/proc/sys, /proc/net, the processes' open files, /etc/sysctl.d and the other sysctl.d
directories, tcptune's profiles, backups and lock: every access to the file system or the kernel
is a function or a System method here (and in sockdiag, the netlink dump it calls), so the rest of
tcptune is pure logic over the values it returns (tcptune.model) and tests/test_layers.py holds
that. A System resolves everything below its root (the --root option or TCPTUNE_ROOT, default /),
so tests and dry runs point tcptune at a fake tree; the path functions take the paths their
callers built below that root, or a profile file named on the command line.

Reads never raise for a single missing or unreadable sysctl: they return a Reading that says what
happened, and the caller reports it. Writes are atomic (temp file, fsync, rename), refuse symlinks
and say what failed and how to fix it.
"""

import errno
import os
import stat as stat_module
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tcptune.errors import BadInput, EnvironmentProblem
from tcptune.model import (
    CONF_MASK,
    CONF_TEXT,
    CONF_UNKNOWN,
    DIRS,
    MISSING,
    PRESENT,
    SYSCTL_CONF,
    UNREADABLE,
    ConfFile,
    Holders,
    Reading,
    normalise,
    parse_int,
)

# A /proc/sys value is a few bytes; refuse to slurp something huge from a hand-made tree.
_MAX_VALUE_BYTES = 64 * 1024


def open_regular(path: Path | str) -> int:
    """A descriptor for reading the regular file at `path`. The open cannot block (O_NONBLOCK):
    a FIFO, socket or device planted there is refused, never waited on or read. Raises OSError
    (IsADirectoryError for a directory)."""
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode):
        return fd
    os.close(fd)
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    raise OSError(errno.EINVAL, "not a regular file", str(path))


def root_from(option: str | None) -> Path:
    """The root to read under: --root, else TCPTUNE_ROOT, else /."""
    source, raw = ("--root", option) if option is not None else ("TCPTUNE_ROOT", None)
    if raw is None:
        raw = os.environ.get("TCPTUNE_ROOT", "/")  # set but empty is a mistake, as --root ""
    if not raw:
        raise BadInput(f"{source} is empty", hint="give a directory, e.g. --root /")
    root = Path(raw)
    if not is_dir(root):
        raise BadInput(f"{source} {raw!r} is not a directory", hint="point it at a filesystem root")
    return root


class System:
    """Read access to one machine (or a fake tree) below `root`."""

    def __init__(self, root: Path | str = "/") -> None:
        self.root = Path(root)

    def path(self, relative: str) -> Path:
        return self.root / relative.lstrip("/")

    def require_proc_sys(self) -> None:
        """Fail early, with the fix, when there is no /proc/sys/net to look at."""
        net = self.path("proc/sys/net")
        if not is_dir(net):
            where = "/" if str(self.root) == "/" else str(self.root)
            raise EnvironmentProblem(
                f"{net} does not exist: no kernel network settings to read under root {where}",
                hint="is /proc mounted? with --root or TCPTUNE_ROOT, point at a tree with proc/sys",
            )

    def read_sysctl(self, key: str) -> Reading:
        """Read one sysctl; never raises for a missing or unreadable key."""
        path = self.path("proc/sys/" + key.replace(".", "/"))
        try:
            with os.fdopen(open_regular(path), "rb") as handle:
                data = handle.read(_MAX_VALUE_BYTES + 1)
        except FileNotFoundError:
            return Reading(key=key, state=MISSING, error="no such key on this kernel")
        except NotADirectoryError:
            return Reading(key=key, state=MISSING, error="no such key on this kernel")
        except PermissionError:
            return Reading(key=key, state=UNREADABLE, error="permission denied")
        except OSError as err:
            reason = err.strerror or str(err)
            if err.errno == errno.EISDIR:
                reason = "is a directory, not a value"
            return Reading(key=key, state=UNREADABLE, error=reason.lower())
        if len(data) > _MAX_VALUE_BYTES:
            return Reading(key=key, state=UNREADABLE, error="value larger than 64 KiB")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return Reading(key=key, state=UNREADABLE, error="value is not UTF-8 text")
        return Reading(key=key, state=PRESENT, value=normalise(text))

    def write_sysctl(self, key: str, value: str) -> None:
        _write_sysctl(self, key, value)

    def kernel_release(self) -> str | None:
        reading = self.read_sysctl("kernel.osrelease")
        return reading.value if reading.state == PRESENT else None

    def _read_text(self, relative: str) -> str | None:
        try:
            fd = open_regular(self.path(relative))
            with open(fd, encoding="utf-8", errors="replace") as handle:
                return handle.read(1024 * 1024)
        except OSError:
            return None

    def sockstat(self) -> dict[str, dict[str, int]] | None:
        """/proc/net/sockstat as {"TCP": {"inuse": 3, "tw": 0, ...}, ...}; None if unreadable."""
        text = self._read_text("proc/net/sockstat")
        return None if text is None else parse_sockstat(text)

    def netstat(self) -> dict[str, dict[str, int]] | None:
        """/proc/net/netstat as {"TcpExt": {"TW": 0, ...}, ...}; None if unreadable."""
        text = self._read_text("proc/net/netstat")
        return None if text is None else parse_netstat(text)

    @property
    def live(self) -> bool:
        """True when the root is the running machine's own /, where the kernel can be asked."""
        return str(self.root) == "/"

    def sock_diag(self, family: int, states: int, feed: Callable[[bytes], bool]) -> None:
        """Dump the kernel's TCP sockets of one family over NETLINK_SOCK_DIAG (see sockdiag).
        Only for the live machine: a tree under another root has no kernel behind it.
        Raises sockdiag.Unavailable when netlink cannot be used."""
        from tcptune import sockdiag

        if not self.live:
            raise sockdiag.Unavailable(f"netlink reads the running kernel, not {self.root}")
        sockdiag.dump(family, states, feed)

    def feed_proc_net_tcp(self, name: str, feed: Callable[[Iterable[str]], None]) -> bool:
        """Hand /proc/net/tcp or /proc/net/tcp6 (`name`), line by line as it is read, to `feed`;
        False when the file does not exist."""
        path = self.path(f"proc/net/{name}")
        try:
            fd = open_regular(path)
            with open(fd, encoding="ascii", errors="replace", buffering=1 << 20) as handle:
                feed(handle)
        except FileNotFoundError:
            return False
        except OSError as err:
            raise EnvironmentProblem(
                f"cannot read {path}: {(err.strerror or str(err)).lower()}",
                hint="is /proc mounted and readable?",
            ) from err
        return True

    def socket_holders(self, inodes: set[int]) -> Holders:
        """Which processes hold these socket inodes: one pass over /proc/<pid>/fd, matching
        the links 'socket:[INODE]'. Processes whose fd directory is unreadable are counted."""
        wanted = {f"socket:[{inode}]" for inode in inodes}
        by_inode: dict[int, list[int]] = {}
        commands: dict[int, str] = {}
        cmdlines: dict[int, str] = {}
        scanned = denied = 0
        proc = str(self.path("proc"))
        try:
            entries = os.listdir(proc) if wanted else []
        except OSError:
            entries = []
        for name in entries:
            if not name.isdigit():
                continue
            fd_dir = f"{proc}/{name}/fd"
            try:
                fds = os.listdir(fd_dir)
            except PermissionError:
                denied += 1
                continue
            except OSError:  # the process exited meanwhile
                continue
            scanned += 1
            pid = int(name)
            held = False
            for fd in fds:
                try:
                    link = os.readlink(f"{fd_dir}/{fd}")
                except OSError:
                    continue
                if link in wanted:
                    by_inode.setdefault(int(link[8:-1]), []).append(pid)
                    held = True
            if held:
                commands[pid] = (self._read_text(f"proc/{name}/comm") or "?").strip()
                raw = self._read_text(f"proc/{name}/cmdline") or ""
                cmdlines[pid] = " ".join(raw.split("\0")).strip()
        return Holders(
            by_inode=by_inode,
            commands=commands,
            cmdlines=cmdlines,
            scanned=scanned,
            denied=denied,
            privileged=os.geteuid() == 0,
        )


def parse_sockstat(text: str) -> dict[str, dict[str, int]]:
    """Lines like 'TCP: inuse 5 orphan 0 tw 2 alloc 7 mem 1', parsed as key/value pairs."""
    result: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        section, sep, rest = line.partition(":")
        if sep:
            words = rest.split()
            result[section.strip()] = _counters(words[::2], words[1::2])
    return result


def parse_netstat(text: str) -> dict[str, dict[str, int]]:
    """/proc/net/netstat: pairs of lines, 'TcpExt: A B C' then 'TcpExt: 1 2 3'."""
    result: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    for names_line, values_line in zip(lines[::2], lines[1::2], strict=False):
        section, _, names = names_line.partition(":")
        section_v, _, values = values_line.partition(":")
        if section == section_v:
            result[section.strip()] = _counters(names.split(), values.split())
    return result


def _counters(names: list[str], values: list[str]) -> dict[str, int]:
    """Counter names paired with their values; a value that is not a number is left out."""
    pairs: dict[str, int] = {}
    for name, value in zip(names, values, strict=False):
        number = parse_int(value)
        if number is not None:
            pairs[name] = number
    return pairs


# --- writing: the only place tcptune changes the machine -----------------------------------------


class SysctlWriteError(Exception):
    """The kernel (or the file system) refused a runtime value."""

    def __init__(self, key: str, reason: str, errno_value: int | None = None) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason
        self.errno = errno_value


def _write_sysctl(system: System, key: str, value: str) -> None:
    """Write one runtime value; raises SysctlWriteError with the kernel's reason."""
    path = system.path("proc/sys/" + key.replace(".", "/"))
    try:
        # O_NOFOLLOW: a symlink in a fake tree must not redirect a root-owned write.
        # O_TRUNC as a shell's `>` does: harmless on /proc/sys, needed on a fake tree's files.
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise SysctlWriteError(key, _reason(err), err.errno) from None
    try:
        # One write of the whole value; /proc/sys parses it on write and reports EINVAL there.
        os.write(fd, (value + "\n").encode())
    except OSError as err:
        raise SysctlWriteError(key, _reason(err), err.errno) from None
    finally:
        try:
            os.close(fd)  # closed explicitly: some errors only surface at close
        except OSError as err:
            raise SysctlWriteError(key, _reason(err), err.errno) from None


def _reason(err: OSError) -> str:
    text = os.strerror(err.errno) if err.errno else str(err)
    hints = {
        errno.ENOENT: " (no such key on this kernel)",
        errno.EROFS: " (/proc/sys is read-only here)",
        errno.EACCES: " (run as root)",
        errno.EPERM: " (not permitted: run as root; in a container the key may be locked)",
        errno.EINVAL: " (the kernel rejected the value)",
    }
    return text + hints.get(err.errno or 0, "")


def proc_sys_read_only(system: System) -> bool:
    try:
        return bool(os.statvfs(system.path("proc/sys")).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def read_conf_files(system: System) -> list[ConfFile]:
    """Every *.conf entry of the sysctl.d directories, and /etc/sysctl.conf, below the root, for
    tcptune.sysctld: its text, a mask (a name that hides later files but holds nothing: a link to
    /dev/null or to nothing, a directory) or unknown (the loaders, as root, read it; tcptune
    cannot: why). A directory that cannot be listed is an unknown entry with no name. A
    directory reached twice (/lib -> usr/lib) is listed once, as systemd does."""
    files = []
    listed: set[tuple[int, int]] = set()
    for directory in dict.fromkeys(d for loader_dirs in DIRS.values() for d in loader_dirs):
        base = system.path(directory)
        try:
            info = os.stat(base)
        except (FileNotFoundError, NotADirectoryError):
            continue  # neither loader reads what is not there
        except OSError as err:
            files.append(_unlisted(directory, err))
            continue
        if not stat_module.S_ISDIR(info.st_mode) or (info.st_dev, info.st_ino) in listed:
            continue
        listed.add((info.st_dev, info.st_ino))
        try:
            names = sorted(os.listdir(base))
        except OSError as err:
            files.append(_unlisted(directory, err))
            continue
        for name in names:
            if name.endswith(".conf"):
                found = conf_entry(system, directory, name)
                if found is not None:
                    files.append(found)
    sysctl_conf = conf_entry(system, "", "sysctl.conf")
    if sysctl_conf is not None:
        files.append(sysctl_conf)
    return files


def read_text_under_root(system: System, relative: str, limit: int = 1024 * 1024) -> str | None:
    """Read a file, resolving symlinks inside the root (an absolute link target is taken as
    relative to the root, never to the host). A link to /dev/null reads as empty (a mask)."""
    current = relative.lstrip("/")
    for _ in range(16):
        path = system.path(current)
        try:
            if os.path.islink(path):
                target = os.readlink(path)
                if target == "/dev/null":
                    return ""
                if target.startswith("/"):
                    current = target.lstrip("/")
                else:
                    current = os.path.normpath(os.path.join(os.path.dirname(current), target))
                    if current.startswith(".."):
                        return None
                continue
            with os.fdopen(open_regular(path), "rb") as handle:
                return handle.read(limit).decode("utf-8", errors="replace")
        except OSError:
            return None
    return None


# The largest drop-in tcptune reads (and backs up), and the largest backup file it reads: far
# above anything real, low enough that a planted giant cannot make a command crawl.
MAX_DROP_IN_BYTES = 8 * 1024 * 1024
MAX_BACKUP_BYTES = 16 * 1024 * 1024


def read_bytes_no_follow(path: Path, limit: int) -> bytes | None:
    """The exact bytes of a regular file, None if absent; refuses symlinks, non-files and files
    over `limit` bytes."""
    found = read_file_and_mode(path, limit)
    return found[0] if found is not None else None


def read_file_and_mode(path: Path, limit: int) -> tuple[bytes, int] | None:
    """The exact bytes and the permission bits of a regular file, from one open file; None if
    absent. Refuses symlinks, non-files and files over `limit` bytes."""
    try:  # O_NONBLOCK: a FIFO planted there is refused below, never waited on
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise BadInput(
                f"{path} is a symlink; refusing to read or replace it",
                hint="remove the link or choose another --drop-in name",
            ) from None
        raise EnvironmentProblem(f"cannot read {path}: {_reason(err)}") from None
    with os.fdopen(fd, "rb") as handle:
        import stat

        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise BadInput(f"{path} is not a regular file", hint="remove it or choose another name")
        data = handle.read(limit + 1)
        if len(data) > limit:
            raise BadInput(
                f"{path} is larger than {limit // (1024 * 1024)} MiB; tcptune will not read it",
                hint="look at what wrote it; move it away if it is not meant to be there",
            )
        return data, stat.S_IMODE(mode)


def refuse_symlink(path: Path) -> None:
    if os.path.islink(path):
        raise BadInput(
            f"{path} is a symlink; tcptune never writes through links",
            hint="remove the link",
        )


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Temp file in the same directory, fsync, rename over the target, fsync the directory:
    a crash leaves the old file or the new one, never a partial file."""
    refuse_symlink(path)
    refuse_symlink(path.parent)
    temp = path.with_name(f".{path.name}.tcptune-{os.getpid()}.tmp")
    try:
        fd = os.open(
            temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode
        )
    except OSError as err:
        raise _write_problem(path, err) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)  # not narrowed by the umask
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as err:
        temp.unlink(missing_ok=True)
        raise _write_problem(path, err) from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def remove_file(path: Path) -> None:
    refuse_symlink(path.parent)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as err:
        raise _write_problem(path, err) from None
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_problem(path: Path, err: OSError) -> EnvironmentProblem:
    fixes = {
        errno.ENOSPC: "free some space",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "run as root",
        errno.EPERM: "run as root",
    }
    return EnvironmentProblem(
        f"cannot write {path}: {os.strerror(err.errno) if err.errno else err}",
        hint=fixes.get(err.errno or 0, "check the path and the disk"),
    )


def refuse_linked_dir(path: Path) -> None:
    """Refuse `path`, or its parent, being a symlink: nothing is read or written through a
    planted link. Changes nothing (read-only commands use it)."""
    for part in (path.parent, path):
        if os.path.islink(part):
            raise BadInput(
                f"{part} is a symlink; refusing to keep backups there", hint="remove the link"
            )


def private_dir(path: Path) -> Path:
    """Create (0700) or check the directory that holds backups; refuse it, or its parent,
    being a symlink (a planted link would send root's writes elsewhere)."""
    refuse_linked_dir(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise _write_problem(path, err) from None
    refuse_symlink(path)
    os.chmod(path, 0o700)
    return path


def list_files(directory: Path, pattern: str) -> list[Path]:
    """Entries matching `pattern` in `directory`, sorted; none if it is not a directory. A
    directory that cannot be read is an environment problem, never an empty list."""
    import fnmatch

    if not is_dir(directory):
        return []
    try:
        names = os.listdir(directory)
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        hint = "run as root" if err.errno in (errno.EACCES, errno.EPERM) else "check the path"
        raise EnvironmentProblem(f"cannot read {directory}: {reason}", hint=hint) from None
    return sorted(directory / name for name in fnmatch.filter(names, pattern))


def open_and_read(path: Path, limit: int) -> tuple[os.stat_result, Path, bytes | None]:
    """One open of `path` (following links, as a user's path may be one), and from that same
    open file: its status, the path it really is, and at most limit + 1 bytes (None when it is
    not a regular file; O_NONBLOCK, so a FIFO cannot block). What is checked is what is read: no
    file can be swapped in between. Raises IsADirectoryError for a directory, OSError."""
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        try:
            real = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # no /proc: the name as resolved now
            real = path.resolve()
        if not stat.S_ISREG(info.st_mode):
            return info, real, None
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return info, real, b"".join(chunks)
    finally:
        os.close(fd)


def remove_stale_temp_files(target: Path) -> None:
    """Temp files a killed write left next to `target` (named .NAME.tcptune-PID.tmp, never
    *.conf, so no loader reads them); safe to remove while holding tcptune's lock."""
    for stale in target.parent.glob(f".{target.name}.tcptune-*.tmp"):
        if not stale.is_symlink():
            stale.unlink(missing_ok=True)


def discard_file(path: Path) -> None:
    """Remove a file if it is there (a leftover, or a backup of nothing)."""
    path.unlink(missing_ok=True)


def prune_files(
    directory: Path, pattern: str, keep: int, order: Callable[[Path], Any] | None = None
) -> None:
    """Remove all but the last `keep` files matching `pattern`, in `order` (default: by name);
    links stay."""
    found = (
        sorted(list_files(directory, pattern), key=order)
        if order
        else list_files(directory, pattern)
    )
    files = [path for path in found if not path.is_symlink()]
    for old in files[:-keep] if len(files) > keep else []:
        old.unlink(missing_ok=True)


def make_dirs(directory: Path, mode: int = 0o755) -> None:
    """Create a directory and its missing parents, as `mkdir -p`, each with `mode` whatever the
    umask (umask 000 would otherwise leave root's /etc/tcptune writable by everyone); raises
    OSError."""
    missing = []
    for part in (directory, *directory.parents):
        if os.path.lexists(part):
            break
        missing.append(part)
    for part in reversed(missing):
        try:
            os.mkdir(part, mode)
        except FileExistsError:  # made meanwhile: leave it as its maker set it
            continue
        os.chmod(part, mode)


def exists(path: Path) -> bool:
    return _probe(path, Path.exists)


def is_file(path: Path) -> bool:
    return _probe(path, Path.is_file)


def is_dir(path: Path) -> bool:
    return _probe(path, Path.is_dir)


def _probe(path: Path, test: Callable[[Path], bool]) -> bool:
    """`test(path)`; pathlib answers False for a missing path or a link loop, and raises for
    the rest: a name the kernel refuses (too long) is bad input, anything else (permission
    denied, I/O error) an environment problem."""
    try:
        return test(path)
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        if err.errno == errno.ENAMETOOLONG:
            raise BadInput(f"{path}: {reason}", hint="give a shorter path") from None
        hint = "run as root" if err.errno in (errno.EACCES, errno.EPERM) else "check the path"
        raise EnvironmentProblem(f"cannot look at {path}: {reason}", hint=hint) from None


def real_path(path: Path) -> Path:
    """The path with every symlink resolved, as the kernel would open it."""
    return path.resolve()


def stat_path(path: Path) -> os.stat_result:
    """stat(2), following links; raises OSError."""
    return path.stat()


def running_as_root() -> bool:
    return os.geteuid() == 0


def host_name() -> str:
    import socket

    return socket.gethostname()


class LockBusy(Exception):
    """Another process holds a lock; `holder` is the pid it wrote into the lock file."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by pid {holder}")
        self.path = path
        self.holder = holder


@contextmanager
def exclusive_lock(path: Path, wait: float) -> Iterator[None]:
    """An flock on `path` (created 0600, never through a link), waiting up to `wait` seconds;
    raises LockBusy after that. The holder's pid is written into the file for whoever waits."""
    import fcntl
    import time

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise EnvironmentProblem(f"cannot open the lock {path}: {err.strerror}") from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                    raise LockBusy(path, holder) from None
                time.sleep(0.05)
        with suppress(OSError):  # the pid is for the message of a waiting process; a full disk
            os.ftruncate(fd, 0)  # must not stop this one
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


# --- sysctl.d entries: what each name holds; the kernel command line -----------------------------

# The largest sysctl configuration file tcptune reads; a larger one is reported as unknown.
MAX_CONF_BYTES = 16 * 1024 * 1024
_MAX_LINKS = 40  # the kernel's MAXSYMLINKS: a longer chain fails with ELOOP for the loaders too


def conf_entry(system: System, directory: str, name: str) -> ConfFile | None:
    """What the loaders find under one name: `directory` "" with name "sysctl.conf" is
    /etc/sysctl.conf. None when nothing is there."""
    relative = f"{directory}/{name}" if directory else SYSCTL_CONF
    shown = "/" + relative

    def entry(state: str, reason: str = "", text: str = "") -> ConfFile:
        return ConfFile(
            directory=directory, name=name, path=shown, text=text, state=state, reason=reason
        )

    text = read_text_under_root(system, relative, limit=MAX_CONF_BYTES + 1)
    if text is not None:
        # Undecodable bytes read as U+FFFD (three bytes): only then is the size looked up.
        if len(text.encode("utf-8", "surrogatepass")) > MAX_CONF_BYTES:
            info = _resolve_conf(system, relative)[1]
            if info is None or info.st_size > MAX_CONF_BYTES:
                megabytes = MAX_CONF_BYTES // (1024 * 1024)
                return entry(CONF_UNKNOWN, f"larger than {megabytes} MiB; tcptune does not read it")
        return entry(CONF_TEXT, text=text)
    found, info, problem = _resolve_conf(system, relative)
    if found == "absent":
        return None
    if found == "missing":
        return entry(CONF_MASK, "a link to nothing")
    if found == "loop":
        return entry(CONF_MASK, "a link loop (the loaders cannot open it)")
    if found == "outside":
        return entry(CONF_UNKNOWN, "a link that climbs above the root; tcptune does not follow it")
    if problem is not None:
        return entry(CONF_UNKNOWN, _conf_reason(problem))
    assert info is not None
    mode = info.st_mode
    if stat_module.S_ISDIR(mode):
        return entry(CONF_MASK, "a directory")
    if stat_module.S_ISCHR(mode) and info.st_rdev == os.makedev(1, 3):
        return entry(CONF_MASK, "a link to /dev/null")
    if not stat_module.S_ISREG(mode):
        return entry(CONF_UNKNOWN, "not a regular file (a FIFO, socket or device)")
    try:  # why it could not be read: the open alone, nothing is read here
        os.close(open_regular(system.path(found)))
    except OSError as err:
        return entry(CONF_UNKNOWN, _conf_reason(err))
    return entry(CONF_UNKNOWN, f"more than 16 links deep ({found}); tcptune does not follow it")


def _resolve_conf(
    system: System, relative: str
) -> tuple[str, os.stat_result | None, OSError | None]:
    """Follow links as read_text_under_root does (an absolute target is taken below the root;
    a relative one climbing above it is "outside"), looking only at metadata: ("absent" |
    "missing" | "loop" | "outside" | the path below the root, its status, an error met on the
    way)."""
    current = relative.lstrip("/")
    for hop in range(_MAX_LINKS + 1):
        path = system.path(current)
        try:
            info = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return ("absent" if hop == 0 else "missing"), None, None
        except OSError as err:
            return current, None, err
        if not stat_module.S_ISLNK(info.st_mode):
            return current, info, None
        try:
            target = os.readlink(path)
        except OSError as err:
            return current, None, err
        if target.startswith("/"):
            current = target.lstrip("/")
        else:
            current = os.path.normpath(os.path.join(os.path.dirname(current), target))
            if current == ".." or current.startswith("../"):
                return "outside", None, None
    return "loop", None, None


def _unlisted(directory: str, err: OSError) -> ConfFile:
    return ConfFile(
        directory=directory,
        name="",
        path=f"/{directory}",
        text="",
        state=CONF_UNKNOWN,
        reason=_conf_reason(err),
    )


def _conf_reason(err: OSError) -> str:
    reason = (os.strerror(err.errno) if err.errno else str(err)).lower()
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"{reason} (run as root to read it)"
    return reason


def read_kernel_cmdline(system: System) -> str | None:
    """The kernel command line (proc/cmdline below the root); None when there is none."""
    return system._read_text("proc/cmdline")
