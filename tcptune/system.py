"""The machine: the only code in tcptune that reads or writes it.

/proc/sys, /proc/net, the processes' open files, /etc/sysctl.d and the other sysctl.d
directories, tcptune's profiles, backups and lock: every access to the file system or the kernel
is a function or a System method here (and in sockdiag, the netlink dump it calls), so the rest of
tcptune is pure logic over the values it returns (tcptune.model) and tests/test_layers.py holds
that. A System reads and writes below its root (the --root option or TCPTUNE_ROOT, default /),
so tests and dry runs point tcptune at a fake tree.

Paths below a root are RootedPath objects (System.path makes them). Every function here resolves
them with one resolver, `_Walk`: component by component on directory descriptors, from a
descriptor of the root, never letting the kernel follow a link. A link is followed by reading it
and walking on inside the root (an absolute target starts again at the root, `..` stops at it:
chroot semantics), at most 40 of them. Reads then open the file relative to the descriptor of its
directory; writes do too (openat, renameat, unlinkat, mkdirat), the written name is never a link
and neither is the directory that holds it, and a directory is created only where the path names
it, never at a link's target. So no link, and no directory swapped for a link meanwhile, takes a
read or a write out of the root. Other paths (a profile named on the command line, --output) are
walked the same way from /.

Reads never raise for a single missing or unreadable sysctl: they return a Reading that says what
happened, and the caller reports it. Writes are atomic (temp file, fsync, rename), refuse symlinks
and say what failed and how to fix it.
"""

import errno
import os
import stat
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


# --- paths below a root, and the one resolver for them -------------------------------------------


class RootedPath(type(Path())):  # type: ignore[misc]  # PosixPath
    """A path below a top directory: the root of a System, or the directory of a profile that
    names its parent by a relative path. The functions of this module resolve it inside that
    directory only (`_Walk`). Paths derived from it (`/`, `.parent`, `.with_name`) keep the top:
    each top has its own subclass (see `below`), which pathlib carries over to every derived
    path. Everything else about it is an ordinary path (str, comparisons, messages)."""

    top = "/"

    def inner(self) -> str:
        """The part below the top, "" for the top itself."""
        top = Path(self.top).parts
        if self.parts[: len(top)] != top:  # `.parent` of the top itself: a bug
            raise ValueError(f"{self} is not below {self.top}")
        return "/".join(self.parts[len(top) :])


_TOPS: dict[str, type[RootedPath]] = {}


def below(top: Path | str, relative: str = "") -> RootedPath:
    """`relative` below the directory `top`, resolved inside it by this module."""
    key = str(Path(top))
    kind = _TOPS.get(key)
    if kind is None:
        kind = _TOPS[key] = type("RootedPath", (RootedPath,), {"top": key})
    return kind(key, relative.lstrip("/"))


class Untrusted(Exception):
    """A directory or link on the way to a file fails the rule the caller gave (`check`)."""


class _LinkInTheWay(Exception):
    """A link where a write needs a real directory or file; `shown` is where it is."""

    def __init__(self, shown: str) -> None:
        super().__init__(shown)
        self.shown = shown


# A rule for each directory entered and each link followed on the way: (where it is, its
# status, the status of the directory holding it, for links) -> the problem, or None.
Check = Callable[[str, os.stat_result, os.stat_result | None], str | None]

MAX_LINKS = 40  # as the kernel's limit on links followed in one lookup
_LOOKUP = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class _Walk:
    """One lookup of a path, component by component, each opened with O_PATH | O_NOFOLLOW
    relative to the descriptor of the directory before it (openat), from a descriptor of the
    top: a RootedPath's top, or / for any other path (a relative one taken from the working
    directory). A link is read (readlinkat on the descriptor of the link that was opened) and
    its target walked on: relative to the link's directory, or from the top for an absolute
    target; `..` goes back to the directory it came from and never above the top. So nothing
    resolves outside the top, whatever the links say (openat2's RESOLVE_IN_ROOT, done by hand:
    os and stat only, nothing new loaded on start-up). At most MAX_LINKS links (ELOOP).

    `parent()` walks to the directory that holds the last name and returns its descriptor and
    that name, for the caller to open, create, rename or remove relative to it; `follow(name)`
    goes on through a last name that is a link; `directory()` walks through every name.
    `make` (a mode) creates missing directories named by the path, never a link's target.
    `plain_parent` refuses a link as the directory that holds the last name (writes).
    `check` judges each directory entered, from / down, and each link followed (Untrusted)."""

    def __init__(
        self,
        path: Path | str,
        *,
        make: int | None = None,
        check: Check | None = None,
        plain_parent: bool = False,
    ) -> None:
        if isinstance(path, RootedPath):
            self.top, inner = path.top, path.inner()
        else:
            text = os.fspath(path)
            self.top, inner = "/", text if text.startswith("/") else f"{os.getcwd()}/{text}"
        self.make = make
        self.check = check
        self.plain_parent = plain_parent
        self.hops = 0
        self.chain: list[str] = []  # names of the directories entered below the top
        self.pending: list[tuple[str, bool]] = []  # names still to walk, last first; True: named
        self.link: tuple[str, str] = ("", "")  # the last link followed, and its target
        self.stack: list[int] = [self._open_top()]
        self._push(inner, named=True)

    def __enter__(self) -> "_Walk":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        while self.stack:
            os.close(self.stack.pop())

    def shown(self, name: str | None = None) -> str:
        """Where the walk is (or the name in it), as a path for messages."""
        parts = [*self.chain, name] if name else self.chain
        if not parts:
            return self.top
        return ("" if self.top == "/" else self.top) + "/" + "/".join(parts)

    def _open_top(self) -> int:
        if self.check is None or self.top == "/":
            fd = os.open(self.top, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            if self.check is not None:
                self._judge("/", os.fstat(fd), None)
            return fd
        # Checked: every directory from / down to the top passes the rule too.
        top = self.top if self.top.startswith("/") else f"{os.getcwd()}/{self.top}"
        with _Walk(Path(top), check=self.check) as outer:
            return os.dup(outer.directory())

    def _push(self, text: str, *, named: bool) -> None:
        parts = [part for part in text.split("/") if part and part != "."]
        self.pending.extend((part, named) for part in reversed(parts))

    def _judge(self, shown: str, info: os.stat_result, holder: os.stat_result | None) -> None:
        if self.check is not None:
            problem = self.check(shown, info, holder)
            if problem:
                raise Untrusted(problem)

    def _enter(self, name: str, named: bool, *, no_link: bool) -> None:
        """Step into the directory `name`, or through the link `name`."""
        if name == "..":
            if len(self.stack) > 1:  # never above the top
                os.close(self.stack.pop())
                self.chain.pop()
            return
        try:
            fd = os.open(name, _LOOKUP, dir_fd=self.stack[-1])
        except FileNotFoundError:
            if self.make is None:
                raise
            fd = self._make(name, named)
        try:
            info = os.fstat(fd)
            if stat.S_ISLNK(info.st_mode):
                if no_link:
                    raise _LinkInTheWay(self.shown(name))
                self._follow(fd, name, info)
                os.close(fd)
                return
            if not stat.S_ISDIR(info.st_mode):
                raise NotADirectoryError(
                    errno.ENOTDIR, os.strerror(errno.ENOTDIR), self.shown(name)
                )
            self._judge(self.shown(name), info, None)
        except BaseException:
            os.close(fd)
            raise
        self.stack.append(fd)
        self.chain.append(name)

    def _make(self, name: str, named: bool) -> int:
        if not named:  # the target of a link: tcptune creates nothing there
            link, target = self.link
            raise BadInput(
                f"{link} is a symlink to {target!r}, which does not exist inside {self.top}",
                hint="links are followed inside the root only: create the target, or remove "
                "the link",
            )
        here = self.stack[-1]
        try:
            os.mkdir(name, self.make, dir_fd=here)  # type: ignore[arg-type]
        except FileExistsError:  # made meanwhile: leave it as its maker set it
            return os.open(name, _LOOKUP, dir_fd=here)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=here)
        os.fchmod(fd, self.make)  # type: ignore[arg-type]  # whatever the umask
        return fd

    def _follow(self, fd: int, name: str, info: os.stat_result) -> str:
        if self.check is not None:
            self._judge(self.shown(name), info, os.fstat(self.stack[-1]))
        self.hops += 1
        if self.hops > MAX_LINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), self.shown(name))
        target = os.readlink("", dir_fd=fd)  # the link opened above, whatever has its name now
        self.link = (self.shown(name), target)
        if target.startswith("/"):
            while len(self.stack) > 1:
                os.close(self.stack.pop())
            self.chain.clear()
        self._push(target, named=False)
        return target

    def parent(self) -> tuple[int, str]:
        """Walk to the directory that holds the last name: its descriptor (owned by the walk)
        and that name ("." when the path is its top)."""
        while self.pending:
            name, named = self.pending.pop()
            if not self.pending and name != "..":
                return self.stack[-1], name
            last_directory = len(self.pending) == 1 and self.pending[0][0] != ".."
            self._enter(name, named, no_link=self.plain_parent and last_directory)
        return self.stack[-1], "."

    def follow(self, name: str) -> str | None:
        """When `name` (in the directory `parent()` returned) is a link, go on through it and
        return its target; None when it is not a link."""
        fd = os.open(name, _LOOKUP, dir_fd=self.stack[-1])
        try:
            info = os.fstat(fd)
            return self._follow(fd, name, info) if stat.S_ISLNK(info.st_mode) else None
        finally:
            os.close(fd)

    def directory(self, *, no_link: bool = False) -> int:
        """Walk through every name, each a directory (or a link to one); the descriptor of the
        last (owned by the walk). `no_link`: the last name itself must not be a link."""
        while self.pending:
            name, named = self.pending.pop()
            self._enter(name, named, no_link=no_link and not self.pending)
        return self.stack[-1]

    def open(self, flags: int, *, follow: bool = True, mode: int = 0o777) -> tuple[int, str]:
        """Open the last name with `flags` (O_NOFOLLOW added), going on through links when
        `follow`, else raising _LinkInTheWay for one; the descriptor (the caller's) and where
        the file really is."""
        while True:
            here, name = self.parent()
            flags |= os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                return os.open(name, flags, mode, dir_fd=here), self.shown(name)
            except OSError as err:  # ELOOP (ENOTDIR with O_DIRECTORY): maybe a link
                if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                if not follow:
                    if self.is_link(name):
                        raise _LinkInTheWay(self.shown(name)) from None
                    raise
                if self.follow(name) is None:
                    raise

    def is_link(self, name: str) -> bool:
        """Whether `name`, in the directory `parent()` returned, is a link (not followed)."""
        try:
            return stat.S_ISLNK(os.stat(name, dir_fd=self.stack[-1], follow_symlinks=False).st_mode)
        except OSError:
            return False


def _readable(fd: int) -> int:
    """A descriptor that can list or fsync the directory `fd` (an O_PATH one) refers to."""
    return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)


def open_regular(path: Path | str, *, follow: bool = True) -> int:
    """A descriptor for reading the regular file at `path` (links followed, inside the root for
    a RootedPath; with `follow=False` the last name must not be a link: _LinkInTheWay). The open
    cannot block (O_NONBLOCK): a FIFO, socket or device planted there is refused, never waited on
    or read. Raises OSError (IsADirectoryError for a directory)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if (path.top if isinstance(path, RootedPath) else "/") == "/":
        # Below / the kernel's own lookup is the walk's: nothing lies outside / for a link to
        # reach, `..` stops there too, and it gives up after as many links; O_NOFOLLOW refuses a
        # link as the last name. One open, not one per component: `check` reads two dozen
        # /proc/sys files this way at every start.
        try:
            fd = os.open(path, flags if follow else flags | os.O_NOFOLLOW)
        except OSError as err:
            if not follow and err.errno == errno.ELOOP and _lstat_is_link(path):
                raise _LinkInTheWay(str(path)) from None
            raise
    else:
        with _Walk(path) as walk:
            fd, _ = walk.open(flags, follow=follow)
    return _regular_or_close(fd, path)


def _lstat_is_link(path: Path | str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def _regular_or_close(fd: int, path: Path | str) -> int:
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

    def path(self, relative: str) -> RootedPath:
        """`relative` below the root: every function here resolves it inside the root."""
        return below(self.root, relative)

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
            # A key is never a link in /proc/sys; the directories above it are resolved inside
            # the root.
            with os.fdopen(open_regular(path, follow=False), "rb") as handle:
                data = handle.read(_MAX_VALUE_BYTES + 1)
        except _LinkInTheWay:
            return Reading(
                key=key, state=UNREADABLE, error="is a symlink, which no /proc/sys key is"
            )
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

    def feed_proc_net_tcp(self, name: str, feed: Callable[[Iterable[bytes]], None]) -> bool:
        """Hand /proc/net/tcp or /proc/net/tcp6 (`name`) to `feed` as it is read, in chunks of
        bytes (rows may straddle two chunks); False when the file does not exist."""
        path = self.path(f"proc/net/{name}")
        try:
            fd = open_regular(path)
            with open(fd, "rb", buffering=0) as handle:
                feed(_chunks(handle))
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
        the links 'socket:[INODE]'. Processes whose fd directory is unreadable are counted.
        Below /proc (resolved inside the root) no link is followed: each name is opened
        relative to the directory before it, with O_NOFOLLOW."""
        wanted = {f"socket:[{inode}]" for inode in inodes}
        by_inode: dict[int, list[int]] = {}
        commands: dict[int, str] = {}
        cmdlines: dict[int, str] = {}
        scanned = denied = 0
        proc = -1
        try:
            if wanted:
                with _Walk(self.path("proc")) as walk:
                    proc = _readable(walk.directory())
        except OSError:
            proc = -1
        try:
            entries = os.listdir(proc) if proc >= 0 else []
        except OSError:
            entries = []
        for name in entries:
            if not name.isdigit():
                continue
            try:
                process = os.open(name, _LOOKUP | os.O_DIRECTORY, dir_fd=proc)
            except OSError:  # the process exited meanwhile
                continue
            try:
                try:
                    fd_dir = os.open(
                        "fd",
                        os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                        dir_fd=process,
                    )
                except PermissionError:
                    denied += 1
                    continue
                except OSError:  # the process exited meanwhile
                    continue
                try:
                    fds = os.listdir(fd_dir)
                    scanned += 1
                    pid = int(name)
                    held = False
                    for fd in fds:
                        try:
                            link = os.readlink(fd, dir_fd=fd_dir)
                        except OSError:
                            continue
                        if link in wanted:
                            by_inode.setdefault(int(link[8:-1]), []).append(pid)
                            held = True
                except PermissionError:
                    denied += 1
                    continue
                except OSError:
                    continue
                finally:
                    os.close(fd_dir)
                if held:
                    commands[pid] = (_read_in(process, "comm") or "?").strip()
                    raw = _read_in(process, "cmdline") or ""
                    cmdlines[pid] = " ".join(raw.split("\0")).strip()
            finally:
                os.close(process)
        if proc >= 0:
            os.close(proc)
        return Holders(
            by_inode=by_inode,
            commands=commands,
            cmdlines=cmdlines,
            scanned=scanned,
            denied=denied,
            privileged=os.geteuid() == 0,
        )


def _read_in(directory: int, name: str, limit: int = 1024 * 1024) -> str | None:
    """The text of the regular file `name` in the directory `directory` (a descriptor), never
    through a link; None if it cannot be read."""
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory
        )
        with open(_regular_or_close(fd, Path(name)), encoding="utf-8", errors="replace") as handle:
            return handle.read(limit)
    except OSError:
        return None


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
        # Relative to the key's directory, resolved inside the root and not itself a link;
        # O_NOFOLLOW: a symlink in a fake tree must not redirect a root-owned write.
        # O_TRUNC as a shell's `>` does: harmless on /proc/sys, needed on a fake tree's files.
        with _Walk(path, plain_parent=True) as walk:
            fd, _ = walk.open(os.O_WRONLY | os.O_TRUNC, follow=False)
    except _LinkInTheWay as link:
        raise SysctlWriteError(
            key, f"{link.shown} is a symlink; tcptune never writes through links", errno.ELOOP
        ) from None
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
        with _Walk(system.path("proc/sys")) as walk:
            return bool(os.fstatvfs(walk.directory()).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def read_conf_files(system: System) -> list[ConfFile]:
    """Every *.conf entry of the sysctl.d directories, and /etc/sysctl.conf, below the root, for
    tcptune.sysctld: its text, a mask (a name that hides later files but holds nothing: a link to
    /dev/null or to nothing, a directory) or unknown (the loaders, as root, read it; tcptune
    cannot: why). A directory that cannot be listed is an unknown entry with no name. A
    directory reached twice (/lib -> usr/lib) is listed once, as systemd does. The directories
    and the files are resolved inside the root (links included, as the loaders would see them
    in a chroot)."""
    files = []
    listed: set[tuple[int, int]] = set()
    for directory in dict.fromkeys(d for loader_dirs in DIRS.values() for d in loader_dirs):
        try:
            with _Walk(system.path(directory)) as walk:
                listing = _readable(walk.directory())
        except (FileNotFoundError, NotADirectoryError):
            continue  # neither loader reads what is not there
        except OSError as err:
            files.append(_unlisted(directory, err))
            continue
        try:
            info = os.fstat(listing)
            if (info.st_dev, info.st_ino) in listed:
                continue
            listed.add((info.st_dev, info.st_ino))
            names = sorted(os.listdir(listing))
        except OSError as err:
            files.append(_unlisted(directory, err))
            continue
        finally:
            os.close(listing)
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
    relative to the root, never to the host; `..` stops at the root). A link to /dev/null reads
    as empty (a mask). None when it cannot be read."""
    try:
        with _Walk(system.path(relative)) as walk:
            while True:
                here, name = walk.parent()
                try:
                    fd = os.open(
                        name,
                        os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                        dir_fd=here,
                    )
                    break
                except OSError as err:
                    if err.errno != errno.ELOOP:
                        raise
                target = walk.follow(name)
                if target is None:
                    return None
                if target == "/dev/null":
                    return ""
        with os.fdopen(_regular_or_close(fd, Path(relative)), "rb") as handle:
            return handle.read(limit).decode("utf-8", errors="replace")
    except OSError:
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
    absent. The directories are resolved inside the root; the file itself must not be a link.
    Refuses symlinks, non-files and files over `limit` bytes."""
    try:  # O_NONBLOCK: a FIFO planted there is refused below, never waited on
        with _Walk(path) as walk:
            fd, _ = walk.open(os.O_RDONLY | os.O_NONBLOCK, follow=False)
    except _LinkInTheWay:
        raise BadInput(
            f"{path} is a symlink; refusing to read or replace it",
            hint="remove the link or choose another --drop-in name",
        ) from None
    except FileNotFoundError:
        return None
    except OSError as err:
        raise EnvironmentProblem(f"cannot read {path}: {_reason(err)}") from None
    with os.fdopen(fd, "rb") as handle:
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


def _symlink_refused(shown: str | Path) -> BadInput:
    return BadInput(
        f"{shown} is a symlink; tcptune never writes through links", hint="remove the link"
    )


@contextmanager
def _directory_of(
    path: Path, *, make: int | None = None, link_ok: bool = False
) -> Iterator[tuple[int, str]]:
    """For a write at `path`: the descriptor of the directory that holds it (resolved inside
    the root, itself not a link) and the name to write there, which must not be a link either
    (BadInput), unless `link_ok` (removing a name never follows it). A directory that cannot be
    reached raises OSError."""
    walk = _Walk(path, plain_parent=True, make=make)
    try:
        here, name = walk.parent()
        if not link_ok and walk.is_link(name):
            raise _symlink_refused(path)
    except _LinkInTheWay as link:
        walk.close()
        raise _symlink_refused(link.shown) from None
    except BaseException:
        walk.close()
        raise
    try:
        yield here, name
    finally:
        walk.close()


def refuse_symlink(path: Path) -> None:
    """Refuse `path`, or the directory holding it, being a symlink (BadInput)."""
    with suppress(OSError), _directory_of(path):
        pass


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Temp file in the same directory, fsync, rename over the target, fsync the directory:
    a crash leaves the old file or the new one, never a partial file. Every step is relative to
    the descriptor of that directory, so no link swapped in meanwhile can redirect it."""
    try:
        with _directory_of(path) as (here, name):
            _replace_at(here, name, data, mode, f".{name}.tcptune-{os.getpid()}.tmp")
            _fsync(here)
    except OSError as err:
        raise _write_problem(path, err) from None


def _replace_at(here: int, name: str, data: bytes, mode: int, temp: str) -> None:
    """`data` into the new file `temp` (O_EXCL, O_NOFOLLOW) of the directory `here`, with
    `mode` whatever the umask, fsynced, then renamed over `name` there; the temp file removed on
    any failure before the rename. The caller fsyncs the directory. Raises OSError."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temp, flags, mode, dir_fd=here)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)  # not narrowed by the umask
            os.fsync(handle.fileno())
        os.replace(temp, name, src_dir_fd=here, dst_dir_fd=here)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp, dir_fd=here)
        raise


def _fsync(directory: int) -> None:
    fd = _readable(directory)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_file(path: Path) -> None:
    """Remove `path` (unlinkat in its directory, resolved inside the root and not a link; a
    link at `path` is removed, never followed)."""
    try:
        with _directory_of(path, link_ok=True) as (here, name):
            try:
                os.unlink(name, dir_fd=here)
            except FileNotFoundError:
                return
            _fsync(here)
    except FileNotFoundError:
        return  # no directory: nothing to remove
    except OSError as err:
        raise _write_problem(path, err) from None


def fsync_dir(directory: Path) -> None:
    with _Walk(directory) as walk:
        _fsync(walk.directory())


def _write_problem(path: Path, err: OSError, *, chosen: bool = False) -> EnvironmentProblem:
    """One line for a write that failed, with the fix. `chosen`: a path the user named (an
    --output file), where another directory is a fix too."""
    denied = "run as root, or choose a directory this user can write" if chosen else "run as root"
    fixes = {
        errno.ENOSPC: "free some space",
        errno.EROFS: "the file system is read-only"
        + (": choose another directory" if chosen else ""),
        errno.EACCES: denied,
        errno.EPERM: denied,
    }
    return EnvironmentProblem(
        f"cannot write {path}: {os.strerror(err.errno) if err.errno else err}",
        hint=fixes.get(
            err.errno or 0, "check the path" if chosen else "check the path and the disk"
        ),
    )


def refuse_linked_dir(path: Path) -> None:
    """Refuse `path`, or its parent, being a symlink: nothing is read or written through a
    planted link. Changes nothing (read-only commands use it); a directory that cannot be
    looked at is left to the read that follows to report."""
    try:
        with _Walk(path, plain_parent=True) as walk:
            _, name = walk.parent()
            if walk.is_link(name):
                raise _LinkInTheWay(walk.shown(name))
    except _LinkInTheWay as link:
        raise BadInput(
            f"{link.shown} is a symlink; refusing to keep backups there", hint="remove the link"
        ) from None
    except OSError:
        return


def private_dir(path: Path) -> Path:
    """Create (0700) or check the directory that holds backups; refuse it, or its parent,
    being a symlink (a planted link would send root's writes elsewhere). Missing directories
    above it are created 0755."""
    refuse_linked_dir(path)
    try:
        with _directory_of(path, make=0o755) as (here, name):
            with suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=here)
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(name, flags, dir_fd=here)  # ENOTDIR for a link swapped in meanwhile
            try:
                os.fchmod(fd, 0o700)
            finally:
                os.close(fd)
    except OSError as err:
        raise _write_problem(path, err) from None
    return path


def list_files(directory: Path, pattern: str) -> list[Path]:
    """Entries matching `pattern` in `directory`, sorted; none if it is not a directory (links
    to one followed, inside the root). A directory that cannot be read is an environment
    problem, never an empty list."""
    import fnmatch

    if not is_dir(directory):
        return []
    try:
        with _Walk(directory) as walk:
            listing = _readable(walk.directory())
        try:
            names = os.listdir(listing)
        finally:
            os.close(listing)
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        hint = "run as root" if err.errno in (errno.EACCES, errno.EPERM) else "check the path"
        raise EnvironmentProblem(f"cannot read {directory}: {reason}", hint=hint) from None
    return sorted(directory / name for name in fnmatch.filter(names, pattern))


def file_names(directory: Path, limit: int) -> list[str]:
    """The names of regular files (or links to one, resolved inside the root) among the first
    `limit` entries of `directory`; [] when it cannot be read. For shell completion: it never
    raises for what it finds."""
    names = []
    try:
        with _Walk(directory) as walk:
            here = walk.directory()
            listing = _readable(here)
            try:
                with os.scandir(listing) as entries:
                    found = [entry.name for _, entry in zip(range(limit), entries, strict=False)]
            finally:
                os.close(listing)
            for name in found:
                info = os.stat(name, dir_fd=here, follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode) and isinstance(directory, RootedPath):
                    info = _stat_below(directory / name) or info
                if stat.S_ISREG(info.st_mode):
                    names.append(name)
    except (OSError, ValueError):
        return names
    return names


def open_and_read(
    path: Path, limit: int, check: Check | None = None
) -> tuple[os.stat_result, Path, bytes | None]:
    """One open of `path` (following links, as a user's path may be one; inside the root for a
    RootedPath), and from that same open file: its status, the path it really is, and at most
    limit + 1 bytes (None when it is not a regular file; O_NONBLOCK, so a FIFO cannot block).
    What is checked is what is read: no file can be swapped in between. `check` judges every
    directory on the way, from /, and every link followed, each on the descriptor the walk
    holds (raises Untrusted). Raises IsADirectoryError for a directory, OSError."""
    with _Walk(path, check=check) as walk:
        fd, real = walk.open(os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(info.st_mode):
            return info, Path(real), None
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return info, Path(real), b"".join(chunks)
    finally:
        os.close(fd)


def _names_in(here: int, pattern: str) -> list[str]:
    import fnmatch

    listing = _readable(here)
    try:
        return fnmatch.filter(os.listdir(listing), pattern)
    finally:
        os.close(listing)


def _not_link(name: str, here: int) -> bool:
    try:
        return not stat.S_ISLNK(os.stat(name, dir_fd=here, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def remove_stale_temp_files(target: Path) -> None:
    """Temp files a killed write left next to `target` (named .NAME.tcptune-PID.tmp, never
    *.conf, so no loader reads them); safe to remove while holding tcptune's lock."""
    try:
        with _directory_of(target) as (here, name):
            for stale in _names_in(here, f".{name}.tcptune-*.tmp"):
                if _not_link(stale, here):
                    with suppress(FileNotFoundError):
                        os.unlink(stale, dir_fd=here)
    except FileNotFoundError:
        return  # no directory yet: nothing left over


def discard_file(path: Path) -> None:
    """Remove a file if it is there (a leftover, or a backup of nothing)."""
    with suppress(FileNotFoundError), _directory_of(path, link_ok=True) as (here, name):
        os.unlink(name, dir_fd=here)


def prune_files(
    directory: Path, pattern: str, keep: int, order: Callable[[Path], Any] | None = None
) -> None:
    """Remove all but the last `keep` files matching `pattern`, in `order` (default: by name);
    links stay. The directory is resolved inside the root and is not itself a link."""
    try:
        with _Walk(directory) as walk:
            here = walk.directory(no_link=True)
            names = [n for n in _names_in(here, pattern) if _not_link(n, here)]
            files = sorted(names, key=(lambda n: order(directory / n)) if order else None)
            for old in files[:-keep] if len(files) > keep else []:
                with suppress(FileNotFoundError):
                    os.unlink(old, dir_fd=here)
    except _LinkInTheWay as link:
        raise _symlink_refused(link.shown) from None
    except OSError as err:
        raise _write_problem(directory, err) from None


def make_dirs(directory: Path, mode: int = 0o755) -> None:
    """Create a directory and its missing parents, as `mkdir -p`, each with `mode` whatever the
    umask (umask 000 would otherwise leave root's /etc/tcptune writable by everyone), inside the
    root: a directory is made only where the path names it, never at the target of a link
    (BadInput). Raises OSError."""
    with _Walk(directory, make=mode) as walk:
        walk.directory()


def exists(path: Path) -> bool:
    return _probe(path, Path.exists, lambda info: True)


def is_file(path: Path) -> bool:
    return _probe(path, Path.is_file, lambda info: stat.S_ISREG(info.st_mode))


def is_dir(path: Path) -> bool:
    return _probe(path, Path.is_dir, lambda info: stat.S_ISDIR(info.st_mode))


def _probe(
    path: Path, test: Callable[[Path], bool], kind: Callable[[os.stat_result], bool]
) -> bool:
    """`test(path)` (for a RootedPath: `kind` of what it resolves to inside the root); False for
    a missing path or a link loop, and raises for the rest: a name the kernel refuses (too long)
    is bad input, anything else (permission denied, I/O error) an environment problem."""
    try:
        if not isinstance(path, RootedPath):
            return test(path)
        info = _stat_below(path)
        return info is not None and kind(info)
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        if err.errno == errno.ENAMETOOLONG:
            raise BadInput(f"{path}: {reason}", hint="give a shorter path") from None
        hint = "run as root" if err.errno in (errno.EACCES, errno.EPERM) else "check the path"
        raise EnvironmentProblem(f"cannot look at {path}: {reason}", hint=hint) from None


def _stat_below(path: RootedPath) -> os.stat_result | None:
    """The status of what `path` resolves to inside its top; None when there is nothing there
    (missing, a file where a directory is named, a link loop)."""
    try:
        with _Walk(path) as walk:
            while True:
                here, name = walk.parent()
                info = os.stat(name, dir_fd=here, follow_symlinks=False)
                if not stat.S_ISLNK(info.st_mode):
                    return info
                walk.follow(name)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            return None
        raise


def real_path(path: Path) -> Path:
    """The path with every symlink resolved, as the kernel would open it (inside the root for a
    RootedPath); as given when it cannot be resolved."""
    if not isinstance(path, RootedPath):
        return path.resolve()
    try:
        with _Walk(path) as walk:
            while True:
                _, name = walk.parent()
                if walk.follow(name) is None:
                    return Path(walk.shown(name))
    except OSError:
        return Path(path)


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
    """An flock on `path` (created 0600, never through a link, relative to its directory
    resolved inside the root), waiting up to `wait` seconds; raises LockBusy after that. The
    holder's pid is written into the file for whoever waits."""
    import fcntl
    import time

    try:
        with _directory_of(path) as (here, name):
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(name, flags, 0o600, dir_fd=here)
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


# --- metrics: the textfile output, the CLOSE_WAIT state, the namespace ---------------------------


def netns_id(system: System) -> str:
    """The network namespace below the root, as its inode number ('4026531840' from
    'net:[4026531840]', the link /proc/self/ns/net); "unknown" when it cannot be read."""
    try:
        link = os.readlink(system.path("proc/self/ns/net"))
    except OSError:
        return "unknown"
    inside = link.removeprefix("net:[").removesuffix("]")
    return inside if inside.isdigit() and inside.isascii() else "unknown"


def boot_id(system: System) -> str | None:
    """kernel.random.boot_id: a new value at every boot (pids from another boot mean nothing)."""
    reading = system.read_sysctl("kernel.random.boot_id")
    return reading.value if reading.state == PRESENT else None


class Directory:
    """One open directory. Files in it are read, created and replaced through this descriptor
    and never by path, so the directory checked is the directory written, even if its name is
    swapped for a link meanwhile; no name in it is followed when it is a link."""

    def __init__(self, path: Path) -> None:
        """Raises OSError: ELOOP when `path` is a symlink, ENOTDIR, ENOENT, EACCES."""
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except NotADirectoryError:  # what O_DIRECTORY | O_NOFOLLOW answers for a link, too
            if os.path.islink(path):
                raise OSError(errno.ELOOP, "is a symlink", str(path)) from None
            raise

    def __enter__(self) -> "Directory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def kind(self, name: str) -> str | None:
        """What `name` is: "file", "link", "other" (a FIFO, a directory, a device...), or None."""
        import stat

        try:
            mode = os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(mode):
            return "link"
        return "file" if stat.S_ISREG(mode) else "other"

    def writable(self) -> None:
        """Raises PermissionError (or OSError EROFS) when this process cannot create files
        here; the write itself checks again."""
        if not os.access(".", os.W_OK, dir_fd=self.fd, effective_ids=True):
            err = errno.EROFS if self.fd >= 0 and _read_only_fd(self.fd) else errno.EACCES
            raise OSError(err, os.strerror(err), str(self.path))

    def read(self, name: str, limit: int) -> bytes | None:
        """At most limit + 1 bytes of the regular file `name`; None if absent. Raises OSError
        (ELOOP for a link, EINVAL for a FIFO or another non-file)."""
        import stat

        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.fd
            )
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", str(self.path / name))
            return handle.read(limit + 1)

    def replace(self, name: str, data: bytes, mode: int) -> None:
        """Write `name` atomically: a new temp file (O_EXCL, O_NOFOLLOW; not named *.prom or
        *.json, so no reader takes it for the file), fchmod, fsync, rename over `name` in this
        directory, fsync of the directory. A crash leaves the old file or the new one. Raises
        OSError."""
        import secrets

        temp = f".{name}.tcptune-{os.getpid()}-{secrets.token_hex(4)}.tmp"
        _replace_at(self.fd, name, data, mode, temp)
        os.fsync(self.fd)


def _read_only_fd(fd: int) -> bool:
    try:
        return bool(os.fstatvfs(fd).f_flag & os.ST_RDONLY)
    except OSError:
        return False


class OutputFile:
    """--output FILE, checked before anything is counted and written at the end, through the
    directory opened here. Every refusal is an environment problem (exit 3) and changes nothing:
    a missing directory, a directory that is a symlink, a FILE that is a symlink or not a
    regular file (a FIFO, a directory), a directory this process cannot write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        parent = path.parent
        if path.name in ("", ".."):  # `/`, `dir/..`: a directory, never a file to replace
            raise EnvironmentProblem(
                f"{path} is not a regular file; refusing to replace it",
                hint="give a file path ending in .prom",
            )
        try:
            self._dir = Directory(parent)
        except OSError as err:
            if err.errno == errno.ENOENT:
                raise EnvironmentProblem(
                    f"cannot write {path}: the directory {parent} does not exist",
                    hint="create it; Debian's prometheus-node-exporter makes "
                    "/var/lib/prometheus/node-exporter",
                ) from None
            if err.errno == errno.ELOOP:
                raise EnvironmentProblem(
                    f"cannot write {path}: the directory {parent} is a symlink; tcptune never "
                    "writes through links",
                    hint="give the real directory",
                ) from None
            if err.errno == errno.ENOTDIR:
                raise EnvironmentProblem(
                    f"cannot write {path}: {parent} is not a directory", hint="check the path"
                ) from None
            raise _write_problem(path, err, chosen=True) from None
        try:
            self._check()
        except BaseException:
            self._dir.close()
            raise

    def _check(self) -> None:
        kind = self._dir.kind(self.path.name)
        if kind == "link":
            raise EnvironmentProblem(
                f"{self.path} is a symlink; tcptune never writes through links",
                hint="remove the link, or give another file name",
            )
        if kind == "other":
            raise EnvironmentProblem(
                f"{self.path} is not a regular file; refusing to replace it",
                hint="give a file path ending in .prom",
            )
        try:
            self._dir.writable()
        except OSError as err:
            raise _write_problem(self.path, err, chosen=True) from None

    def write(self, data: bytes) -> None:
        """Replace FILE (0644: node_exporter reads it as its own user); the directory is closed
        after. Raises EnvironmentProblem."""
        try:
            self._check()  # again, just before: what was there at the start may have changed
            self._dir.replace(self.path.name, data, 0o644)
        except OSError as err:
            raise _write_problem(self.path, err, chosen=True) from None
        finally:
            self._dir.close()

    def close(self) -> None:
        self._dir.close()


def state_directory(path: Path) -> Directory:
    """tcptune's state directory (var/lib/tcptune below the root), created 0700 like the
    backups' and opened without following a link: a symlink there, or at its parent, is
    refused (BadInput). Other failures (not root, a read-only file system) raise
    EnvironmentProblem."""
    for part in (path.parent, path):
        if os.path.islink(part):
            raise BadInput(f"{part} is a symlink; refusing to keep state there", hint="remove it")
    try:
        make_dirs(path.parent)
        with suppress(FileExistsError):
            os.mkdir(path, 0o700)
        directory = Directory(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise BadInput(
                f"{path} is a symlink; refusing to keep state there", hint="remove it"
            ) from None
        raise _write_problem(path, err, chosen=True) from None
    try:
        os.fchmod(directory.fd, 0o700)  # through the open directory: no link can redirect it
    except OSError as err:
        directory.close()
        raise _write_problem(path, err, chosen=True) from None
    return directory


@contextmanager
def write_errors(path: Path) -> Iterator[None]:
    """Any OSError inside reported as an EnvironmentProblem about writing `path` (one line, exit
    3): also the steps after a rename (the fsync of the directory), a chmod, a mkdir or an
    unlink that the functions above let through as they are."""
    try:
        yield
    except OSError as err:
        raise _write_problem(path, err) from None


# /proc/net/tcp is read a chunk at a time: a million sockets are 150 MB of text, never all held
PROC_NET_CHUNK = 1024 * 1024


def _chunks(handle) -> Iterator[bytes]:
    """A file's bytes in chunks of about PROC_NET_CHUNK: /proc/net/tcp answers each read() with
    a page (27 rows), and a chunk per page would cost its parsing overhead 37,000 times for a
    million sockets."""
    parts: list[bytes] = []
    size = 0
    while data := handle.read(PROC_NET_CHUNK):  # bounded: a regular file ends
        parts.append(data)
        size += len(data)
        if size >= PROC_NET_CHUNK:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)


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
    if problem is not None:
        return entry(CONF_UNKNOWN, _conf_reason(problem))
    assert info is not None
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return entry(CONF_MASK, "a directory")
    if stat.S_ISCHR(mode) and info.st_rdev == os.makedev(1, 3):
        return entry(CONF_MASK, "a link to /dev/null")
    if not stat.S_ISREG(mode):
        return entry(CONF_UNKNOWN, "not a regular file (a FIFO, socket or device)")
    return entry(CONF_UNKNOWN, f"{found} could not be read")


def _resolve_conf(
    system: System, relative: str
) -> tuple[str, os.stat_result | None, OSError | None]:
    """Follow links as read_text_under_root does (inside the root: an absolute target from the
    root, `..` never above it), looking only at metadata and at whether the file opens: ("absent"
    | "missing" | "loop" | where it really is, its status, the error met opening or reaching
    it)."""
    followed = 0  # links followed at the last name (a link on the way to it is no mask)
    try:
        with _Walk(system.path(relative)) as walk:
            while True:
                here, name = walk.parent()
                info = os.stat(name, dir_fd=here, follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    walk.follow(name)
                    followed += 1
                    continue
                problem = None
                if stat.S_ISREG(info.st_mode):
                    try:
                        fd = os.open(
                            name,
                            os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                            dir_fd=here,
                        )
                        os.close(fd)
                    except OSError as err:
                        problem = err
                return walk.shown(name), info, problem
    except (FileNotFoundError, NotADirectoryError):
        return ("absent" if followed == 0 else "missing"), None, None
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "loop", None, None
        return relative, None, err


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


# --- network namespaces: --netns, --pid and sockets --all-netns ----------------------------------
#
# tcptune enters a network namespace with setns(2) before it opens anything in it: /proc/sys/net,
# /proc/net and the netlink socket then show that namespace (each is resolved against the
# namespace of the process that opens it). The mount namespace is left alone: files (profiles,
# backups, /proc itself) are the host's. Namespace files are opened with O_PATH first and checked
# to be nsfs files before they are opened for reading, so a path naming a device or a FIFO is
# refused without being opened.

CLONE_NEWNET = 0x40000000  # include/uapi/linux/sched.h
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), include/uapi/linux/nsfs.h (Linux 4.11)
_SETNS: list[Any] = []  # libc's setns, loaded once when Python has no os.setns (3.11)


class NetnsSystem(System):
    """The running machine seen from inside another network namespace (--netns or --pid)."""

    def __init__(self, entered: str) -> None:
        super().__init__("/")
        self.entered = entered  # the option as given: "--pid 4242", "--netns /run/netns/blue"


def _setns(fd: int) -> None:
    """setns(fd, CLONE_NEWNET): os.setns on Python 3.12, else libc's through ctypes (imported
    here only, when a namespace is entered: other runs never load it)."""
    setns = getattr(os, "setns", None)
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    if not _SETNS:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).setns
        function.argtypes = (ctypes.c_int, ctypes.c_int)
        function.restype = ctypes.c_int
        _SETNS.append((function, ctypes.get_errno))
    function, get_errno = _SETNS[0]
    if function(fd, CLONE_NEWNET) != 0:
        code = get_errno()
        raise OSError(code, os.strerror(code))


def _nsfs_device() -> int:
    """The device of nsfs, the kernel's file system of namespace files (one for all)."""
    return os.stat("/proc/self/ns/net").st_dev


class NotNamespace(Exception):
    """A path that is not a network namespace file; the message says what it is."""


def _open_namespace_file(path: str) -> int:
    """A descriptor for reading the namespace file `path` (links followed: /proc/PID/ns/net is
    one), checked on an O_PATH descriptor before anything is opened for reading: never a
    device, FIFO or ordinary file. Raises NotNamespace, or OSError."""
    handle = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode) or info.st_dev != _nsfs_device():
            raise NotNamespace("is not a namespace file")
        fd = os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_CLOEXEC)  # the same file
    finally:
        os.close(handle)
    try:
        import fcntl

        again = os.fstat(fd)
        if (again.st_dev, again.st_ino) != (info.st_dev, info.st_ino):
            raise NotNamespace("changed while it was opened")
        try:
            kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
        except OSError:  # before 4.11: setns itself refuses another kind of namespace
            kind = CLONE_NEWNET
        if kind != CLONE_NEWNET:
            raise NotNamespace("is a namespace file, but not of a network namespace")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _needs_root(option: str) -> EnvironmentProblem:
    """Permission denied entering a namespace: not root, or, as root, a namespace (or process)
    of a user namespace this one does not own, or a security module's refusal."""
    if running_as_root():
        return EnvironmentProblem(
            f"the kernel refused to enter the network namespace of {option} (permission "
            "denied), although tcptune runs as root",
            hint="it belongs to a user namespace this one does not own (a sandbox, a rootless "
            "container), or a security module forbids it; run tcptune from that user namespace",
        )
    return EnvironmentProblem(
        "entering another network namespace needs root (CAP_SYS_ADMIN)",
        hint=f"run it as root: sudo tcptune {option} ...",
    )


def _enter(fd: int, option: str) -> str:
    """setns into `fd` (closed after); the inode of the namespace now current."""
    try:
        _setns(fd)
    except PermissionError:
        raise _needs_root(option) from None
    except OSError as err:
        if err.errno == errno.EINVAL:
            raise BadInput(
                f"{option} does not name a network namespace", hint="check the path"
            ) from None
        raise EnvironmentProblem(
            f"cannot enter the network namespace of {option}: {os.strerror(err.errno or 0)}"
        ) from None
    finally:
        os.close(fd)
    return str(os.stat("/proc/thread-self/ns/net").st_ino)


def enter_netns_file(path: str) -> NetnsSystem:
    """--netns PATH: enter the network namespace that file is (/proc/PID/ns/net, /run/netns/NAME
    or another bind mount of one). Bad input for a path that is not one; exit 3 without root."""
    option = f"--netns {path}"
    if not path:
        raise BadInput("--netns is empty", hint="give /proc/PID/ns/net or /run/netns/NAME")
    try:
        fd = _open_namespace_file(path)
    except NotNamespace as err:
        raise BadInput(
            f"--netns {path} {err}",
            hint="give a network namespace file: /proc/PID/ns/net, /run/netns/NAME or a bind "
            "mount of one",
        ) from None
    except PermissionError:
        raise _needs_root(option) from None
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        raise BadInput(
            f"--netns {path}: {reason}",
            hint="give /proc/PID/ns/net, /run/netns/NAME or a bind mount of one",
        ) from None
    _enter(fd, option)
    return NetnsSystem(option)


def _exited(pidfd: int) -> bool:
    """Whether the process of a pidfd has exited (a pidfd is readable from then on)."""
    import select

    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def enter_netns_of_pid(pid: int) -> NetnsSystem:
    """--pid PID: enter the network namespace of that process, as `nsenter -n -t PID` does. A
    pidfd taken first tells whether the process that owned the pid when tcptune started is the
    one whose namespace was opened: a process that exits meanwhile is an error (exit 3), never
    another process that got its pid."""
    option = f"--pid {pid}"
    pidfd = None
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise BadInput(
            f"no process with pid {pid}",
            hint="a container's: docker inspect -f '{{.State.Pid}}' NAME (podman alike)",
        ) from None
    except OSError:  # ENOSYS before 5.3: the /proc lookup alone
        pidfd = None
    try:
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except PermissionError:
            raise _needs_root(option) from None
        except FileNotFoundError:
            if pidfd is None and not os.path.isdir(f"/proc/{pid}"):
                raise BadInput(f"no process with pid {pid}", hint="check the pid") from None
            raise EnvironmentProblem(
                f"process {pid} exited while tcptune entered its network namespace",
                hint="run it again with the pid of a running process",
            ) from None
        if pidfd is not None and _exited(pidfd):
            os.close(fd)
            raise EnvironmentProblem(
                f"process {pid} exited while tcptune entered its network namespace",
                hint="run it again with the pid of a running process",
            )
    finally:
        if pidfd is not None:
            os.close(pidfd)
    _enter(fd, option)
    return NetnsSystem(option)


def current_netns() -> int:
    """The inode of the network namespace this process is in now."""
    return os.stat("/proc/thread-self/ns/net").st_ino


def netns_of_processes() -> dict[int, list[int]]:
    """Network namespace inode -> the pids in it, for every process of the running machine whose
    namespace can be looked at (/proc/PID/ns/net). tcptune itself is left out: a visitor, not
    what owns a namespace."""
    found: dict[int, list[int]] = {}
    me = str(os.getpid())
    proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in os.listdir(proc):
            if not name.isdigit() or name == me:
                continue
            try:
                inode = os.stat(f"{name}/ns/net", dir_fd=proc).st_ino
            except OSError:  # exited meanwhile, a zombie, or not ours to look at
                continue
            found.setdefault(inode, []).append(int(name))
    finally:
        os.close(proc)
    return found


NAMED_NETNS_DIR = "/run/netns"  # `ip netns add NAME` bind-mounts a namespace here


def named_netns() -> dict[int, list[str]]:
    """Network namespace inode -> its paths in /run/netns (only entries that are namespaces:
    a name whose bind mount is gone is an empty file)."""
    found: dict[int, list[str]] = {}
    try:
        names = sorted(os.listdir(NAMED_NETNS_DIR))
    except OSError:
        return found
    device = _nsfs_device()
    for name in names:
        path = f"{NAMED_NETNS_DIR}/{name}"
        try:
            info = os.stat(path)
        except OSError:
            continue
        if info.st_dev == device and stat.S_ISREG(info.st_mode):
            found.setdefault(info.st_ino, []).append(path)
    return found


def read_processes(pids: Iterable[int]) -> list[Any]:
    """netns.Process records (comm and cgroup) of these pids; a process gone is left out."""
    from tcptune.owners import Process

    result = []
    proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for pid in pids:
            try:
                process = os.open(str(pid), _LOOKUP | os.O_DIRECTORY, dir_fd=proc)
            except OSError:
                continue
            try:
                comm = _read_in(process, "comm", 4096)
                cgroup = _read_in(process, "cgroup", 64 * 1024)
            finally:
                os.close(process)
            if comm is None and cgroup is None:
                continue
            result.append(Process(pid=pid, command=comm.strip() if comm else None, cgroup=cgroup))
    finally:
        os.close(proc)
    return result


def netns_owner(
    inode: int,
    *,
    initial: bool | None,
    pids: list[int] | None = None,
    names: list[str] | None = None,
) -> Any:
    """The owner (tcptune.netns.Owner) of the namespace `inode` of the running machine, from
    the processes in it (`pids`, else a look at every process) and its /run/netns names
    (`names`, else a look at /run/netns)."""
    from tcptune.owners import name_owner

    if pids is None:
        pids = netns_of_processes().get(inode, [])
    if names is None:
        names = named_netns().get(inode, [])
    # The first processes by pid name it: a container's are all in its cgroup.
    processes = read_processes(sorted(pids)[:64])
    owner = name_owner(processes, names, initial=initial)
    return owner if owner.processes == len(pids) else owner.with_processes(len(pids))


def describe_netns(system: System, *, initial: bool | None) -> Any:
    """The namespace a command looked at (tcptune.netns.Identity): its inode, how it was
    entered, and its owner. On the host's own namespace nothing more is read; below --root the
    owner is unknown."""
    from tcptune.netns import HOST_OWNER, UNKNOWN_OWNER, Identity

    entered = getattr(system, "entered", None)
    inode = netns_id(system)
    if not system.live or not inode.isdigit():
        owner = UNKNOWN_OWNER
    elif initial and entered is None:
        owner = HOST_OWNER
    else:
        owner = netns_owner(int(inode), initial=initial)
    return Identity(inode=inode, initial=initial, entered=entered, owner=owner)


def visit_netns(
    namespaces: list[tuple[int, list[int], list[str]]], look: Callable[[int], Any]
) -> list[tuple[int, Any]]:
    """Enter each namespace (inode, its pids, its /run/netns paths) in turn and call look(inode)
    there; then return to the namespace this process started in. A namespace that is gone by
    the time it is entered (every process exited) gets None. Each is opened through one of its
    processes or names and must still be that inode: a recycled pid is never followed."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    results: list[tuple[int, Any]] = []
    try:
        for inode, pids, names in namespaces:
            fd = _open_netns_inode(inode, pids, names)
            if fd is None:
                results.append((inode, None))
                continue
            try:
                _setns(fd)
            except OSError:
                results.append((inode, None))
                continue
            finally:
                os.close(fd)
            results.append((inode, look(inode)))
    finally:
        try:
            _setns(home)
        finally:
            os.close(home)
    return results


def _open_netns_inode(inode: int, pids: list[int], names: list[str]) -> int | None:
    for pid in sorted(pids):
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        if os.fstat(fd).st_ino == inode:
            return fd
        os.close(fd)
    for path in names:
        try:
            fd = _open_namespace_file(path)
        except (OSError, NotNamespace):
            continue
        if os.fstat(fd).st_ino == inode:
            return fd
        os.close(fd)
    return None


SO_NETNS_COOKIE = 71  # include/uapi/asm-generic/socket.h (Linux 5.14): never reused, unlike inodes


def netns_record(system: System) -> dict[str, Any] | None:
    """Which network namespace a backup's live values belong to: its inode, its cookie (None
    before 5.14) and how it was entered (--pid, --netns; None: tcptune's own). None below
    --root, where there is no namespace."""
    if not system.live:
        return None
    import socket
    import struct

    cookie = None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            cookie = struct.unpack("=Q", probe.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0]
    except OSError:
        cookie = None
    return {
        "inode": str(current_netns()),
        "cookie": cookie,
        "entered": getattr(system, "entered", None),
    }
