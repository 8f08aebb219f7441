"""The documentation against the program.

Every command has an example in README.md or docs/*.md; every `tcptune ...` example in their
fenced code blocks runs as shown, in document order, against a fake machine below a temporary
root (apply and revert included: they write only below the root); links between the pages
resolve; and the README's first lines give the two setup commands.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import modern_machine

from tcptune.cli.main import command_paths

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]

BACKUP_ID = re.compile(r"\d{8}T\d{12}Z(-\d+)?")
SHELL_PUNCTUATION = set("();<>|&")


# --- the examples -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Example:
    doc: str
    line: int
    text: str
    argv: tuple[str, ...]
    shows_error: bool  # the documented output is an error line: the example exits 2

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def fenced_blocks(text: str) -> list[tuple[int, str, list[str]]]:
    """(line number of the first line inside, info string, lines) of every ``` block."""
    blocks = []
    lines = text.splitlines()
    start = info = None
    for number, line in enumerate(lines, start=1):
        if line.startswith("```"):
            if start is None:
                start, info = number + 1, line[3:].strip()
            else:
                blocks.append((start, info, lines[start - 1 : number - 1]))
                start = None
    assert start is None, f"unclosed ``` block from line {start}"
    return blocks


def command_in(line: str) -> str | None:
    """The tcptune command a line of a code block runs, without prompt, sudo or `eval "$(...)"`
    around it; None when the line runs no tcptune."""
    line = line.strip()
    inner = re.search(r"\$\((tcptune\b[^)]*)\)", line)
    if inner:
        return inner[1]
    line = re.sub(r"^(\$ |run: )", "", line)
    line = re.sub(r"^sudo ", "", line)
    return line if re.match(r"tcptune(\s|$)", line) else None


def arguments(command: str) -> tuple[str, ...]:
    """The arguments after `tcptune`, up to a pipe, redirection, `;`, `&&` or comment: only the
    tcptune part of a shell line runs."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = []
    for token in lexer:
        if set(token) <= SHELL_PUNCTUATION:
            break
        tokens.append(token)
    assert tokens[0] == "tcptune", command
    return tuple(tokens[1:])


def examples(doc: Path) -> list[Example]:
    """The tcptune examples of one page. In a block with `$ ` prompts only the prompt lines are
    commands (the rest is their output); in a block without, every line that runs tcptune is."""
    found = []
    for start, _info, lines in fenced_blocks(doc.read_text()):
        prompted = any(line.startswith("$ ") for line in lines)
        for offset, line in enumerate(lines):
            if prompted and not line.startswith("$ "):
                continue
            command = command_in(line)
            if command is None:
                continue
            following = lines[offset + 1] if offset + 1 < len(lines) else ""
            found.append(
                Example(
                    doc=doc.relative_to(ROOT).as_posix(),
                    line=start + offset,
                    text=line.strip(),
                    argv=arguments(command),
                    shows_error=prompted
                    and not following.startswith("$ ")
                    and re.match(r"(tcptune: )?error: ", following) is not None,
                )
            )
    return found


def documented_files() -> dict[str, str]:
    """TOML blocks that open with `# PATH.toml`: files the examples refer to."""
    files = {}
    for doc in DOCS:
        for _start, info, lines in fenced_blocks(doc.read_text()):
            head = re.fullmatch(r"#\s+(\S+\.toml)", lines[0].strip()) if lines else None
            if info == "toml" and head:
                files[head[1]] = "\n".join(lines) + "\n"
    return files


def command_words(argv: tuple[str, ...]) -> list[str]:
    """The positional words of an example (`--root DIR` and other options left out)."""
    words, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == "--root":
            skip = True
        elif not token.startswith("-"):
            words.append(token)
    return words


ALL_EXAMPLES = [example for doc in DOCS for example in examples(doc)]


# --- running them -------------------------------------------------------------------------------

PROC_TCP = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode\n"
    "   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
    "1001 1 0000000000000000 100 0 0 10 0\n"
    "   1: 0100007F:9C40 0100007F:0050 06 00000000:00000000 00:00000000 00000000     0        0 "
    "0 1 0000000000000000 100 0 0 10 0\n"
)
PROC_TCP6 = PROC_TCP.splitlines(keepends=True)[0]


def documented_machine(base: Path) -> tuple[Path, Path]:
    """A fake machine (the root) and a working directory holding the documented files."""
    root, work = base / "root", base / "work"
    modern_machine(root)
    (root / "proc/net/tcp").write_text(PROC_TCP)
    (root / "proc/net/tcp6").write_text(PROC_TCP6)
    work.mkdir()
    (root / "var/lib/prometheus/node-exporter").mkdir(parents=True)  # the textfile directory
    for name, text in documented_files().items():
        path = root / name.lstrip("/") if name.startswith("/") else work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        (work / Path(name).name).write_text(text)
    return root, work


def concrete(argv: tuple[str, ...], root: Path, work: Path) -> list[str]:
    """The example's arguments for the fake machine: `--root DIR` and paths under /etc/ and /var/
    point below the root, a glob is expanded there, a backup id names the newest backup made."""
    backups = sorted((root / "var/lib/tcptune/backups").glob("*.json"))
    out: list[str] = []
    for before, token in zip(("", *argv), argv, strict=False):
        if before == "--root":
            out.append(str(root))
        elif BACKUP_ID.fullmatch(token) and backups:
            out.append(backups[-1].stem)
        elif "*" in token:
            base = root if token.startswith("/") else work
            matches = sorted(str(path) for path in base.glob(token.lstrip("/")))
            assert matches, f"{token} matches nothing below the fake machine"
            out += matches
        elif token.startswith(("/etc/", "/var/")):
            out.append(str(root / token.lstrip("/")))
        else:
            out.append(token)
    return out


# Examples that look into network namespaces run against the running kernel (a fake tree has
# none): `--pid N` and `/proc/N/ns/net` name a process of the test's own in a namespace of its
# own, made by `unshare -n`; --all-netns reads every namespace of the machine, and changes none.
NAMESPACE_OPTIONS = {"--pid", "--netns", "--all-netns"}


def looks_into_namespaces(example: Example) -> bool:
    return bool(NAMESPACE_OPTIONS & set(example.argv))


def in_namespace(argv: list[str], pid: int) -> list[str]:
    out = []
    for before, token in zip(("", *argv), argv, strict=False):
        if before == "--pid":
            out.append(str(pid))
        else:
            out.append(re.sub(r"^/proc/\d+/ns/net$", f"/proc/{pid}/ns/net", token))
    return out


def run_example(
    example: Example, root: Path, work: Path, target: int | None = None
) -> tuple[int, str]:
    """Run it as `python -m tcptune ...`; --watch runs until its first screen, then Ctrl-C."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TCPTUNE_")}
    env.update(TCPTUNE_ROOT=str(root), HOME=str(work))
    argv = [sys.executable, "-m", "tcptune", *concrete(example.argv, root, work)]
    if looks_into_namespaces(example):
        assert target is not None
        env.pop("TCPTUNE_ROOT")
        argv = in_namespace(argv, target)
    if "--watch" not in example.argv:
        done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=120)
        return done.returncode, done.stderr
    with subprocess.Popen(
        argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if select.select([process.stdout], [], [], 0.5)[0]:
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        return process.returncode, err.decode()


def problem_with(example: Example, code: int, stderr: str) -> str | None:
    if "Traceback" in stderr or code == 4:
        return f"{example}\n  exit {code}, a crash:\n{stderr}"
    if example.shows_error and code != 2:
        return f"{example}\n  the documented error should exit 2, got {code}:\n{stderr}"
    if not example.shows_error and code == 2:
        return f"{example}\n  exit 2 (bad input) where the page shows none:\n{stderr}"
    return None


# --- the tests ----------------------------------------------------------------------------------


def test_the_pages_have_examples() -> None:
    assert len([e for e in ALL_EXAMPLES if e.doc == "README.md"]) >= 10
    assert len([e for e in ALL_EXAMPLES if e.doc == "docs/commands.md"]) >= 20


@pytest.mark.parametrize("command", command_paths())
def test_every_command_has_an_example(command: str) -> None:
    words = command.split()
    assert any(command_words(e.argv)[: len(words)] == words for e in ALL_EXAMPLES), command


@pytest.mark.parametrize(
    "doc",
    [doc for doc in DOCS if examples(doc)],
    ids=lambda doc: doc.relative_to(ROOT).as_posix(),
)
def test_every_example_runs_as_shown(doc: Path, tmp_path: Path) -> None:
    root, work = documented_machine(tmp_path)
    problems = []
    target = None
    if any(looks_into_namespaces(e) for e in examples(doc)):
        target = subprocess.Popen(["unshare", "-n", "sleep", "600"])
        for _ in range(500):  # bounded: unshare takes milliseconds
            if os.readlink(f"/proc/{target.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.01)
    try:
        for example in examples(doc):
            code, stderr = run_example(example, root, work, target.pid if target else None)
            problems.append(problem_with(example, code, stderr))
    finally:
        if target is not None:
            target.kill()
            target.wait(timeout=30)
    found = [problem for problem in problems if problem]
    assert not found, "\n\n".join(found)


def test_examples_are_read_as_a_shell_would() -> None:
    cases = {
        "$ tcptune check --json | jq '.findings'": ("check", "--json"),
        'eval "$(tcptune completion zsh)"   # zsh': ("completion", "zsh"),
        "tcptune completion fish > ~/.config/fish/completions/tcptune.fish": ("completion", "fish"),
        "$ sudo tcptune revert   # undo": ("revert",),
        "run: tcptune check server-profile --json > out.json": (
            "check",
            "server-profile",
            "--json",
        ),
    }
    for line, argv in cases.items():
        assert arguments(command_in(line)) == argv, line
    assert command_in("pipx install .") is None
    (shown,) = [e for e in examples(README) if e.argv == ("explain", "tcp_tw_reues")]
    assert shown.shows_error


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.relative_to(ROOT).as_posix())
def test_links_between_the_pages_resolve(doc: Path) -> None:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        page = (doc.parent / path).resolve() if path else doc
        assert page.exists(), f"{doc.name}: link to missing {target}"
        if anchor:
            assert anchor in anchors(page), f"{doc.name}: no heading for {target}"


def test_readme_starts_with_the_two_commands() -> None:
    head = "\n".join(README.read_text().splitlines()[:10])
    assert "make run" in head and "make test" in head
