"""tcptune's boot answers against the real loaders: generated sysctl.d layouts (several
directories, masks of every kind, globs and explicit keys in both orders, '-' prefixes and
'-key' exclusions, duplicate keys, /etc/sysctl.conf, odd blanks and line ends, unreadable files
and directories), each answered by the model and by `sysctl --system` and systemd-sysctl run in a
fresh network namespace (tests/loader_layouts.py, inside `unshare -n -m`). Zero disagreements.

The seed changes every run and is printed with any failing layout; replay one with
TCPTUNE_LAYOUT_SEED=SEED TCPTUNE_LAYOUT_INDEX=INDEX, or run more with TCPTUNE_LAYOUTS=N."""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from pathlib import Path

import pytest
from conftest import run_in_namespace

pytestmark = pytest.mark.netns

SCRIPT = Path(__file__).resolve().parent / "loader_layouts.py"
LAYOUTS = int(os.environ.get("TCPTUNE_LAYOUTS", "300"))


def test_the_model_answers_as_the_real_loaders_do(netns) -> None:
    if not shutil.which("sysctl"):
        pytest.fail("procps sysctl is needed")
    seed = int(os.environ.get("TCPTUNE_LAYOUT_SEED") or random.SystemRandom().randrange(10**9))
    argv = [str(SCRIPT), str(seed), str(LAYOUTS)]
    if os.environ.get("TCPTUNE_LAYOUT_INDEX"):
        argv.append(os.environ["TCPTUNE_LAYOUT_INDEX"])
    result = run_in_namespace(["-n", "-m"], argv, timeout=1800)
    replay = f"replay: TCPTUNE_LAYOUT_SEED={seed} TCPTUNE_LAYOUT_INDEX={{index}} pytest {__file__}"
    for failure in result["disagreements"]:
        print(replay.format(index=failure["index"]), file=sys.stderr)
        print(json.dumps(failure, indent=1), file=sys.stderr)
    assert result["disagreements"] == [], (
        f"seed {seed}: {len(result['disagreements'])} layouts disagree; first: "
        + replay.format(index=result["disagreements"][0]["index"])
        + "\n"
        + json.dumps(result["disagreements"][0], indent=1)[:6000]
    )
    assert result["systemd_sysctl"], "systemd-sysctl is needed"
    if "TCPTUNE_LAYOUT_INDEX" in os.environ:
        return
    assert result["layouts"] >= 200
    # The model abstains only on values written in part or refused for reasons it cannot know.
    assert result["abstained"] < result["compared"] * 0.1, result
    # The layouts exercise every rule, and often enough the two loaders disagree with each
    # other, which a model that ignored their differences could not match.
    missing = [name for name, count in result["coverage"].items() if not count]
    assert not missing, (missing, result["coverage"])
    assert result["layouts_where_the_loaders_differ"] >= LAYOUTS // 10, result
