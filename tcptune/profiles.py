"""Profiles: find, load, merge (extends) and validate TOML profiles.

A profile is

    description = "busy TCP server"
    extends = "kernel-defaults"          # optional; chains allowed, cycles rejected
                                         # (or "base.toml": a file in this file's directory)
    [sysctl]
    "net.ipv4.tcp_fin_timeout" = 30
    "net.ipv4.ip_local_port_range" = [10240, 65535]   # same as "10240 65535"

Only network keys (net.ipv4.*, net.ipv6.*, net.core.*) are accepted: tcptune runs as root, and a
profile must never be a way to write arbitrary /proc/sys files.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from tcptune import keys
from tcptune.errors import BadInput, printable
from tcptune.model import NETWORK_PREFIXES, parse_int
from tcptune.system import (
    Untrusted,
    below,
    exists,
    is_dir,
    is_file,
    list_files,
    open_and_read,
    real_path,
    running_as_root,
)

NAME_RULE = re.compile(r"[a-z0-9][a-z0-9_-]*")  # whole string: .fullmatch
# A key below a network prefix: dotted words; interface names may hold '-' (net.ipv4.conf.eth-1.x).
KEY_RULE = re.compile(r"net\.(ipv4|ipv6|core)(\.[A-Za-z0-9_\-]+)+")  # whole string: .fullmatch
MAX_PROFILE_BYTES = 1024 * 1024
MAX_NAME_LENGTH = 64
TOP_LEVEL = {"description", "extends", "sysctl"}


@dataclass(frozen=True, kw_only=True, slots=True)
class Problem:
    path: str
    key: str  # "" for the file as a whole
    message: str
    line: int | None = None
    untrusted: bool = False  # the file is fine, but another user could change it

    def __str__(self) -> str:
        where = self.path + (f":{self.line}" if self.line else "")
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        return printable(text)


@dataclass(frozen=True, kw_only=True, slots=True)
class ProfileFile:
    """One TOML file, parsed and validated on its own."""

    name: str
    path: Path
    description: str = ""
    extends: str | None = None
    sysctl: dict[str, str] = field(default_factory=dict)  # key -> normalised value
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True, slots=True)
class Profile:
    """A profile with its extends chain merged: the child's values win."""

    name: str
    path: Path
    description: str
    chain: list[str]  # this profile first, then its parent, grandparent...
    sysctl: dict[str, str]
    origin: dict[str, str]  # key -> name of the profile that set it
    warnings: list[Problem]


class ProfileError(BadInput):
    """An invalid profile: every problem, each with file and key."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        if first.untrusted:  # not a fault of its text: say what is wrong, and the fix it names
            super().__init__(
                f"refusing profile {first}",
                hint="only root may be able to change what root reads; fix it as shown",
            )
            return
        others = len(problems) - 1
        more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
        super().__init__(
            f"invalid profile: {first}{more}",
            hint="check every problem with: tcptune profiles validate PATH",
        )


# --- where profiles live -------------------------------------------------------------------------


def shipped_dir() -> Path:
    """Profiles shipped with tcptune: inside the wheel, or the source tree's profiles/."""
    package = real_path(Path(__file__)).parent
    bundled = package / "_profiles"
    return bundled if is_dir(bundled) else package.parent / "profiles"


def local_dir(root: Path) -> Path:
    """{root}/etc/tcptune/profiles, resolved inside the root wherever it is read or written."""
    return below(root, "etc/tcptune/profiles")


def is_path(argument: str) -> bool:
    return "/" in argument or argument.endswith(".toml")


def check_name(name: str) -> None:
    if not name:
        raise BadInput(
            "empty profile name", hint="names look like server-profile: [a-z0-9][a-z0-9_-]*"
        )
    if "\x00" in name:
        raise BadInput("profile name contains a NUL byte", hint="names are [a-z0-9][a-z0-9_-]*")
    if len(name) > MAX_NAME_LENGTH:
        raise BadInput(
            f"profile name longer than {MAX_NAME_LENGTH} characters", hint="use a shorter name"
        )
    if not NAME_RULE.fullmatch(name):
        raise BadInput(
            f"invalid profile name {name!r}",
            hint="names are lower-case letters, digits, '-' and '_' ([a-z0-9][a-z0-9_-]*); "
            "to load a file, give a path containing '/' or ending in .toml",
        )


def find(argument: str, root: Path) -> Path:
    """A name is looked up in {root}/etc/tcptune/profiles, then the shipped profiles; anything
    with '/' or ending in .toml is a path."""
    if "\x00" in argument:
        raise BadInput("profile argument contains a NUL byte", hint="give a profile name or a path")
    if is_path(argument):
        path = Path(argument)
        if not exists(path):
            raise BadInput(f"profile file {argument} does not exist", hint="check the path")
        if not is_file(path):
            raise BadInput(f"profile {argument} is not a regular file", hint="give a .toml file")
        return path
    check_name(argument)
    for directory in (local_dir(root), shipped_dir()):
        candidate = directory / f"{argument}.toml"
        if is_file(candidate):
            return candidate
    names = sorted(available(root))
    import difflib

    close = difflib.get_close_matches(argument, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known profiles: {', '.join(names)}"
    raise BadInput(f"unknown profile {argument!r}", hint=hint)


def available(root: Path) -> dict[str, Path]:
    """name -> file, local profiles shadowing shipped ones of the same name."""
    found: dict[str, Path] = {}
    for directory in (shipped_dir(), local_dir(root)):
        for path in list_files(directory, "*.toml"):
            if NAME_RULE.fullmatch(path.stem):
                found[path.stem] = path
    return found


# --- parsing and validating one file --------------------------------------------------------------


def read_file(path: Path, name: str | None = None) -> ProfileFile:
    """Parse and validate one file; problems are collected, not raised."""
    shown = str(path)
    name = name or path.stem
    try:
        check = unsafe_on_the_way if running_as_root() else None
        info, real, raw = open_and_read(path, MAX_PROFILE_BYTES, check)
        if raw is None:
            return _unusable(name, path, Problem(path=shown, key="", message="not a regular file"))
        unsafe = unsafe_for_root(real, info)
        if unsafe:
            problem = Problem(path=shown, key="", message=unsafe, untrusted=True)
            return _unusable(name, path, problem)
        if len(raw) > MAX_PROFILE_BYTES:
            return _unusable(
                name,
                path,
                Problem(
                    path=shown,
                    key="",
                    message=f"file is {info.st_size} bytes; profiles are limited to 1 MiB",
                ),
            )
    except Untrusted as err:
        problem = Problem(path=shown, key="", message=str(err), untrusted=True)
        return _unusable(name, path, problem)
    except IsADirectoryError:
        return _unusable(
            name, path, Problem(path=shown, key="", message="is a directory, not a profile file")
        )
    except OSError as err:
        return _unusable(
            name, path, Problem(path=shown, key="", message=f"cannot read: {err.strerror or err}")
        )
    return parse(raw, path, name)


def parse(raw: bytes, path: Path, name: str | None = None) -> ProfileFile:
    """Parse and validate a profile's bytes, as read from `path`; problems are collected."""
    import tomllib

    shown = str(path)
    name = name or path.stem
    if raw.startswith(b"\xef\xbb\xbf"):  # TOML does not allow one; say what it is
        message = "starts with a UTF-8 byte order mark (BOM), which TOML does not allow: "
        message += "save it without one"
        return _unusable(name, path, Problem(path=shown, key="", message=message, line=1))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        return _unusable(
            name, path, Problem(path=shown, key="", message="not UTF-8 text", line=line)
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(match.group(1)) if match else None
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        return _unusable(
            name, path, Problem(path=shown, key="", message=f"invalid TOML: {reason}", line=line)
        )
    except ValueError as err:  # e.g. an integer of thousands of digits
        message = f"invalid TOML: {err}".split(";")[0]
        return _unusable(name, path, Problem(path=shown, key="", message=message))
    return _validate_document(name, path, data)


def _unusable(name: str, path: Path, problem: Problem) -> ProfileFile:
    return ProfileFile(name=name, path=path, problems=[problem])


def unsafe_for_root(path: Path, info: os.stat_result) -> str | None:
    """When tcptune runs as root, a profile that another user could change is refused, as sudo
    refuses such a sudoers file: it decides what root writes to the kernel and /etc. `info` is
    the status of the open file that is read, `path` where it really is (links resolved). The
    directories on the way are judged by `unsafe_on_the_way`, as the file is opened."""
    if not running_as_root():
        return None
    import stat

    if stat.S_ISDIR(info.st_mode):
        return None  # reported as "is a directory" by the caller
    if info.st_uid != 0:
        return (
            f"owned by uid {info.st_uid}, not root; refusing it while running as root "
            f"(fix: chown root {path})"
        )
    if info.st_mode & 0o022:
        return (
            f"writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); refusing it "
            f"while running as root (fix: chmod go-w {path})"
        )
    return None


def unsafe_on_the_way(
    where: str, info: os.stat_result, holder: os.stat_result | None
) -> str | None:
    """The rule for every directory on the way to a profile, from / down, while running as
    root (system.open_and_read applies it to each directory's open descriptor as it walks, so
    what is judged is what is walked through): owned by root, and not writable by group or
    others unless sticky (as /tmp: others cannot then rename root's entries). Another owner, or
    a writable directory, could replace the file below it. A link followed on the way counts
    when it sits in a sticky directory others can write: it is then trusted only if root or the
    directory's owner made it, as the kernel's fs.protected_symlinks rule."""
    import stat

    if stat.S_ISLNK(info.st_mode):
        if holder is not None and holder.st_mode & 0o022 and info.st_uid not in (0, holder.st_uid):
            return (
                f"the symlink {where} on the way to it is owned by uid {info.st_uid} in a "
                "directory others can write, so that user could point it elsewhere; refusing it "
                f"while running as root (fix: chown -h root {where}, or name the file itself)"
            )
        return None
    if info.st_uid != 0:
        return (
            f"directory {where} on the way to it is owned by uid {info.st_uid}, not root, so "
            "that user could replace the file; refusing it while running as root "
            f"(fix: chown root {where}, or move the profile)"
        )
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        return (
            f"directory {where} on the way to it is writable by group or others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}), so the file could be replaced; refusing it "
            f"while running as root (fix: chmod go-w {where}, or move the profile)"
        )
    return None


def _validate_document(name: str, path: Path, data: dict) -> ProfileFile:
    shown = str(path)
    problems: list[Problem] = []
    warnings: list[Problem] = []
    sysctl: dict[str, str] = {}
    for unknown in sorted(set(data) - TOP_LEVEL):
        problems.append(
            Problem(
                path=shown,
                key=unknown,
                message="unknown top-level key (allowed: description, extends, [sysctl])",
            )
        )
    description = data.get("description")
    if description is None:
        problems.append(
            Problem(
                path=shown, key="description", message="missing: every profile needs a description"
            )
        )
        description = ""
    elif not isinstance(description, str) or not description.strip():
        problems.append(
            Problem(path=shown, key="description", message="must be a non-empty string")
        )
        description = ""
    else:
        description = description.strip()
    extends = data.get("extends")
    if extends is not None:
        if not isinstance(extends, str) or not extends:
            problems.append(
                Problem(path=shown, key="extends", message="must be a profile name (a string)")
            )
            extends = None
        elif not is_path(extends) and not NAME_RULE.fullmatch(extends):
            problems.append(
                Problem(
                    path=shown, key="extends", message=f"{extends!r} is not a valid profile name"
                )
            )
            extends = None
        elif is_path(extends) and (problem := parent_path_problem(extends)):
            problems.append(Problem(path=shown, key="extends", message=problem))
            extends = None
    table = data.get("sysctl", {})
    if not isinstance(table, dict):
        problems.append(Problem(path=shown, key="sysctl", message="must be a table: [sysctl]"))
    else:
        for key, value in table.items():
            if isinstance(value, dict):
                problems.append(
                    Problem(
                        path=shown,
                        key=key,
                        message="is a table: quote dotted keys, "
                        'e.g. "net.ipv4.tcp_fin_timeout" = 30',
                    )
                )
                continue
            normalised = check_value(key, value, shown, problems, warnings)
            if normalised is not None:
                sysctl[key] = normalised
        problems.extend(cross_key_problems(sysctl, shown))
    return ProfileFile(
        name=name,
        path=path,
        description=description,
        extends=extends,
        sysctl=sysctl,
        problems=problems,
        warnings=warnings,
    )


def check_value(
    key: str, value: object, shown: str, problems: list[Problem], warnings: list[Problem]
) -> str | None:
    """Validate one entry; return the normalised value (as the kernel prints it) or None."""
    if not KEY_RULE.fullmatch(key) or ".." in key:
        if key.startswith(NETWORK_PREFIXES) or "/" in key or ".." in key:
            problems.append(Problem(path=shown, key=key, message="not a valid sysctl key name"))
        else:
            problems.append(
                Problem(
                    path=shown,
                    key=key,
                    message="only network keys (net.ipv4.*, net.ipv6.*, net.core.*) are allowed",
                )
            )
        return None
    spec = keys.KEYS.get(key)
    if spec is None:
        normalised = _normalise_unknown(value)
        if normalised is None:
            problems.append(
                Problem(
                    path=shown,
                    key=key,
                    message="value must be an integer, a string, or a list of integers",
                )
            )
            return None
        warnings.append(
            Problem(
                path=shown,
                key=key,
                message="not in tcptune's knowledge base: accepted, but not range-checked",
            )
        )
        return normalised
    error, normalised = normalise_for(spec, value)
    if error:
        problems.append(Problem(path=shown, key=key, message=error))
        return None
    why = spec.refused.get(normalised)
    if why:
        source = "; ".join(s for s in (spec.sources[0], spec.removed_source) if s)
        allowed = " or ".join(v for v in spec.values if v not in spec.refused)
        problems.append(
            Problem(
                path=shown,
                key=key,
                message=f"{normalised} is refused: {why} (source: {source}); use {allowed} or "
                "leave it out",
            )
        )
        return None
    return normalised


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _normalise_unknown(value: object) -> str | None:
    if _is_int(value):
        return str(value)
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, list) and value and all(_is_int(v) for v in value):
        return " ".join(str(v) for v in value)
    return None


def _parse_int(value: object) -> int | None:
    """A TOML integer, or a string holding one as the kernel prints it."""
    if _is_int(value):
        return value  # type: ignore[return-value]
    return parse_int(value) if isinstance(value, str) else None


def normalise_for(spec: keys.KeySpec, value: object) -> tuple[str | None, str]:
    """(error, normalised): check a profile value against the knowledge base."""
    if isinstance(value, bool):
        return "must be a number, not true/false", ""
    if spec.type in (keys.BOOL, keys.ENUM, keys.INT):
        number = _parse_int(value)
        if number is None:
            return f"must be an integer, got {_show(value)}", ""
        if spec.values and str(number) not in spec.values:
            allowed = ", ".join(f"{v} ({m})" for v, m in spec.values.items())
            return f"{number} is not allowed; use one of: {allowed}", ""
        problem = _range_problem(spec, number)
        return (problem, "") if problem else (None, str(number))
    if spec.type == keys.INT_VECTOR:
        if isinstance(value, str):
            parts: list[object] = list(value.split())
        elif isinstance(value, list):
            parts = list(value)
        else:
            return f'must be a list of {spec.length} integers or a string like "1 2"', ""
        numbers = [_parse_int(p) for p in parts]
        if any(n is None for n in numbers):
            return f"must hold only integers, got {_show(value)}", ""
        if spec.length and len(numbers) != spec.length:
            return f"needs exactly {spec.length} integers, got {len(numbers)}", ""
        for number in numbers:
            problem = _range_problem(spec, number)  # type: ignore[arg-type]
            if problem:
                return problem, ""
        return None, " ".join(str(n) for n in numbers)
    if spec.type == keys.PORT_LIST:
        return _port_list(value)
    # STRING
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", value.strip()):
        return f"must be a single word such as 'cubic', got {_show(value)}", ""
    return None, value.strip()


def _port_list(value: object) -> tuple[str | None, str]:
    if isinstance(value, list):
        items = [str(v) if _is_int(v) else None for v in value]
        if None in items:
            return "a port list holds integers or a string like '8080,9000-9100'", ""
        text = ",".join(items)  # type: ignore[arg-type]
    elif isinstance(value, str):
        text = value.replace(" ", "")
    else:
        return "must be a string like '8080,9000-9100' or a list of ports", ""
    if not text:
        return None, ""
    for part in text.split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            return f"{part!r} is not a port or a range like 9000-9100", ""
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if not (1 <= first <= 65535 and 1 <= last <= 65535) or first > last:
            return f"{part!r} is not within 1..65535 in ascending order", ""
    return None, text


def _range_problem(spec: keys.KeySpec, number: int) -> str | None:
    if spec.minimum is not None and number < spec.minimum:
        return f"{number} is below the minimum {spec.minimum}"
    if spec.maximum is not None and number > spec.maximum:
        return f"{number} is above the maximum {spec.maximum}"
    return None


def _show(value: object) -> str:
    return repr(value) if not isinstance(value, list) else "[" + ", ".join(map(repr, value)) + "]"


def cross_key_problems(sysctl: dict[str, str], shown: str) -> list[Problem]:
    """Rules between keys, on one file or on a merged profile."""
    problems = []
    port_range = sysctl.get("net.ipv4.ip_local_port_range")
    if port_range:
        low, high = (int(p) for p in port_range.split())
        if low > high:
            problems.append(
                Problem(
                    path=shown,
                    key="net.ipv4.ip_local_port_range",
                    message=f"low {low} is above high {high}",
                )
            )
        if low < 1024:
            problems.append(
                Problem(
                    path=shown,
                    key="net.ipv4.ip_local_port_range",
                    message=f"low {low} is below 1024: ephemeral ports would take privileged ports",
                )
            )
    reuse = sysctl.get("net.ipv4.tcp_tw_reuse")
    if reuse in ("1", "2") and sysctl.get("net.ipv4.tcp_timestamps") == "0":
        problems.append(
            Problem(
                path=shown,
                key="net.ipv4.tcp_tw_reuse",
                message=f"tcp_tw_reuse = {reuse} needs tcp_timestamps != 0, but this profile sets "
                "it to 0",
            )
        )
    for key in ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"):
        value = sysctl.get(key)
        if value:
            numbers = [int(p) for p in value.split()]
            if not numbers[0] <= numbers[1] <= numbers[2]:
                problems.append(
                    Problem(path=shown, key=key, message="must be in 'min default max' order")
                )
    return problems


# --- loading with extends -----------------------------------------------------------------------


def parent_path_problem(parent: str) -> str | None:
    """Where a parent profile may come from: by name, from the same places as any profile
    (--root's etc/tcptune/profiles, then the shipped ones); or as a path relative to the child's
    directory that stays inside it: no absolute path, no `..`, and links in it resolved inside
    that directory (system.below). So a profile cannot pull in a file from elsewhere on the
    machine, or outside --root, as its parent."""
    hint = "name a profile, or a file in this profile's directory such as base.toml"
    if "\x00" in parent:
        return f"{parent!r} contains a NUL byte ({hint})"
    if parent.startswith("/"):
        return f"{parent!r} is an absolute path, which a parent may not be ({hint})"
    if ".." in parent.split("/"):
        return f"{parent!r} would leave this profile's directory with '..' ({hint})"
    return None


def _resolve_parent(parent: str, child: Path, root: Path) -> Path:
    """The file of the parent named by `extends` in the profile `child` (where it really is)."""
    if is_path(parent):
        return below(child.parent, parent)  # walked inside the child's directory only
    return find(parent, root)


def load(argument: str, root: Path) -> Profile:
    """Find, parse, validate and merge a profile and its extends chain. Raises ProfileError."""
    path = find(argument, root)
    files: list[ProfileFile] = []
    seen: list[Path] = []
    current: Path | None = path
    name = Path(argument).stem if is_path(argument) else argument
    while current is not None:
        resolved = real_path(current)
        if resolved in seen:
            names = [f.name for f in files] + [current.stem]
            raise ProfileError(
                [
                    Problem(
                        path=str(files[-1].path),
                        key="extends",
                        message="cycle: " + " -> ".join(names),
                    )
                ]
            )
        seen.append(resolved)
        file = read_file(current, name if not files else None)
        if file.problems:
            raise ProfileError(file.problems)
        files.append(file)
        if file.extends is None:
            current = None
            continue
        try:
            current = _resolve_parent(file.extends, resolved, root)
        except BadInput as err:
            raise ProfileError(
                [
                    Problem(
                        path=str(current),
                        key="extends",
                        message=f"parent {file.extends!r}: {err.line()}",
                    )
                ]
            ) from None
        if not is_file(current):
            raise ProfileError(
                [
                    Problem(
                        path=str(file.path),
                        key="extends",
                        message=f"parent {file.extends!r} does not exist",
                    )
                ]
            )
    merged: dict[str, str] = {}
    origin: dict[str, str] = {}
    for file in reversed(files):  # root ancestor first, the child last so it wins
        for key, value in file.sysctl.items():
            merged[key] = value
            origin[key] = file.name
    problems = cross_key_problems(
        merged, f"{path} (merged with {', '.join(f.name for f in files[1:])})"
    )
    if problems and len(files) > 1:
        raise ProfileError(problems)
    return Profile(
        name=files[0].name,
        path=path,
        description=files[0].description,
        chain=[f.name for f in files],
        sysctl=merged,
        origin=origin,
        warnings=[w for f in files for w in f.warnings],
    )


def try_load(argument: str, root: Path) -> tuple[Profile | None, list[Problem]]:
    """The profile, or None and its problems: never raises for a bad profile."""
    try:
        return load(argument, root), []
    except ProfileError as err:
        return None, err.problems
    except BadInput as err:
        return None, [Problem(path=argument, key="", message=err.line())]


def validate(argument: str, root: Path) -> tuple[list[Problem], list[Problem]]:
    """(problems, warnings) for `profiles validate`: never raises for a bad profile."""
    profile, problems = try_load(argument, root)
    return problems, profile.warnings if profile else []
