"""Differential runs of tcptune's loader model against the real loaders, inside `unshare -n -m`
(tests/test_loaders_differential.py starts it).

For each generated sysctl.d layout: write it below tmpfs over every sysctl.d directory and an
overlay over /etc (so /etc/sysctl.conf can be anything), ask tcptune's model what each key holds
after boot (as root, and as uid 65534, to whom some files are unreadable), then run the real
`sysctl --system` and systemd-sysctl, each in a fresh network namespace of its own, and read the
keys back. Only network keys of that fresh namespace are ever written; the host's files, mounts
and sysctls are untouched. Prints one JSON document.

Usage: python loader_layouts.py SEED COUNT [ONLY_INDEX]
   or: python loader_layouts.py --table FILE  (FILE: a JSON list of {path: text} layouts; prints
       what each loader left in every key of KEYS, per layout, and the untouched values)
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tcptune.model import PROCPS, SYSTEMD
from tcptune.sysctld import BootModel, key_path
from tcptune.system import System, read_conf_files

CLONE_NEWNET = 0x40000000
SYSTEMD_SYSCTL = next(
    (
        p
        for p in ("/usr/lib/systemd/systemd-sysctl", "/lib/systemd/systemd-sysctl")
        if os.path.exists(p)
    ),
    None,
)
LOADER_ARGV = {PROCPS: ["sysctl", "--system"], SYSTEMD: [SYSTEMD_SYSCTL or "false"]}
WANTED_DIRS = ["/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d"]
WORK = Path("/run/tcptune-layouts")

FIN = "net.ipv4.tcp_fin_timeout"
IDLE = "net.ipv4.tcp_keepalive_time"
INTVL = "net.ipv4.tcp_keepalive_intvl"
PROBES = "net.ipv4.tcp_keepalive_probes"
RMEM = "net.ipv4.tcp_rmem"
WMEM = "net.ipv4.tcp_wmem"
PORTS = "net.ipv4.ip_local_port_range"
RESERVED = "net.ipv4.ip_local_reserved_ports"
COOKIES = "net.ipv4.tcp_syncookies"
REUSE = "net.ipv4.tcp_tw_reuse"
DELAY = "net.ipv4.tcp_tw_reuse_delay"
CC = "net.ipv4.tcp_congestion_control"
KEYS = [FIN, IDLE, INTVL, PROBES, RMEM, WMEM, PORTS, RESERVED, COOKIES, REUSE, DELAY, CC]
RECYCLE = "net.ipv4.tcp_tw_recycle"  # absent on this kernel: lines for it must do nothing

# Glob keys and the keys they match in a fresh network namespace (checked before any run).
GLOBS = {
    "net.ipv4.tcp_keepalive_*": [IDLE, INTVL, PROBES],
    "net.ipv4.tcp_keepalive_[ti]*": [IDLE, INTVL],
    "net.ipv4.tcp_keepalive_[^p]*": [IDLE, INTVL],
    "net.ipv4.tcp_fin_time?ut": [FIN],
    "net.ipv4.tcp_[!k]in_timeout": [FIN],
    "net/ipv4/tcp_*mem": [RMEM, WMEM],
    "net.ipv4.tcp_tw_*": [REUSE, DELAY],
    "net.ipv4.tcp_keepalive_{time,probes}*": [IDLE, PROBES],  # systemd expands braces
    "net.ipv4.tcp_fin_timeou[\\]t]": [FIN],  # '\\' escapes inside a bracket
    "net.ipv4.tcp_keepalive_[z-at]*": [IDLE],  # a reversed range adds nothing
}


# --- the generator --------------------------------------------------------------------------------


def number(rng: random.Random, low: int, high: int) -> str:
    """An integer as sysctl.d files spell them, now and then oddly (or wrongly)."""
    n = rng.randint(low, high)
    return rng.choices(
        [
            str(n),
            hex(n),
            f"0{n:o}",
            f"{n} # note",
            f"{n}#note",
            f"{n}\t",
            f"{n} {n + 1}",
            f"+{n}",
            "abc",
            "",
            f"{n}\f",
            f"0{n}9" if n else "09",
        ],
        weights=[40, 4, 4, 4, 2, 2, 2, 1, 1, 1, 2, 1],
    )[0]


def vector(rng: random.Random, fields: list[tuple[int, int]]) -> str:
    parts = [str(rng.randint(low, high)) for low, high in fields]
    kind = rng.choices(["spaces", "tabs", "comment", "part", "bad"], weights=[30, 5, 4, 2, 1])[0]
    if kind == "tabs":
        return "\t".join(parts)
    if kind == "comment":
        return " ".join(parts) + " # note"
    if kind == "part":
        return parts[0]
    if kind == "bad":
        return parts[0] + " x"
    return " ".join(parts)


def value_for(rng: random.Random, key: str) -> str:
    if key in (FIN,):
        return number(rng, 1, 120)
    if key in (IDLE, INTVL, PROBES):
        return number(rng, 1, 250)
    if key in (COOKIES, REUSE):
        return number(rng, 0, 2)
    if key == DELAY:
        return number(rng, 1, 60000)
    if key in (RMEM, WMEM):
        return vector(rng, [(4096, 8192), (16384, 262144), (1048576, 16777216)])
    if key == PORTS:
        low = rng.randint(1024, 30000)
        kind = rng.choices(["ok", "reversed", "part", "low"], weights=[20, 2, 1, 1])[0]
        if kind == "reversed":
            return f"{low + 100} {low}"
        if kind == "part":
            return str(low)
        if kind == "low":
            return f"500 {low}"
        return f"{low}{rng.choice([' ', chr(9), '  '])}{rng.randint(low + 1, 65535)}"
    if key == RESERVED:
        return rng.choice(["8080", "9000-9100,8080", "8080,8081", "7000-7001 # x", ""])
    if key == CC:
        # names this namespace allows (tcp_allowed_congestion_control), and two it refuses for sure
        return rng.choice(["reno", "bbr", "reno # x", "bbr\f"])
    raise AssertionError(key)


def glob_value(rng: random.Random, pattern: str) -> str:
    matched = GLOBS[pattern]
    if matched[0] in (RMEM, WMEM):
        return vector(rng, [(4096, 8192), (16384, 262144), (1048576, 16777216)])
    if REUSE in matched:
        return number(rng, 1, 2)
    return number(rng, 1, 120)


def spelled(rng: random.Random, key: str) -> str:
    """A key as people write it: dotted, with slashes, or oddly."""
    path = key_path(key)
    return rng.choices(
        [key, path, "/" + path, path.replace("/", "//", 1), key.upper(), key + " "],
        weights=[30, 8, 2, 2, 1, 2],
    )[0]


def line(rng: random.Random) -> str:
    kind = rng.choices(
        ["set", "glob", "exclude", "exclude-glob", "recycle", "comment", "blank", "garbage"],
        weights=[45, 15, 6, 2, 3, 8, 5, 3],
    )[0]
    prefix = rng.choices(["", "-", "- ", "--"], weights=[40, 5, 2, 1])[0]
    equals = rng.choice([" = ", "=", " =\t", "= ", " ="])
    lead = rng.choices(["", " ", "\t", "\v", "\f"], weights=[40, 4, 3, 1, 1])[0]
    trail = rng.choices(["", " ", "\t", "\v", "\f"], weights=[40, 4, 3, 1, 1])[0]
    if kind == "set":
        key = rng.choice(KEYS)
        text = f"{prefix}{spelled(rng, key)}{equals}{value_for(rng, key)}"
    elif kind == "glob":
        pattern = rng.choice(list(GLOBS))
        text = f"{prefix}{pattern}{equals}{glob_value(rng, pattern)}"
    elif kind == "exclude":
        text = "-" + spelled(rng, rng.choice(KEYS))
    elif kind == "exclude-glob":
        text = "-" + rng.choice(list(GLOBS))
    elif kind == "recycle":
        text = f"{prefix}{RECYCLE}{equals}{rng.choice(['0', '1'])}"
    elif kind == "comment":
        text = rng.choice(["#", ";"]) + " " + rng.choice(KEYS) + " = 1"
    elif kind == "blank":
        text = ""
    else:
        text = rng.choice(["garbage", "x", "net.ipv4.tcp_fin_timeout 30", "[section]"])
    return lead + text + trail


def file_text(rng: random.Random, long_line: bool) -> str:
    lines = [line(rng) for _ in range(rng.randint(0, 7))]
    ends = []
    for _ in lines:
        ends.append(
            rng.choices(["\n", "\r\n", "\r", "\0\n", "\u2028"], weights=[40, 3, 2, 1, 1])[0]
        )
    text = "".join(a + b for a, b in zip(lines, ends, strict=True))
    if lines and rng.random() < 0.2:
        text = text[: -len(ends[-1])]  # no final newline
    if long_line:
        size = 1024 * 1024 - rng.choice([1, 0])
        cut = rng.randint(0, len(lines))
        head = "".join(a + b for a, b in zip(lines[:cut], ends[:cut], strict=True))
        text = head + "#" * size + "\n" + text[len(head) :]
    return text


NAMES = ["10-a.conf", "50-b.conf", "50-c.conf", "90-z.conf", "a.conf", "B.conf", ".hidden.conf"]


def generate(seed: int, index: int, directories: list[str]) -> dict:
    """One layout: {path: entry} with entry {"text": ..., "mode": ...}, {"link": target} or
    {"dir": True}; "/etc/sysctl.conf" among the paths at times; "unlisted": a directory nobody
    may list."""
    rng = random.Random(f"{seed}-{index}")
    layout: dict = {"files": {}, "unlisted": None}
    files = layout["files"]
    entries = rng.randint(1, 6)
    # the rare cases, now and then at random and in one layout of every 40 for sure
    long_at = rng.randrange(entries) if rng.random() < 0.04 or index % 40 == 29 else -1
    for count in range(entries):
        directory = rng.choice(directories)
        name = rng.choice(NAMES + ["x.conf.bak"] * (rng.random() < 0.1))
        path = f"{directory}/{name}"
        up = "../" * (directory.count("/"))
        kind = rng.choices(
            ["text", "null", "null-relative", "dangling", "dir", "relative", "absolute", "private"],
            weights=[70, 4, 4, 4, 3, 4, 3, 6],
        )[0]
        if kind in ("text", "private"):
            entry = {
                "text": file_text(rng, count == long_at),
                "mode": 0o600 if kind == "private" else 0o644,
            }
        elif kind == "null":
            entry = {"link": "/dev/null"}
        elif kind == "null-relative":
            entry = {"link": up + "dev/null"}
        elif kind == "dangling":
            entry = {"link": rng.choice(["/nonexistent.conf", "missing.conf"])}
        elif kind == "dir":
            entry = {"dir": True}
        else:
            target_dir = rng.choice(directories)
            target = f"{target_dir}/target-{count}.txt"
            files[target] = {"text": file_text(rng, False), "mode": 0o644}
            link = target if kind == "absolute" else up + target.lstrip("/")
            entry = {"link": link}
        files[path] = entry
    conf = rng.choices(["none", "text", "null", "dir", "link"], weights=[40, 40, 7, 5, 8])[0]
    if conf == "text":
        files["/etc/sysctl.conf"] = {
            "text": file_text(rng, False),
            "mode": rng.choice([0o644] * 9 + [0o600]),
        }
    elif conf == "null":
        files["/etc/sysctl.conf"] = {"link": "/dev/null"}
    elif conf == "dir":
        files["/etc/sysctl.conf"] = {"dir": True}
    elif conf == "link":
        files["/run/tcptune-layouts/conf-target"] = {"text": file_text(rng, False), "mode": 0o644}
        files["/etc/sysctl.conf"] = {"link": "/run/tcptune-layouts/conf-target"}
    if rng.random() < 0.03 or index % 40 == 17:
        layout["unlisted"] = rng.choice(directories)
    return layout


# --- the machine ----------------------------------------------------------------------------------


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


def isolate() -> list[str]:
    """Private mounts: an overlay over /etc, tmpfs over every sysctl.d directory there is, and
    this namespace's own /run. Returns the sysctl.d directories layouts may use."""
    sh("mount", "--make-rprivate", "/")
    sh("mount", "-t", "tmpfs", "tmpfs", "/run")
    upper, work = WORK / "etc-upper", WORK / "etc-work"
    upper.mkdir(parents=True)
    work.mkdir()
    sh(
        "mount",
        "-t",
        "overlay",
        "overlay",
        "-o",
        f"lowerdir=/etc,upperdir={upper},workdir={work}",
        "/etc",
    )
    os.makedirs("/run/sysctl.d")
    directories = []
    mounted: set[str] = set()
    for directory in [*WANTED_DIRS, "/lib/sysctl.d"]:
        if not os.path.isdir(directory) or os.path.realpath(directory) in mounted:
            continue
        mounted.add(os.path.realpath(directory))
        if directory != "/run/sysctl.d":
            sh("mount", "-t", "tmpfs", "tmpfs", directory)
        directories.append(directory)
    clear(directories)
    for directory in directories:
        assert os.listdir(directory) == [], directory
    assert not os.path.lexists("/etc/sysctl.conf")
    return directories


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        for name in os.listdir(path):
            remove(os.path.join(path, name))
        os.rmdir(path)
    elif os.path.lexists(path):
        os.unlink(path)


def clear(directories: list[str]) -> None:
    for directory in directories:
        os.chmod(directory, 0o755)
        for name in os.listdir(directory):
            remove(os.path.join(directory, name))
    remove("/etc/sysctl.conf")
    remove(str(WORK / "conf-target"))


def write(layout: dict) -> None:
    for path, entry in sorted(layout["files"].items(), key=lambda item: "link" in item[1]):
        if os.path.lexists(path):
            remove(path)
        if "text" in entry:
            with open(path, "wb") as handle:
                handle.write(entry["text"].encode("utf-8", "surrogateescape"))
            os.chmod(path, entry["mode"])
        elif "link" in entry:
            os.symlink(entry["link"], path)
        else:
            os.mkdir(path)
    if layout["unlisted"]:
        os.chmod(layout["unlisted"], 0o700)


def model_answers() -> dict:
    """As check and apply ask: the files read below /, parsed for the keys asked about."""
    boot = BootModel(read_conf_files(System("/")), keys=KEYS)
    return {
        loader: {key: _answer(boot, key, loader) for key in KEYS} for loader in (PROCPS, SYSTEMD)
    }


def _answer(boot: BootModel, key: str, loader: str) -> list:
    answer = boot.answer(key, loader)
    return [answer.value, answer.source, answer.unknown]


def in_child(work, *, uid: int | None = None, netns: bool = False) -> dict:
    """work() in a forked child (as `uid`, or in a new network namespace); its JSON result."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            if netns and ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            payload = {"result": work()}
        except BaseException as err:
            payload = {"error": repr(err)}
        try:
            os.write(write_end, json.dumps(payload).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    payload = json.loads(data)
    if "error" in payload:
        raise RuntimeError(payload["error"])
    return payload["result"]


def read_keys() -> dict:
    values = {}
    for key in KEYS:
        with open("/proc/sys/" + key_path(key)) as handle:
            values[key] = " ".join(handle.read().split())
    return values


def real_values(loader: str) -> dict:
    def work() -> dict:
        done = subprocess.run(LOADER_ARGV[loader], capture_output=True, text=True, timeout=60)
        return {"code": done.returncode, "stderr": done.stderr[-2000:], "values": read_keys()}

    return in_child(work, netns=True)


def glob_matches_in_fresh_netns() -> dict:
    """Every key below net/ipv4 of a fresh namespace, to check the globs touch nothing else."""

    def work() -> list:
        found = []
        for top, _, names in os.walk("/proc/sys/net/ipv4"):
            found += [os.path.relpath(os.path.join(top, n), "/proc/sys") for n in names]
        return found

    return {"paths": in_child(work, netns=True)}


# --- comparing ------------------------------------------------------------------------------------

# The only answers the model may leave open when it can read every file: a value written in part
# over whatever boot had, or one the kernel may refuse for a reason tcptune does not know.
ABSTAIN = (
    "sets 1 of the",
    "sets 2 of the",
    "sets part of the range",
    "may refuse",
    "refuses a start below",
    "does not model",
)


def compare(layout: dict, baseline: dict) -> tuple[list, int, dict]:
    model = model_answers()
    nobody = in_child(model_answers, uid=65534)
    real = {loader: real_values(loader) for loader in (PROCPS, SYSTEMD)}
    problems = []
    abstained = 0
    unreadable = [p for p, e in layout["files"].items() if e.get("mode") == 0o600]
    blind = [layout["unlisted"]] if layout["unlisted"] else []
    for loader in (PROCPS, SYSTEMD):
        for key in KEYS:
            value, source, unknown = model[loader][key]
            seen = real[loader]["values"][key]
            expected = baseline[key] if value is None and not unknown else value
            if unknown:
                abstained += 1
                if not any(reason in unknown for reason in ABSTAIN):
                    problems.append([loader, key, "root model: unknown", unknown, seen])
            elif expected != seen:
                problems.append([loader, key, f"model {value!r} from {source}", "real", seen])
            n_value, n_source, n_unknown = nobody[loader][key]
            if n_unknown:
                named = [p for p in unreadable + blind if p in n_unknown]
                if not named and n_unknown != unknown:
                    problems.append(
                        [loader, key, "uid 65534: unknown", n_unknown, "names no unreadable file"]
                    )
            elif [n_value, n_source] != [value, source]:
                problems.append(
                    [loader, key, f"uid 65534: {n_value!r} from {n_source}", "root", value]
                )
    differ = sum(real[PROCPS]["values"][k] != real[SYSTEMD]["values"][k] for k in KEYS)
    return problems, abstained, {"loaders_differ_on": differ, "real": real}


def features(layout: dict) -> dict:
    texts = [e["text"] for e in layout["files"].values() if "text" in e]
    links = [e["link"] for e in layout["files"].values() if "link" in e]
    return {
        "glob": any(p.split("=")[0].strip() in t for t in texts for p in GLOBS),
        "exclusion": any("\n-net" in "\n" + t or "\n-/" in "\n" + t for t in texts),
        "cr": any("\r" in t for t in texts),
        "form feed": any("\f" in t for t in texts),
        "nul": any("\0" in t for t in texts),
        "u+2028": any("\u2028" in t for t in texts),
        "hex or octal": any(" = 0" in t for t in texts),
        "dev/null link": any(link.endswith("dev/null") for link in links),
        "relative link": any(not link.startswith("/") for link in links),
        "dangling link": any("nonexistent" in link or link == "missing.conf" for link in links),
        "directory": any("dir" in e for e in layout["files"].values()),
        "sysctl.conf": "/etc/sysctl.conf" in layout["files"],
        "unreadable file": any(e.get("mode") == 0o600 for e in layout["files"].values()),
        "unlisted directory": bool(layout["unlisted"]),
        "hidden name": any("/." in p for p in layout["files"]),
        "1 MiB line": any(len(t) >= 1024 * 1024 for t in texts),
        "tcp_tw_recycle": any(RECYCLE in t for t in texts),
    }


def main() -> dict:
    seed, count = int(sys.argv[1]), int(sys.argv[2])
    only = int(sys.argv[3]) if len(sys.argv) > 3 else None
    directories = isolate()
    started = time.monotonic()
    present = set(glob_matches_in_fresh_netns()["paths"])
    for key in KEYS:
        assert key_path(key) in present, key
    from tcptune.sysctld import BootModel as Model  # the globs' reach, by the model's matcher

    for pattern, matched in GLOBS.items():
        reach = []
        for path in sorted(present):
            dotted = path.replace("/", ".")
            files = [_conf(f"{pattern} = 1")]
            if (
                Model(files).answer(dotted, SYSTEMD).value
                or Model(files).answer(dotted, PROCPS).value
            ):
                reach.append(dotted)
        assert set(reach) <= set(matched), (pattern, reach)
    baseline = real_values_for_nothing()
    results = {"layouts": 0, "disagreements": [], "abstained": 0, "compared": 0}
    covered: dict[str, int] = {}
    differ = 0
    indexes = [only] if only is not None else range(count)
    for index in indexes:
        layout = generate(seed, index, directories)
        clear(directories)
        write(layout)
        problems, abstained, extra = compare(layout, baseline)
        results["layouts"] += 1
        results["abstained"] += abstained
        results["compared"] += 2 * len(KEYS)
        differ += bool(extra["loaders_differ_on"])
        for name, present_ in features(layout).items():
            covered[name] = covered.get(name, 0) + present_
        if problems:
            results["disagreements"].append(
                {
                    "index": index,
                    "problems": problems,
                    "layout": shown(layout),
                    "loaders": extra["real"],
                }
            )
            if len(results["disagreements"]) >= 5:
                break
    clear(directories)
    results.update(
        {
            "seed": seed,
            "coverage": covered,
            "layouts_where_the_loaders_differ": differ,
            "seconds": round(time.monotonic() - started, 1),
            "systemd_sysctl": SYSTEMD_SYSCTL,
        }
    )
    return results


def shown(layout: dict) -> dict:
    """The layout for a report: a 1 MiB line as its length."""
    files = {}
    for path, entry in layout["files"].items():
        text = entry.get("text")
        if text is not None and len(text) > 4000:
            entry = {**entry, "text": text.replace("#" * (1024 * 1024 - 1), "<'#' x 1048575>")}
        files[path] = entry
    return {**layout, "files": files}


def _conf(text: str):
    from tcptune.model import ConfFile

    return ConfFile(directory="etc/sysctl.d", name="g.conf", path="/etc/sysctl.d/g.conf", text=text)


def real_values_for_nothing() -> dict:
    """The keys in a fresh network namespace no loader has touched."""
    return in_child(read_keys, netns=True)


def table(layouts: list[dict[str, str]]) -> dict:
    """Each hand-written layout ({path: text}) through the real loaders."""
    directories = isolate()
    results = []
    for files in layouts:
        clear(directories)
        write(
            {"files": {p: {"text": t, "mode": 0o644} for p, t in files.items()}, "unlisted": None}
        )
        results.append({loader: real_values(loader)["values"] for loader in (PROCPS, SYSTEMD)})
    clear(directories)
    return {"untouched": real_values_for_nothing(), "results": results}


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        print(json.dumps(table(json.loads(Path(sys.argv[2]).read_text()))))
    else:
        print(json.dumps(main()))
