"""The floor for `tcptune check --json`: a one-command Typer app that prints one JSON line.

bench/bench_check.py runs it with the interpreter and the typer that run tcptune, so the ratio
between the two is tcptune's own start-up cost on top of Typer's.
"""

import json
from typing import Annotated

import typer

app = typer.Typer()


@app.command()
def check(json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    print(json.dumps({"command": "check", "json": json_output}))


if __name__ == "__main__":
    app()
