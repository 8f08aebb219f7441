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
import dataclasses
import os
import platform
import statistics
import subprocess
import sys
import tempfile
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


RECORDS_APP = """\
import json
from typing import Annotated

import typer

import check_path_records  # noqa: F401  (defines the classes; compiled once, like tcptune)

app = typer.Typer()


@app.command()
def check(json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    print(json.dumps({"command": "check", "json": json_output}))


if __name__ == "__main__":
    app()
"""


def check_path_records(python: str, env: dict[str, str]) -> list[str]:
    """The tcptune modules `check --json` imports, from a child that imports them as it does."""
    code = (
        "import sys, tcptune.cli.main, tcptune.cli.check\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith('tcptune')))"
    )
    done = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    return done.stdout.split()


def records_module(modules: list[str]) -> tuple[str, int]:
    """A module holding a copy of each dataclass the modules define, and their number."""
    import importlib

    classes = []
    for name in modules:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if not (isinstance(value, type) and dataclasses.is_dataclass(value)):
                continue
            if value.__module__ != name:
                continue
            params = value.__dataclass_params__  # type: ignore[attr-defined]
            args = ", ".join(
                f"{arg}={getattr(params, arg)}" for arg in ("init", "repr", "eq", "frozen")
            )
            slots = "__slots__" in vars(value)
            kw_only = all(f.kw_only for f in dataclasses.fields(value))
            fields = [
                f"    {f.name}: object"
                + (" = None" if f.default is not dataclasses.MISSING else "")
                + (
                    " = field(default_factory=list)"
                    if f.default_factory is not dataclasses.MISSING
                    else ""
                )
                for f in dataclasses.fields(value)
            ]
            classes.append(
                f"@dataclass({args}, kw_only={kw_only}, slots={slots})\n"
                f"class {value.__name__}:\n" + "\n".join(fields or ["    pass"])
            )
    header = "from dataclasses import dataclass, field\n\n\n"
    return header + "\n\n\n".join(classes) + "\n", len(classes)


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
    source, record_count = records_module(check_path_records(python, env))
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "check_path_records.py").write_text(source)
        records_script = Path(scratch) / "minimal_typer_app_with_records.py"
        records_script.write_text(RECORDS_APP)
        sides = {
            "python -c pass": [python, "-c", "pass"],
            "minimal Typer app": [python, str(HERE / "minimal_typer_app.py"), "--json"],
            "minimal Typer app + records": [python, str(records_script), "--json"],
            "tcptune check --json": check,
        }
        return measure(sides, env, typer_version, record_count)


def measure(
    sides: dict[str, list[str]], env: dict[str, str], typer_version: str, record_count: int
) -> int:
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
        print(f"{name:<28}  median {medians[name]:7.1f} ms over {RUNS} runs")
    ratio = medians["tcptune check --json"] / medians["minimal Typer app"]
    floor_ratio = medians["tcptune check --json"] / medians["python -c pass"]
    verdict = "ok" if ratio <= TARGET else "OVER TARGET"
    print(f"ratio to the minimal Typer app  {ratio:5.2f}  (target <= {TARGET}: {verdict})")
    print(f"ratio to python -c pass         {floor_ratio:5.2f}  (for information)")
    records_ratio = medians["tcptune check --json"] / medians["minimal Typer app + records"]
    record_cost = medians["minimal Typer app + records"] - medians["minimal Typer app"]
    print(
        f"ratio to the app + records      {records_ratio:5.2f}  (for information: the "
        f"{record_count} dataclasses on the check path cost {record_cost:.1f} ms here)"
    )
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
