"""Per-module mutation score from mutmut's results in mutants/ (run by `make mutation`).

killed: a test failed (a timeout counts as killed); survived: every selected test passed, or no
test ran the mutated function; equivalent: listed in docs/mutation-equivalents.md (cannot change
behaviour), left out of the score. Mutants not checked yet are counted apart.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KILLED = {1, 3, 24, -24, 36, 152, 255}
SURVIVED = {0, 5, 33}


def equivalents() -> set[str]:
    text = (ROOT / "docs" / "mutation-equivalents.md").read_text()
    return set(re.findall(r"`(tcptune\.[^`\s]+__mutmut_\d+)`", text))


def main() -> int:
    metas = sorted((ROOT / "mutants" / "tcptune").glob("*.py.meta"))
    if not metas:
        print("no results: run `make mutation` first", file=sys.stderr)
        return 1
    same = equivalents()
    rows, total = [], Counter()
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        count = Counter()
        for name, code in codes.items():
            if code is None:
                count["unchecked"] += 1
            elif name in same:
                count["equivalent"] += 1
            elif code in KILLED:
                count["killed"] += 1
            elif code in SURVIVED:
                count["survived"] += 1
            else:
                count["other"] += 1
        total.update(count)
        rows.append((meta.name.removesuffix(".py.meta"), count))
    print(
        f"{'module':<12} {'killed':>7} {'survived':>8} {'equiv':>6} {'unchecked':>9} {'score':>7}"
    )
    for name, count in [*rows, ("all", total)]:
        scored = count["killed"] + count["survived"] + count["other"]
        score = f"{100 * count['killed'] / scored:.1f}%" if scored else "-"
        print(
            f"{name:<12} {count['killed']:>7} {count['survived']:>8} {count['equivalent']:>6}"
            f" {count['unchecked']:>9} {score:>7}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
