"""Start-up cost of `tcptune check --json` on top of Typer.

Target: median(tcptune check --json) / median(minimal Typer app) <= 1.15, where the minimal app
(bench/minimal_typer_app.py) is one Typer command with a --json option that prints one JSON line,
run by this interpreter with this typer. The ratio to a bare `python -c pass` is printed too, for
information. Runs are interleaved (the order rotates every round) so that background load hits
every side alike; each figure is the median of 31 runs, with .pyc files present: the children run
without PYTHONDONTWRITEBYTECODE, the package is compiled first, and warm-up runs fill the page
cache and any bytecode cache still missing. Reads this machine's /proc only; changes nothing.
"""

from __future__ import annotations

import compileall
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

RUNS = 31
WARM_UP = 3
TARGET = 1.15
HERE = Path(__file__).resolve().parent


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=60
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):  # check exits 1 on error-level findings
        raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def main() -> int:
    try:
        typer_version = metadata.version("typer")
    except metadata.PackageNotFoundError:
        print(f"typer is not installed for {sys.executable}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # it would make every child compile from source
    env.pop("TCPTUNE_ROOT", None)

    import tcptune

    compileall.compile_dir(Path(tcptune.__file__).parent, quiet=1)

    python = sys.executable
    script = Path(python).with_name("tcptune")
    check = (
        [str(script), "check", "--json"]
        if script.exists()
        else [python, "-m", "tcptune", "check", "--json"]
    )
    sides = {
        "python -c pass": [python, "-c", "pass"],
        "minimal Typer app": [python, str(HERE / "minimal_typer_app.py"), "--json"],
        "tcptune check --json": check,
    }
    names = list(sides)
    for _ in range(WARM_UP):
        for name in names:
            timed(sides[name], env)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(RUNS):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(sides[name], env))
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}

    print(
        f"machine: {platform.node()}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}, typer {typer_version}"
    )
    for name in names:
        print(f"{name:<22}  median {medians[name]:7.1f} ms over {RUNS} runs")
    ratio = medians["tcptune check --json"] / medians["minimal Typer app"]
    floor_ratio = medians["tcptune check --json"] / medians["python -c pass"]
    verdict = "ok" if ratio <= TARGET else "OVER TARGET"
    print(f"ratio to the minimal Typer app  {ratio:5.2f}  (target <= {TARGET}: {verdict})")
    print(f"ratio to python -c pass         {floor_ratio:5.2f}  (for information)")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
