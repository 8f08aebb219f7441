"""Wall time of `tcptune check --json` against a bare interpreter start, same interpreter.

Target: median(tcptune check --json) / median(python -c pass) <= 6. Reads this machine's /proc
only; changes nothing. Runs are interleaved so that background load hits both sides alike.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 31
TARGET = 6.0


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def main() -> int:
    python = sys.executable
    script = Path(python).with_name("tcptune")
    check = (
        [str(script), "check", "--json"]
        if script.exists()
        else [python, "-m", "tcptune", "check", "--json"]
    )
    bare = [python, "-c", "pass"]
    for argv in (bare, check):  # warm the page cache and the bytecode cache
        timed(argv)
    bare_times, check_times = [], []
    for _ in range(RUNS):
        bare_times.append(timed(bare))
        check_times.append(timed(check))
    bare_ms = statistics.median(bare_times) * 1000
    check_ms = statistics.median(check_times) * 1000
    ratio = check_ms / bare_ms
    print(
        f"machine: {platform.node()}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    print(f"python -c pass          median {bare_ms:7.1f} ms over {RUNS} runs")
    print(f"tcptune check --json    median {check_ms:7.1f} ms over {RUNS} runs")
    verdict = "ok" if ratio <= TARGET else "OVER TARGET"
    print(f"ratio                   {ratio:7.2f}  (target <= {TARGET}: {verdict})")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
