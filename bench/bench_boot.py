"""`tcptune check PROFILE --json` with 40 sysctl.d files of 1 MiB each: what boot sets is
computed from one reading of every file per run, not one per key and loader.

Target: median under 2 s. The tree is built below a temporary --root (a fake /proc/sys and the
sysctl.d files: bulk per-interface lines, comments, now and then a watched key or a glob), and
the installed `tcptune` runs against it as a user would; nothing of this machine is read or
changed. Each figure is the median of 7 runs after one warm-up run.
"""

from __future__ import annotations

import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 7
TARGET_SECONDS = 2.0
FILES = 40
FILE_BYTES = 1024 * 1024


def build(root: Path) -> None:
    from tcptune import keys

    version = (6, 18, 44)
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text("6.18.44-generic\n")
    for name, spec in keys.KEYS.items():
        if not spec.exists_on(version):
            continue
        value = spec.default_for(version) or {
            "net.ipv4.tcp_rmem": "4096 131072 33554432",
            "net.ipv4.tcp_wmem": "4096 16384 4194304",
        }.get(name, "1024")
        path = root / "proc/sys" / name.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    rng = random.Random(12)
    watched = sorted(keys.KEYS)
    for index in range(FILES):
        lines, size = [], 0
        while size < FILE_BYTES:
            pick = rng.random()
            if pick < 0.3:
                line = f"# tuning note {rng.randrange(10**6)}\n"
            elif pick < 0.95:
                line = f"net.ipv4.conf.eth{rng.randrange(4096)}.rp_filter = {rng.randrange(3)}\n"
            elif pick < 0.99:
                line = f"net.ipv6.conf.eth{rng.randrange(4096)}.accept_ra = 0\n"
            elif pick < 0.995:
                line = f"net.ipv4.conf.eth{rng.randrange(64)}.*_filter = 2\n"
            else:
                line = f"{rng.choice(watched)} = {rng.randrange(1, 100)}\n"
            lines.append(line)
            size += len(line)
        directory = root / ("etc/sysctl.d" if index % 2 else "usr/lib/sysctl.d")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{index:02d}-bulk.conf").write_text("".join(lines))


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=600
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1, 3):  # drift and unreadable keys are answers here
        raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def main() -> int:
    env = {k: v for k, v in os.environ.items() if k not in ("TCPTUNE_ROOT",)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    script = Path(sys.executable).with_name("tcptune")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "tcptune"]
    top = Path(tempfile.mkdtemp(prefix="tcptune-bench-boot-"))
    try:
        root = top / "root"
        build(root)
        argv = [*command, "--root", str(root), "check", "server-profile", "--json"]
        timed(argv, env)
        times = [timed(argv, env) for _ in range(RUNS)]
    finally:
        shutil.rmtree(top)
    median = statistics.median(times)
    verdict = "ok" if median < TARGET_SECONDS else "OVER TARGET"
    print(
        f"machine: {platform.node()}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    print(
        f"check server-profile --json, {FILES} sysctl.d files of 1 MiB: median "
        f"{median:.2f} s over {RUNS} runs (target < {TARGET_SECONDS:.0f} s: {verdict})"
    )
    return 0 if median < TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
