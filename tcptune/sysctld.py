"""What each key holds after the boot-time loaders run: procps `sysctl --system` and systemd-sysctl.

Pure: the files (tcptune.system.read_conf_files) and the kernel command line are handed in. The
rules, read in procps-ng 4.0.2 src/sysctl.c and systemd 252 src/sysctl/sysctl.c,
src/basic/conf-files.c, src/basic/fileio.c, checked against both programs by
tests/test_loaders_differential.py and recorded in docs/kernel-facts.md ("sysctl.d: the loaders"):

- Files: *.conf in /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d,
  /lib/sysctl.d; the first directory holding a name wins it, whatever the entry is (a link to
  /dev/null or to nothing, a directory: a mask). Applied in byte order of the name. procps reads
  names starting with '.', systemd skips them. procps then reads /etc/sysctl.conf (a regular file).
- Lines: procps splits on LF only, stops a line at NUL, strips C blanks (also VT and FF); systemd
  ends a line at LF, CR, CRLF, LFCR or NUL, strips space, tab, LF and CR only, and stops reading a
  file at a line of 1 MiB or more. '#' and ';' start comments; '-key = v' ignores a failure;
  '-key' alone (no '=') keeps globs off that key.
- procps writes every line in order; a glob line skips any key that some line, anywhere, names
  exactly (as the same path string). systemd keeps one entry per key, the last value read (a
  repeat of the same value keeps the entry's place), writes each once, in the order of the
  entries, and a glob skips every key that has an entry of its own.
- The kernel parses what is written: integers in C notation (0x1a is 26, 025 is 21), what follows
  the last field is ignored after a blank ('30 # note' sets 30, '30#note' is refused), a vector
  key written in part keeps its other fields, a refused write leaves the value before it.
- The kernel command line's sysctl.KEY=VALUE (Linux 5.8+) is written before any loader runs.
"""

import itertools
import posixpath
import re
from collections.abc import Iterable, Sequence

from tcptune import keys
from tcptune.model import (
    CONF_MASK,
    CONF_TEXT,
    CONF_UNKNOWN,
    DIRS,
    LOADERS,
    PROCPS,
    SYSTEMD,
    ConfFile,
    same_value,
)

C_BLANKS = " \t\n\v\f\r"  # isspace() in the C locale: procps strips these; so does the kernel
SYSTEMD_BLANKS = " \t\n\r"  # systemd's WHITESPACE
NUMBER_ENDS = " \t\n"  # what may follow a number the kernel reads (proc_wspace_sep)
GLOB_CHARS = "*?["
LONG_LINE_MAX = 1024 * 1024  # systemd read_line(): a line this long ends the file, with an error
COMMAND_LINE = "/proc/cmdline"
_PROC_SYS = "/proc/sys/"
_SWAP = str.maketrans("./", "/.")
_SLOW = "\r\0\v\f"  # a line holding one of these is split or stripped differently by the loaders
_PATTERNS: dict[str, "re.Pattern[str]"] = {}


def _regex(pattern: str) -> "re.Pattern[str]":
    """Compiled once, when first needed (check's start-up pays for no pattern it does not use)."""
    found = _PATTERNS.get(pattern)
    if found is None:
        found = _PATTERNS[pattern] = re.compile(pattern)
    return found


def key_path(key: str) -> str:
    """A key as a path below /proc/sys: 'net.ipv4.tcp_fin_timeout' -> 'net/ipv4/tcp_fin_timeout'.
    Like both loaders: when the first separator is a dot, dots and slashes trade places (so
    'net.ipv4.conf.eth0/10.rp_filter' names the interface eth0.10); else it is a path already."""
    for char in key:
        if char == ".":
            return key.translate(_SWAP)
        if char == "/":
            return key
    return key


def dotted(path: str) -> str:
    """The inverse of key_path, for showing a key path as sysctl names it."""
    return path.translate(_SWAP)


# --- files ----------------------------------------------------------------------------------------


def order(files: Iterable[ConfFile], loader: str) -> list[ConfFile]:
    """The files a loader applies, in the order it applies them (names that hide later files
    included; a directory that could not be listed is left out: see unlisted())."""
    seen: dict[str, ConfFile] = {}
    by_directory: dict[str, list[ConfFile]] = {}
    for conf in files:
        by_directory.setdefault(conf.directory, []).append(conf)
    for directory in DIRS[loader]:
        for conf in by_directory.get(directory, ()):
            name = conf.name
            if not name.endswith(".conf") or name in seen:
                continue
            if loader == SYSTEMD and name.startswith("."):
                continue  # systemd's FOREACH_DIRENT skips hidden files
            seen[name] = conf
    ordered = [seen[name] for name in sorted(seen, key=_name_bytes)]
    if loader == PROCPS:
        ordered += [
            f for f in by_directory.get("", ()) if f.name == "sysctl.conf" and f.state != CONF_MASK
        ]
    return ordered


def unlisted(files: Iterable[ConfFile], loader: str) -> list[ConfFile]:
    """The directories of that loader tcptune could not list: any name could be there."""
    return [f for f in files if not f.name and f.directory in DIRS[loader]]


def _needles(keys: Iterable[str]) -> list[str]:
    """What a line must hold to concern one of `keys`: a key's last component (as a path and
    as a dotted name), or a glob character."""
    found = set(GLOB_CHARS)
    for key in keys:
        last = key_path(key).rsplit("/", 1)[-1]
        found.update((last, dotted(last)))
    return sorted(found)


def _name_bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")  # strcmp() order of the names as stored


# --- lines ----------------------------------------------------------------------------------------


class Line:
    """One assignment or exclusion line, as one loader reads it."""

    key: str  # the key as the loader keeps it (procps: the /proc/sys path it builds; systemd:
    # the normalised name without /proc/sys)
    target: str  # the key path it writes, or the glob pattern; "" when it cannot be a key
    glob: bool
    value: str | None  # None: a '-key' line that keeps globs off the key
    ignore: bool  # a leading '-' before 'key = value': a failure to write is not an error
    file: int  # index of the file in the loader's order
    line: int  # line number (counted in LFs, as an editor shows it)

    __slots__ = ("file", "glob", "ignore", "key", "line", "target", "value")

    def __init__(
        self,
        *,
        key: str,
        target: str,
        glob: bool,
        value: str | None,
        ignore: bool,
        file: int,
        line: int,
    ) -> None:
        self.key, self.target, self.glob, self.value = key, target, glob, value
        self.ignore, self.file, self.line = ignore, file, line


def _c_rstrip(text: str) -> str:
    """C rstrip() as procps has it: trailing C blanks go, but never the first character."""
    stripped = text.rstrip(C_BLANKS)
    return stripped if stripped or not text else text[0]


class _Raw:
    """One line of a file as a loader reads it, split into its parts."""

    number: int  # in LF lines, from 1
    offset: int  # where the line starts in the text
    key: str  # the text before '=' (or after the '-' of an exclusion), '-' taken off
    value: str | None  # None: a '-key' exclusion
    dash: bool

    __slots__ = ("dash", "key", "number", "offset", "value")

    def __init__(self, number: int, offset: int, key: str, value: str | None, dash: bool) -> None:
        self.number, self.offset, self.key, self.value, self.dash = number, offset, key, value, dash


def lf_lines(text: str, needles: Sequence[str] | None) -> list[tuple[int, int, str, bool]]:
    """The LF-ended lines of a text as (number, offset, text, ended by LF); with `needles`, only
    the lines holding one of them (found by str.find, so a big file costs a few scans)."""
    if needles is None:
        pieces = text.split("\n")
        last = len(pieces) - 1
        result, offset = [], 0
        for index, piece in enumerate(pieces):
            result.append((index + 1, offset, piece, index < last))
            offset += len(piece) + 1
        return result
    starts: set[int] = set()
    size = len(text)
    for needle in needles:
        found = text.find(needle)
        while found >= 0:
            end = text.find("\n", found)
            starts.add(text.rfind("\n", 0, found) + 1)
            if end < 0:
                break
            found = text.find(needle, end + 1)  # past the LF: an empty needle moves on too
    result = []
    number, counted = 1, 0
    for start in sorted(starts):
        number += text.count("\n", counted, start)
        counted = start
        end = text.find("\n", start)
        ended = end >= 0
        result.append((number, start, text[start : end if ended else size], ended))
    return result


def _split(lines: list[tuple[int, int, str, bool]]) -> tuple[list[_Raw], list[_Raw]]:
    """The assignment and exclusion lines as procps and as systemd read them."""
    procps: list[_Raw] = []
    systemd: list[_Raw] = []
    for number, offset, raw, ended in lines:
        if not any(char in raw for char in _SLOW):  # both loaders split and strip it alike
            line = raw.lstrip(" \t")
            if not line or line[0] in "#;":
                continue
            key, equals, value = line.partition("=")
            if equals:
                dash = key[:1] == "-"
                key = key[1:] if dash else key
                value = value.strip(" \t")
                procps.append(_Raw(number, offset, _c_rstrip(key) if key else key, value, dash))
                systemd.append(_Raw(number, offset, key, value, dash))
            elif line[0] == "-":
                procps.append(_Raw(number, offset, _c_rstrip(line[1:]), None, True))
                systemd.append(_Raw(number, offset, line[1:], None, True))
            continue
        found = _procps_raw(number, offset, raw, ended)
        if found is not None:
            procps.append(found)
        start = 0
        for piece in _regex("[\r\0]").split(raw):  # within an LF line, CR and NUL end lines
            found = _systemd_raw(number, offset + start, piece)
            if found is not None:
                systemd.append(found)
            start += len(piece) + 1
    return procps, systemd


def _procps_raw(number: int, offset: int, raw: str, ended: bool) -> _Raw | None:
    """procps Preload(): a getline() line; it ends at NUL; C blanks stripped."""
    if len(raw) + ended < 2:  # getline() counts the LF
        return None
    line = raw + "\n" if ended else raw
    nul = line.find("\0")
    if nul >= 0:
        line = line[:nul]
    line = line.lstrip(C_BLANKS)
    if len(line) < 2 or line[0] in "#;":
        return None
    key, equals, value = line.partition("=")
    if equals:
        dash = key[:1] == "-"
        key = _c_rstrip(key[1:] if dash else key)
        return _Raw(number, offset, key, _c_rstrip(value.lstrip(C_BLANKS)), dash)
    if line[0] == "-":
        return _Raw(number, offset, _c_rstrip(line[1:]), None, True)
    return None


def _systemd_raw(number: int, offset: int, line: str) -> _Raw | None:
    """systemd parse_file(): a read_line() line (LF, CR and NUL all end one), WHITESPACE
    stripped."""
    line = line.strip(SYSTEMD_BLANKS)
    if not line or line[0] in "#;":
        return None
    key, equals, value = line.partition("=")
    if equals:
        dash = key[:1] == "-"
        return _Raw(number, offset, key[1:] if dash else key, value.strip(SYSTEMD_BLANKS), dash)
    if line[0] == "-":
        return _Raw(number, offset, line[1:], None, True)
    return None


def _too_long_line(text: str) -> int | None:
    """Where the first line systemd refuses as too long starts (read_line() fails with ENOBUFS
    at LONG_LINE_MAX characters and parse_file() stops there), if any."""
    half = LONG_LINE_MAX // 2
    # Such a line holds a whole aligned block of half its length: look closer only then.
    if all(
        any(text.find(eol, start, start + half) >= 0 for eol in "\n\r\0")
        for start in range(0, len(text) - half + 1, half)
    ):
        return None
    offset = 0
    for piece in _regex("[\n\r\0]").split(text):
        if len(piece) >= LONG_LINE_MAX:
            return offset
        offset += len(piece) + 1
    return None


def _procps_line(file: int, number: int, key: str, value: str | None, dash: bool) -> Line:
    """procps setting_new(): the path is /proc/sys/ + the key (one more leading '-' dropped), the
    dots and slashes traded by slashdot()."""
    path = _PROC_SYS + key_path(key[1:] if key[:1] == "-" else key)
    glob = any(char in path for char in GLOB_CHARS)
    resolved = path if _is_plain(path) else posixpath.normpath(path)
    target = resolved[len(_PROC_SYS) :] if resolved.startswith(_PROC_SYS) else ""
    ignore = dash and value is not None
    return Line(
        key=path, target=target, glob=glob, value=value, ignore=ignore, file=file, line=number
    )


def _is_plain(path: str) -> bool:
    return "//" not in path and "/." not in path and not path.endswith("/")


def _systemd_line(file: int, number: int, key: str, value: str | None, dash: bool) -> Line:
    """systemd: the key stripped, then sysctl_normalize() (dots and slashes traded, the path
    simplified, a leading slash dropped); sysctl_write() refuses a path with '..'."""
    name = _simplify(key_path(key.strip(SYSTEMD_BLANKS)))
    if name.startswith("/") and len(name) > 1:
        name = name[1:]
    glob = any(char in name for char in GLOB_CHARS)
    refused = ".." in name.split("/")
    return Line(
        key=name,
        target="" if refused else name,
        glob=glob,
        value=value,
        ignore=dash and value is not None,
        file=file,
        line=number,
    )


def _simplify(path: str) -> str:
    """systemd path_simplify(): no empty or '.' components, no trailing slash."""
    if not path:
        return path
    parts = [part for part in path.split("/") if part not in ("", ".")]
    simplified = ("/" if path[0] == "/" else "") + "/".join(parts)
    return simplified or "."


# --- globs ----------------------------------------------------------------------------------------


# [:name:] inside a bracket, as glibc's fnmatch knows them in the C locale (key names are ASCII)
_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": " \\t\\n\\v\\f\\r",
    "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}
_NEVER = "(?!)"  # a regex that matches nothing


def _bracket(pattern: str, start: int) -> tuple[str, int] | None:
    """The bracket expression opening at pattern[start] ('['), as glibc's fnmatch reads it: '!'
    or '^' first negates, a ']' first is a member, '\\' escapes the next character, 'a-z' is a
    range (none when reversed), '[:class:]' a class. Returns (regex, index of its ']'), or None
    when no ']' closes it (the '[' is then an ordinary character)."""
    index, size = start + 1, len(pattern)
    negate = index < size and pattern[index] in "!^"
    index += negate
    members: list[str] = []
    first = True
    while index < size:
        char = pattern[index]
        if char == "]" and not first:
            body = "".join(members)
            if negate:
                return f"[^/{body}]", index
            return (f"[{body}]" if body else _NEVER), index
        if char == "/":
            return None  # glob() splits the pattern at '/' first: no bracket spans one
        first = False
        if char == "[" and pattern[index + 1 : index + 2] == ":":
            close = pattern.find(":]", index + 2)
            if close < 0:
                return None
            name = pattern[index + 2 : close]
            if name not in _CLASSES:
                return _NEVER, size - 1  # fnmatch() fails on an unknown class: no match at all
            members.append(_CLASSES[name])
            index = close + 2
            continue
        if char == "\\":
            index += 1
            if index >= size:
                return None
            char = pattern[index]
        index += 1
        if index + 1 < size and pattern[index] == "-" and pattern[index + 1] != "]":
            high = pattern[index + 1]
            index += 2
            if high == "\\":
                if index >= size:
                    return None
                high = pattern[index]
                index += 1
            if char <= high:
                members.append(f"{re.escape(char)}-{re.escape(high)}")
            continue
        members.append(re.escape(char))
    return None


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """glob(3) as both loaders call it on /proc/sys: '*', '?' and '[...]' (see _bracket) within
    one path component, '\\' escapes."""
    out = []
    index, size = 0, len(pattern)
    while index < size:
        char = pattern[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            found = _bracket(pattern, index)
            if found is None:
                out.append(re.escape(char))
            else:
                regex, index = found
                out.append(regex)
        elif char == "\\" and index + 1 < size:
            index += 1
            out.append(re.escape(pattern[index]))
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out))


def _braces(pattern: str) -> list[str]:
    """GLOB_BRACE (systemd's glob_extend): 'a{b,c}d' -> ['abd', 'acd'], '{b}' -> 'b', nested
    groups too; an unclosed '{' is taken literally, as glibc does, and so is a '{', ',' or '}'
    after a '\\' (the backslash stays, for glob() to read)."""
    depth, start = 0, -1
    commas: list[int] = []
    escaped = False
    for index, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "{":
            if depth == 0:
                start, commas = index, []
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                bounds = [start, *commas, index]
                head, tail = pattern[:start], pattern[index + 1 :]
                result = []
                for left, right in itertools.pairwise(bounds):
                    result += _braces(head + pattern[left + 1 : right] + tail)
                return result
        elif char == "," and depth == 1:
            commas.append(index)
    return [pattern]


class _Globs:
    """Compiled glob patterns, each once per run."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, bool], list[re.Pattern[str]]] = {}

    def matches(self, pattern: str, path: str, *, braces: bool) -> bool:
        compiled = self._cache.get((pattern, braces))
        if compiled is None:
            variants = _braces(pattern) if braces and "{" in pattern else [pattern]
            compiled = [_glob_regex(_simplify(v).lstrip("/")) for v in variants]
            self._cache[(pattern, braces)] = compiled
        return any(regex.fullmatch(path) for regex in compiled)


# --- what the kernel makes of a write -------------------------------------------------------------

_UNKNOWN = "\0unknown"  # a field whose value cannot be told
_PORTS = r"[0-9]+(?:-[0-9]+)?(?:,[0-9]+(?:-[0-9]+)?)*"
_PLAIN_WORD = r"(?:0|[1-9][0-9]*|-[1-9][0-9]*|[A-Za-z_][A-Za-z0-9_.:-]*)"
_INT_MAX = 2**31 - 1
_HEX = "0123456789abcdefABCDEF"
# Seconds kept in jiffies (proc_dointvec_jiffies, net/ipv4/sysctl_net_ipv4.c): more than
# INT_MAX / HZ is refused, and HZ (100 to 1000) is the kernel's build choice.
_JIFFIES_KEYS = {
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
}


class _Kind:
    """How the kernel reads a key's value."""

    style: str  # "ints", "name", "ports" or "text"
    fields: int
    low: int
    high: int
    whole: bool  # the kernel takes all fields or none (ip_local_port_range)

    __slots__ = ("fields", "high", "low", "style", "whole")

    def __init__(self, style: str, fields: int, low: int, high: int, whole: bool) -> None:
        self.style, self.fields, self.low, self.high, self.whole = style, fields, low, high, whole


def _kind(key: str) -> _Kind:
    spec = keys.KEYS.get(key)
    if spec is None:
        return _Kind("text", 1, 0, 0, False)
    if spec.type == keys.STRING:
        return _Kind("name", 1, 0, 0, False)
    if spec.type == keys.PORT_LIST:
        return _Kind("ports", 1, 0, 0, False)
    low = spec.minimum if spec.minimum is not None else -(2**31)
    high = spec.maximum if spec.maximum is not None else _INT_MAX
    if key in _JIFFIES_KEYS:
        high = min(high, _INT_MAX // 1000)
    fields = (spec.length or 1) if spec.type == keys.INT_VECTOR else 1
    return _Kind("ints", fields, low, high, key == "net.ipv4.ip_local_port_range")


def kernel_ints(data: str, count: int) -> tuple[list[int], bool]:
    """__do_proc_dointvec() writing `data`: the fields it stores, in order, and whether the write
    fails (EINVAL). Fields read before a failure are stored all the same."""
    data = data[:4095]  # PAGE_SIZE - 1
    fields: list[int] = []
    position, size = 0, len(data)
    for _ in range(count):
        if position >= size:
            break
        while position < size and data[position] in C_BLANKS:
            position += 1
        if position >= size:
            break
        number = _proc_get_long(data, position)
        if number is None:
            return fields, True
        value, position = number
        fields.append(value)
    return fields, not fields


def _proc_get_long(data: str, position: int) -> tuple[int, int] | None:
    """proc_get_long(): an optional '-', then strtoul base 0 over at most 21 characters, then a
    blank, a tab, a newline or the end; None where the kernel says EINVAL."""
    size = len(data) - position
    tmp = data[position : position + 21]
    start = 1 if tmp[:1] == "-" and size > 1 else 0
    digits = "0123456789"
    if start >= len(tmp) or tmp[start] not in digits:
        return None
    base, index = 10, start
    if tmp[start] == "0":  # _parse_integer_fixup_radix(): 0x.. is hex, 0.. is octal
        base = 8
        after_x = tmp[start + 2 : start + 3]
        if tmp[start + 1 : start + 2] in ("x", "X") and after_x and after_x in _HEX:
            base, index = 16, start + 2
    valid = {8: "01234567", 10: digits, 16: _HEX}[base]
    end = index
    while end < len(tmp) and tmp[end] in valid:
        end += 1
    value = int(tmp[index:end], base) if end > index else 0
    if value > 2**64 - 1 or end == 21:
        return None
    if end < size and tmp[end : end + 1] not in tuple(NUMBER_ENDS):
        return None
    return (-value if start else value), position + end


class _Write:
    """What a write does: the fields after it, whether the kernel refuses it, and, when that
    cannot be told, why."""

    __slots__ = ("fields", "refused", "uncertain")

    def __init__(self, fields: tuple[str | None, ...], refused: bool, uncertain: str) -> None:
        self.fields, self.refused, self.uncertain = fields, refused, uncertain


def kernel_write(key: str, before: tuple[str | None, ...], data: str) -> _Write:
    """What `key` holds after `data` is written to it, from `before` (None: a field nothing has
    written yet, _UNKNOWN: one that cannot be told)."""
    kind = _kind(key)
    text = data.split("\n", 1)[0].split("\0", 1)[0]
    if kind.style == "name":  # proc_dostring() keeps 15 characters (TCP_CA_NAME_MAX - 1)
        name = text[:15]
        if not (name.isascii() and name.replace("_", "a").isalnum()):  # no algorithm's name
            return _Write(before, True, "")
        if len(text) > 15:
            return _Write(before, False, f"{text!r} is longer than an algorithm name can be")
        return _Write((text,), False, "")
    if kind.style == "ports":
        if not _regex(_PORTS).fullmatch(text):
            return _Write(before, False, f"tcptune does not model how the kernel reads {text!r}")
        return _Write((_port_list(text),), False, "")
    if kind.style == "text":
        words = text.strip(C_BLANKS).split()
        if not words or not all(_regex(_PLAIN_WORD).fullmatch(w) for w in words):
            return _Write(
                before, False, f"tcptune does not know how the kernel reads {text!r} for {key}"
            )
        if len(words) > 1:  # a key of one integer keeps the first, a vector all, a string all
            return _Write(
                before, False, f"tcptune does not know how many fields the kernel reads for {key}"
            )
        return _Write((words[0],), False, "")
    numbers, failed = kernel_ints(data, kind.fields)
    for number in numbers:
        if not kind.low <= number <= kind.high:
            return _Write(
                before,
                False,
                f"the kernel may refuse {number} for {key} (tcptune knows {kind.low}..{kind.high})",
            )
    stored = tuple(str(n) for n in numbers)
    if kind.whole:  # ipv4_local_port_range(): the fields on top of the current range, or nothing
        if failed:
            return _Write(before, True, "")
        after = stored + tuple(before[len(stored) :])
        if any(f is None or f == _UNKNOWN for f in after):
            return _Write(
                tuple(_UNKNOWN for _ in after),
                False,
                f"{data.strip()!r} sets part of the range; the kernel checks it against the rest",
            )
        low, high = (int(f or 0) for f in after)
        if high < low:
            return _Write(before, True, "")
        if low < 1024:
            return _Write(
                before,
                False,
                "the kernel refuses a start below ip_unprivileged_port_start (1024 by default)",
            )
        return _Write(after, False, "")
    after = stored + tuple(before[len(stored) :])
    return _Write(after, failed, "")


def _port_list(text: str) -> str:
    """ip_local_reserved_ports as the kernel prints it back: sorted, ranges merged."""
    ports: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        ports.update(range(int(first), int(last or first) + 1))
    runs: list[list[int]] = []
    for port in sorted(ports):
        if runs and runs[-1][1] == port - 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


# --- the kernel command line ----------------------------------------------------------------------


def command_line_sysctls(cmdline: str) -> list[tuple[str, str]]:
    """The sysctl.KEY=VALUE (or sysctl/KEY=VALUE) parameters of a kernel command line, in order,
    as (key path, value): parse_args()/next_arg() in kernel/params.c, process_sysctl_arg() in
    fs/proc/proc_sysctl.c (every '.' of the key becomes '/'). Parsing stops at '--'."""
    result = []
    args = cmdline.lstrip(C_BLANKS)
    while args:
        param, value, args = _next_arg(args)
        if value is None and param == "--":
            break
        if param.startswith("sysctl") and param[6:7] in (".", "/") and value:
            result.append((param[7:].replace(".", "/"), value))
    return result


def _next_arg(args: str) -> tuple[str, str | None, str]:
    in_quote = quoted = args[:1] == '"'
    if quoted:
        args = args[1:]
    equals = 0
    index = 0
    while index < len(args):
        char = args[index]
        if char in C_BLANKS and not in_quote:
            break
        if equals == 0 and char == "=":
            equals = index
        if char == '"':
            in_quote = not in_quote
        index += 1
    word, rest = args[:index], args[index + 1 :]
    if quoted and word.endswith('"'):
        word = word[:-1]
    if not equals:
        return word, None, rest.lstrip(C_BLANKS)
    param, value = word[:equals], word[equals + 1 :]
    if value.startswith('"'):
        value = value[1:]
        if value.endswith('"'):
            value = value[:-1]
    return param, value, rest.lstrip(C_BLANKS)


# --- answers --------------------------------------------------------------------------------------


class BootAnswer:
    """What one loader leaves a key at after boot. (Plain slotted classes here, not
    dataclasses: `check` imports this module at every start.)"""

    __slots__ = ("loader", "refused", "source", "unknown", "value")

    def __init__(
        self,
        *,
        loader: str,
        value: str | None,
        source: str | None,
        unknown: str = "",
        refused: tuple[str, ...] = (),
    ) -> None:
        self.loader = loader
        self.value = value  # as the kernel prints it (blanks collapsed); None: nothing sets it
        self.source = source  # "path:line", or /proc/cmdline, of the write that set it
        self.unknown = unknown  # non-empty: the answer cannot be told, and why
        self.refused = refused  # lines whose write the kernel refuses ("path:line")

    def __repr__(self) -> str:
        return f"BootAnswer({self.loader}, {self.value!r}, {self.source!r}, {self.unknown!r})"

    @property
    def known(self) -> bool:
        return not self.unknown

    def to_json(self) -> dict[str, object]:
        return {
            "value": self.value,
            "source": self.source,
            "unknown": self.unknown or None,
            "refused": list(self.refused),
        }


class _State:
    """The fields of one key while one loader's writes are followed."""

    def __init__(self, key: str, start: tuple[tuple[str | None, ...], str | None]) -> None:
        self.key = key
        self.fields, self.source = start
        self.reasons: list[str] = []
        self.refused: list[str] = []

    def write(self, data: str, source: str) -> None:
        outcome = kernel_write(self.key, self.fields, data)
        if outcome.uncertain:
            self.reasons.append(f"{source}: {outcome.uncertain}")
            self.fields = tuple(_UNKNOWN for _ in self.fields)
            self.source = None
            return
        if outcome.refused:
            self.refused.append(source)
        if outcome.fields != self.fields or not outcome.refused:
            self.fields, self.source = outcome.fields, source

    def unknowable(self, reason: str) -> None:
        self.reasons.append(reason)
        self.fields = tuple(_UNKNOWN for _ in self.fields)
        self.source = None

    def answer(self, loader: str) -> BootAnswer:
        refused = tuple(self.refused)
        if any(f == _UNKNOWN for f in self.fields):
            reason = "; ".join(dict.fromkeys(self.reasons))
            return BootAnswer(loader=loader, value=None, source=None, unknown=reason)
        if all(f is None for f in self.fields):
            return BootAnswer(loader=loader, value=None, source=None, refused=refused)
        if any(f is None for f in self.fields):
            written = sum(f is not None for f in self.fields)
            reason = (
                f"{self.source} sets {written} of the {len(self.fields)} fields; the others keep "
                "the value they had before the loaders ran"
            )
            return BootAnswer(loader=loader, value=None, source=None, unknown=reason)
        value = " ".join(f for f in self.fields if f is not None)
        return BootAnswer(loader=loader, value=value, source=self.source, refused=refused)


class BootModel:
    """Every sysctl.d file read once, for both loaders; then what each key holds after boot.
    With `keys`, only the lines that can concern those keys are parsed (a line names a key only
    if it holds the key's last component, or it is a glob): the answer to any other key is
    refused, as a bug."""

    def __init__(
        self,
        files: Sequence[ConfFile],
        cmdline: str | None = None,
        keys: Iterable[str] | None = None,
    ) -> None:
        self.files = list(files)
        self.cmdline = command_line_sysctls(cmdline) if cmdline else []
        self.keys = None if keys is None else set(keys)
        self._needles = None if keys is None else _needles(self.keys)
        self._globs = _Globs()
        self._parsed: dict[str, _Parsed] = {}
        self._split: dict[int, tuple[list[_Raw], list[_Raw]]] = {}

    def _raw_lines(self, index: int, conf: ConfFile, loader: str) -> list[_Raw]:
        text = conf.text
        if not text:
            return []
        found = self._split.get(index)
        if found is None:
            found = self._split[index] = _split(lf_lines(text, self._needles))
        if loader == PROCPS:
            return found[0]
        cut = _too_long_line(text)
        return found[1] if cut is None else [raw for raw in found[1] if raw.offset < cut]

    def parsed(self, loader: str) -> "_Parsed":
        found = self._parsed.get(loader)
        if found is None:
            found = self._parsed[loader] = self._parse(loader)
        return found

    def _parse(self, loader: str) -> "_Parsed":
        ordered = order(self.files, loader)
        positions = {id(conf): index for index, conf in enumerate(self.files)}
        make = _procps_line if loader == PROCPS else _systemd_line
        lines: list[Line] = []
        unknown: list[tuple[int, str]] = []
        for index, conf in enumerate(ordered):
            if conf.state == CONF_UNKNOWN:
                unknown.append((index, f"cannot read {conf.path}: {conf.reason}"))
                continue
            if conf.state != CONF_TEXT:
                continue
            for raw in self._raw_lines(positions[id(conf)], conf, loader):
                lines.append(make(index, raw.number, raw.key, raw.value, raw.dash))
        blind = [f"cannot list {f.path}: {f.reason}" for f in unlisted(self.files, loader)]
        return _Parsed(loader, ordered, lines, unknown, blind)

    def answer(self, key: str, loader: str) -> BootAnswer:
        """What `key` (dotted, e.g. net.ipv4.tcp_fin_timeout) holds after `loader` runs at boot,
        on top of the kernel command line."""
        self._check_asked(key)
        parsed = self.parsed(loader)
        path = key_path(key)
        kind = _kind(key)
        state = _State(key, ((None,) * kind.fields, None))
        for cmd_key, value in self.cmdline:
            if cmd_key == path:
                state.write(value, COMMAND_LINE)
        if parsed.blind:
            state.unknowable("; ".join(parsed.blind))
            return state.answer(loader)
        if loader == PROCPS:
            self._procps(parsed, path, state)
        else:
            self._systemd(parsed, path, state)
        return state.answer(loader)

    def answers(self, key: str) -> list[BootAnswer]:
        return [self.answer(key, loader) for loader in LOADERS]

    def _check_asked(self, key: str) -> None:
        if self.keys is not None and key not in self.keys:
            raise ValueError(f"{key} was not among the keys this model was built for")

    def _procps(self, parsed: "_Parsed", path: str, state: "_State") -> None:
        """write_setting_list(): every line in order; a glob skips a path some line names."""
        events: list[tuple[int, int, Line | None, str]] = []
        named = _PROC_SYS + path in parsed.raw_paths
        for position, line in parsed.explicit.get(path, ()):
            if line.value is not None:
                events.append((line.file, position, line, ""))
        for position, line in parsed.globs:
            if (
                line.value is None
                or named
                or not self._globs.matches(line.target, path, braces=False)
            ):
                continue
            if parsed.unknown:
                reason = "; ".join(r for _, r in parsed.unknown)
                events.append(
                    (
                        line.file,
                        position,
                        None,
                        f"{reason} (it may name the key, which keeps {parsed.where(line)} off it)",
                    )
                )
            else:
                events.append((line.file, position, line, ""))
        for file, reason in parsed.unknown:
            events.append((file, -1, None, reason))
        events.sort(key=lambda e: (e[0], e[1]))
        for _, _, line, reason in events:
            if line is None:
                state.unknowable(reason)
            else:
                assert line.value is not None
                state.write(line.value + "\n", parsed.where(line))

    def _systemd(self, parsed: "_Parsed", path: str, state: "_State") -> None:
        """apply_all(): one entry per key, in the order of the map; globs skip keys with one."""
        entries = parsed.entries
        own = entries.get(path)
        if own is not None:
            last_file = parsed.last_file[path]
            later = [r for file, r in parsed.unknown if file > last_file]
            if later:
                state.unknowable("; ".join(later))
            elif own.value is not None:
                state.write(own.value + "\n", parsed.where(own))
            return
        if parsed.unknown:
            state.unknowable("; ".join(r for _, r in parsed.unknown))
            return
        for line in entries.values():
            if (
                line.glob
                and line.value is not None
                and self._globs.matches(line.target, path, braces=True)
            ):
                state.write(line.value + "\n", parsed.where(line))

    def lines_naming(self, key: str, loader: str) -> list[tuple[str, Line]]:
        """The lines of the files `loader` reads that name `key` itself (no glob), with where
        they are ("path:line")."""
        self._check_asked(key)
        parsed = self.parsed(loader)
        path = key_path(key)
        if loader == PROCPS:
            found = [line for _, line in parsed.explicit.get(path, ())]
        else:
            found = [line for line in parsed.all_lines if line.target == path and not line.glob]
        return [(parsed.where(line), line) for line in found]


class _Parsed:
    """One loader's reading of the files: its lines, indexed."""

    def __init__(
        self,
        loader: str,
        ordered: list[ConfFile],
        lines: list[Line],
        unknown: list[tuple[int, str]],
        blind: list[str],
    ) -> None:
        self.loader = loader
        self.ordered = ordered
        self.all_lines = lines
        self.unknown = unknown
        self.blind = blind
        self.explicit: dict[str, list[tuple[int, Line]]] = {}
        self.globs: list[tuple[int, Line]] = []
        self.raw_paths: set[str] = set()
        self.entries: dict[str, Line] = {}  # systemd's ordered hashmap
        self.last_file: dict[str, int] = {}
        if loader == PROCPS:
            for position, line in enumerate(lines):
                self.raw_paths.add(line.key)
                if line.glob:
                    self.globs.append((position, line))
                elif line.target:
                    self.explicit.setdefault(line.target, []).append((position, line))
        else:
            entries = self.entries
            for line in lines:
                existing = entries.get(line.key)
                self.last_file[line.key] = line.file
                if existing is not None and existing.value != line.value:
                    del entries[line.key]  # a new value goes to the end
                # The same value again keeps the entry's place; the later line is named as
                # where it comes from, since editing the earlier one would change nothing.
                entries[line.key] = line

    def where(self, line: Line) -> str:
        return f"{self.ordered[line.file].path}:{line.line}"


# --- persistence ----------------------------------------------------------------------------------


class Persistence:
    """Will `target` survive a reboot under `loader`? survives is None when that cannot be told."""

    __slots__ = ("answer", "loader", "survives")

    def __init__(self, *, loader: str, survives: bool | None, answer: BootAnswer) -> None:
        self.loader, self.survives, self.answer = loader, survives, answer

    def __repr__(self) -> str:
        return f"Persistence({self.loader}, survives={self.survives}, {self.answer!r})"

    def describe(self) -> str:
        answer = self.answer
        if not answer.known:
            return f"{self.loader}: unknown ({answer.unknown})"
        refused = ""
        if answer.refused:
            refused = f"; the kernel refuses the value of {', '.join(answer.refused)}"
        if answer.value is None:
            return (
                f"{self.loader}: not set by any file (the kernel default applies at boot)" + refused
            )
        if self.survives:
            how = "kernel command line" if answer.source == COMMAND_LINE else answer.source
            return f"{self.loader}: persisted by {how}{refused}"
        return f"{self.loader}: overridden by {answer.source} (value {answer.value}){refused}"

    def to_json(self) -> dict[str, object]:
        return {**self.answer.to_json(), "survives": self.survives}


def persistence(model: BootModel, key: str, target: str) -> list[Persistence]:
    result = []
    for answer in model.answers(key):
        if not answer.known:
            survives = None
        else:
            survives = answer.value is not None and same_value(answer.value, target)
        result.append(Persistence(loader=answer.loader, survives=survives, answer=answer))
    return result


def overridden(checks: list[Persistence]) -> list[Persistence]:
    """The loaders under which another file sets a different value at boot."""
    return [p for p in checks if p.answer.value is not None and p.survives is False]


def unknown(checks: list[Persistence]) -> list[Persistence]:
    """The loaders under which the boot value cannot be told."""
    return [p for p in checks if not p.answer.known]


def boot_summary(checks: list[Persistence], *, detailed: bool = False) -> str:
    """What happens at boot to the value `checks` (from persistence()) were asked about, in a
    few words: it survives, is not persisted, survives under some loaders only, is overridden,
    or cannot be told; `detailed` names the file and line (or the unreadable file)."""
    over = overridden(checks)
    blind = unknown(checks)
    if (over or blind) and detailed:
        return "; ".join(p.describe() for p in [*over, *blind])
    if over:
        return "overridden (" + ", ".join(p.loader for p in over) + ")"
    if blind:
        return "unknown (" + ", ".join(p.loader for p in blind) + ")"
    if all(p.survives for p in checks):
        if all(p.answer.source == COMMAND_LINE for p in checks):
            return "survives reboot (kernel command line)"
        return "survives reboot"
    if any(p.survives for p in checks):
        return "survives under " + ", ".join(p.loader for p in checks if p.survives)
    return "not persisted"


def boot_json(checks: list[Persistence]) -> dict[str, dict[str, object]]:
    """The per-loader boot answers as JSON: {"procps": {...}, "systemd": {...}}."""
    return {p.loader: p.to_json() for p in checks}
