"""Shell completion: the answers of the Typer command tree, and the scripts in the real bash, zsh
and fish.

bash and zsh run interactively on a pseudo-terminal: the test types a command line and a
completion key, then a key bound to a function that writes the line being edited (bash, after
readline's insert-completions) or the matches zsh's compadd was given to a file. fish answers
`complete -C LINE`. Each shell runs in its own temporary HOME and working directory, with
TCPTUNE_ROOT pointing at a tree of profile files, some of them with hostile names.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer

from tcptune.cli import completion
from tcptune.cli.main import app
from tcptune.profiles import shipped_dir

PROGRAM = Path(sys.executable).parent / "tcptune"
SESSION_TIMEOUT = 60  # seconds for one shell session, whatever it is asked
SHELLS = ("bash", "zsh", "fish")

# Profile files whose names must never be run, globbed or offered: only names matching
# [a-z0-9][a-z0-9_-]* (at most 64 characters) are profile names.
HOSTILE_NAMES = [
    "$(touch PWNED).toml",
    "`touch PWNED`.toml",
    "a;touch PWNED.toml",
    "b|touch PWNED.toml",
    "c&&touch PWNED.toml",
    "*.toml",
    "?.toml",
    "{golden,x}.toml",
    "x y.toml",
    "quo'te.toml",
    'quo"te.toml',
    "back\\slash.toml",
    "new\nline.toml",
    "golden-box\n.toml",
    "tab\tname.toml",
    "esc\x1b[31m.toml",
    "$HOME.toml",
    "~root.toml",
    "-rf.toml",
    "UPPER.toml",
    "x" * 65 + ".toml",
]
LOCAL_NAMES = ["edge_2", "golden-box", "x" * 64]
OTHER_ROOT_NAMES = ["other-box"]
FORMATS = ["sysctl", "k8s", "docker", "ansible"]
SOURCES = ["auto", "netlink", "proc"]


def shipped_names() -> list[str]:
    return sorted(p.stem for p in shipped_dir().glob("*.toml"))


def all_names() -> list[str]:
    return sorted({*shipped_names(), *LOCAL_NAMES})


# --- the command tree, as Typer builds it ---------------------------------------------------------


def tree() -> typer.main.TyperGroup:
    return typer.main.get_command(app)


def visible_commands(group) -> list[str]:
    """The group's commands in the order it lists them (its help's order)."""
    ctx = typer.Context(group, info_name=group.name)
    return [name for name in group.list_commands(ctx) if not group.commands[name].hidden]


def long_options(command) -> list[str]:
    ctx = typer.Context(command, info_name=command.name)
    return sorted(
        name
        for param in command.get_params(ctx)
        if isinstance(param, typer.core.TyperOption) and not param.hidden
        for name in [*param.opts, *param.secondary_opts]
        if name.startswith("--")
    )


def command_paths() -> list[tuple[str, object]]:
    """(path after `tcptune`, command) for every command and sub-command."""
    paths = []
    for name, command in tree().commands.items():
        paths.append((name, command))
        for sub, leaf in getattr(command, "commands", {}).items():
            paths.append((f"{name} {sub}", leaf))
    return paths


# --- the answering side, in process ---------------------------------------------------------------


def answer(line: str, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """tcptune's answer to a completion request for `line`, as (kind, value, help) rows."""
    monkeypatch.setenv(completion.ARGS_VAR, line)
    comp = completion.BashAnswer(tree(), {}, "tcptune", completion.COMPLETE_VAR)
    text = comp.complete()
    return [tuple(row.split("\t")) for row in text.splitlines()]


def values(line: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return [value for kind, value, _ in answer(line, monkeypatch) if kind == "plain"]


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    root = tmp_path / "root"
    other = tmp_path / "other"
    for base, names in ((root, LOCAL_NAMES), (other, OTHER_ROOT_NAMES)):
        profiles = base / "etc/tcptune/profiles"
        profiles.mkdir(parents=True)
        for name in names:
            (profiles / f"{name}.toml").write_text('description = "x"\n')
    hostile = root / "etc/tcptune/profiles"
    for name in HOSTILE_NAMES:
        (hostile / name).write_text('description = "x"\n')
    (hostile / "a-directory.toml").mkdir()
    (hostile / "no-suffix").write_text("")
    monkeypatch.setenv("TCPTUNE_ROOT", str(root))
    return {"root": root, "other": other}


def test_every_command_sub_command_and_option_is_offered(
    roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    top = tree()
    assert values("tcptune ", monkeypatch) == visible_commands(top)
    assert set(visible_commands(top)) >= {
        "check",
        "explain",
        "profiles",
        "apply",
        "revert",
        "backups",
        "sockets",
        "export",
        "completion",
    }
    for path, command in command_paths():
        if hasattr(command, "commands"):
            assert values(f"tcptune {path} ", monkeypatch) == visible_commands(command), path
        offered = values(f"tcptune {path} --", monkeypatch)
        assert sorted(offered) == long_options(command), path
        assert "--help" in offered, path
    assert values("tcptune --", monkeypatch) == [
        "--root",
        "--netns",
        "--pid",
        "--version",
        "--help",
    ]


def test_commands_come_with_their_short_help(
    roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = {value: help_ for _, value, help_ in answer("tcptune ", monkeypatch)}
    assert rows["check"] == tree().commands["check"].get_short_help_str(80)
    assert all(rows.values())


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("tcptune export x --format ", FORMATS),
        ("tcptune export x --format=k", ["k8s"]),
        ("tcptune export --format d", ["docker"]),
        ("tcptune sockets --source ", SOURCES),
        ("tcptune sockets --source=n", ["netlink"]),
        ("tcptune completion ", ["bash", "zsh", "fish"]),
        ("tcptune profiles sh", ["show"]),
        ("tcptune --root /nowhere ch", ["check"]),
        ("tcptune --no-such-option ch", ["check"]),
        ("tcptune chek ", []),  # nothing is known after an unknown command
        ("tcptune profiles bogus ", []),
    ],
)
def test_choices_and_prefixes(
    line: str, expected: list[str], roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert values(line, monkeypatch) == expected


@pytest.mark.parametrize("command", ["check", "apply", "export", "profiles show"])
def test_profile_names_for_every_profile_argument(
    command: str, roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert values(f"tcptune {command} ", monkeypatch) == all_names()
    assert values(f"tcptune {command} gol", monkeypatch) == ["golden-box"]
    assert "server-profile" in values(f"tcptune {command} ", monkeypatch)


def test_profile_names_follow_root_on_the_line(
    roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    other = roots["other"]
    expected = sorted({*shipped_names(), *OTHER_ROOT_NAMES})
    assert values(f"tcptune --root {other} check ", monkeypatch) == expected
    assert values(f"tcptune check --root {other} ", monkeypatch) == expected
    assert values(f"tcptune --root={other} apply o", monkeypatch) == ["other-box"]
    assert values(f"tcptune profiles --root {other} show ", monkeypatch) == expected
    assert values("tcptune --root /nonexistent check ", monkeypatch) == shipped_names()


def test_paths_are_left_to_the_shell(
    roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for line in (
        "tcptune profiles validate ",
        "tcptune profiles capture x --output ",
        "tcptune check ./my",
        "tcptune --root ",
        "tcptune --root=/v",
    ):
        assert answer(line, monkeypatch) == [("file", "", "")], line
    assert answer("tcptune sockets --top ", monkeypatch) == []


def test_hostile_command_lines_are_data(
    roots: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for line in (
        "tcptune check $(touch PWNED) ",
        "tcptune check `touch PWNED` ",
        'tcptune --root "$(touch PWNED)" check ',
        "tcptune check 'unclosed",
        "tcptune export x --format $(touch PWNED)",
        "tcptune ; touch PWNED ",
    ):
        answer(line, monkeypatch)
    assert not list(tmp_path.rglob("PWNED"))


def test_unsafe_values_are_never_offered() -> None:
    comp = completion.BashAnswer(tree(), {}, "tcptune", completion.COMPLETE_VAR)
    item = completion.CompletionItem
    for value in ("$(touch x)", "`x`", "a b", "a;b", "*", "a\nb", "a\tb", "'", "", "~x"):
        assert comp.format_completion(item(value)) == "", value
    assert comp.format_completion(item("--root", help="a\tb\nc")) == "plain\t--root\ta b c"


def test_a_failure_offers_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("broken")

    monkeypatch.setattr(completion, "_resolve_context", broken)
    assert answer("tcptune ", monkeypatch) == []
    monkeypatch.setattr(completion, "_all_profile_names", broken)
    assert completion.profile_names(None, "") == []  # type: ignore[arg-type]


def test_profile_names_survive_unreadable_or_missing_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCPTUNE_ROOT", str(tmp_path / "missing"))
    assert completion.profile_names(None, "") == shipped_names()  # type: ignore[arg-type]
    not_a_dir = tmp_path / "root/etc/tcptune/profiles"
    not_a_dir.parent.mkdir(parents=True)
    not_a_dir.write_text("a file where the directory should be")
    monkeypatch.setenv("TCPTUNE_ROOT", str(tmp_path / "root"))
    starting_with_s = [n for n in shipped_names() if n.startswith("s")]
    assert completion.profile_names(None, "s") == starting_with_s  # type: ignore[arg-type]


def test_the_module_imports_no_domain_code() -> None:
    """Importing the completion module (as main.py does at every start) stays cheap."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, tcptune.cli.completion; "
            "print(sorted(m for m in sys.modules if m.startswith('tcptune.') "
            "and not m.startswith('tcptune.cli')))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- the installed program ------------------------------------------------------------------------


def run_program(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    if not PROGRAM.exists():
        pytest.fail(f"the console script {PROGRAM} is not installed (pip install -e .)")
    return subprocess.run(
        [str(PROGRAM), *argv], capture_output=True, text=True, timeout=60, env=env
    )


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_prints_the_script(shell: str) -> None:
    done = run_program("completion", shell)
    assert done.returncode == 0, done.stderr
    assert done.stdout == completion.script(shell)
    assert done.stderr == ""


@pytest.mark.parametrize("argv", [["completion", "tcsh"], ["completion"], ["completion", ""]])
def test_an_unknown_shell_is_a_one_line_usage_error(argv: list[str]) -> None:
    done = run_program(*argv)
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("tcptune: error: ")
    assert "'tcptune completion --help'" in line


@pytest.mark.parametrize("shell", SHELLS)
def test_no_script_evaluates_or_globs_what_it_reads(shell: str) -> None:
    text = completion.script(shell)
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"\beval\b", code)
    if shell == "bash":
        assert 'COMPREPLY+=("$value")' in code
        assert "$(" not in code  # no command substitution whose words could split or glob


def test_the_program_answers_a_shell(roots: dict[str, Path]) -> None:
    env = {
        **os.environ,
        completion.COMPLETE_VAR: "complete_bash",
        completion.ARGS_VAR: "tcptune export gol",
    }
    done = run_program(env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "plain\tgolden-box\t\n"


# --- the real shells ------------------------------------------------------------------------------


def need(shell: str) -> str:
    path = shutil.which(shell)
    if path:
        return path
    message = f"{shell} is needed for the completion tests (Debian package {shell})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class World:
    """A temporary HOME, working directory and profile tree; what the shells run in."""

    def __init__(self, tmp_path: Path, roots: dict[str, Path]) -> None:
        self.tmp = tmp_path
        self.root = roots["root"]
        self.other = roots["other"]
        self.home = tmp_path / "home"
        self.cwd = tmp_path / "cwd"
        self.home.mkdir()
        self.cwd.mkdir()
        for name in ("bait-1.toml", "bait-2.toml", "x y.txt"):
            (self.cwd / name).write_text("")
        (self.cwd / "subdir").mkdir()
        if not PROGRAM.exists():
            pytest.fail(f"the console script {PROGRAM} is not installed (pip install -e .)")
        self.env = {
            "PATH": f"{PROGRAM.parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "ZDOTDIR": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local/share"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "TERM": "xterm",
            "LANG": "C.UTF-8",
            "INPUTRC": "/dev/null",
            "TCPTUNE_ROOT": str(self.root),
            "CAPTURE": str(tmp_path / "capture"),
            "READY": str(tmp_path / "ready"),
        }

    def pwned(self) -> list[Path]:
        return list(self.tmp.rglob("PWNED"))


@pytest.fixture
def world(tmp_path: Path, roots: dict[str, Path]) -> World:
    return World(tmp_path, roots)


def in_terminal(world: World, argv: list[str], setup: str, keys: list[str], records: int) -> str:
    """Run an interactive shell on a pseudo-terminal: source `setup`, wait until it wrote READY,
    type `keys`, and return CAPTURE once it holds `records` end-of-record lines (<end>)."""
    capture = Path(world.env["CAPTURE"])
    ready = Path(world.env["READY"])
    setup_file = world.home / "setup"
    setup_file.write_text(setup)
    master, slave = pty.openpty()
    process = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=world.cwd,
        env=world.env,
        start_new_session=True,
    )
    os.close(slave)
    deadline = time.monotonic() + SESSION_TIMEOUT
    try:
        os.write(master, f"source {shlex.quote(str(setup_file))}\n".encode())
        pending = list(keys)
        while time.monotonic() < deadline:
            readable, _, _ = select.select([master], [], [], 0.05)
            if readable:
                try:
                    os.read(master, 65536)  # the screen: drained, not read
                except OSError:
                    break
            if pending and ready.exists():
                ready.unlink()  # before typing: the shell writes it again when done
                os.write(master, pending.pop(0).encode())
            if capture.exists() and capture.read_text().count("<end>\n") >= records:
                return capture.read_text()
        text = capture.read_text() if capture.exists() else ""
        pytest.fail(f"{argv[0]} did not finish: captured {text!r}")
    finally:
        process.kill()
        process.wait(timeout=10)
        os.close(master)


BASH_SETUP = r"""
PS1='' PS2=''
bind 'set bell-style none'
bind 'set completion-query-items 0'
bind 'set page-completions off'
source <(tcptune completion bash)
_capture_line() {
    printf '%s\n<end>\n' "$READLINE_LINE" >> "$CAPTURE"
    READLINE_LINE='' READLINE_POINT=0
    : > "$READY"
}
bind -x '"\C-t": _capture_line'
: > "$READY"
"""

ZSH_SETUP = r"""
PROMPT='' RPROMPT='' PS2=''
autoload -Uz compinit && compinit -u -D
source <(tcptune completion zsh)
compadd() {
    # every match a completion function offers is written down, then really added
    if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
        builtin compadd "$@"
        return
    fi
    local -a __hits
    builtin compadd -A __hits "$@"
    (( ${#__hits} )) && print -rl -- "<hit>"${^__hits} >> "$CAPTURE"
    builtin compadd "$@"
}
_capture_line() {
    print -r -- "<line>$BUFFER" >> "$CAPTURE"
    print -r -- "<end>" >> "$CAPTURE"
    BUFFER=''
    : > "$READY"
}
zle -N _capture_line
bindkey '^T' _capture_line
bindkey '^I' complete-word
: > "$READY"
"""

FISH_PROGRAM = """
tcptune completion fish | source
for line in $argv
    complete -C $line
    echo '<end>'
end
"""


def complete_bash(world: World, lines: list[str]) -> list[list[str]]:
    """What readline's insert-completions (M-*) puts on each line, after the typed words."""
    need("bash")
    keys = [f"{line}\x1b*\x14" for line in lines]
    argv = ["bash", "--norc", "--noprofile", "-i"]
    text = in_terminal(world, argv, BASH_SETUP, keys, len(lines))
    results = []
    for line, record in zip(lines, text.split("<end>\n"), strict=False):
        edited = record.rstrip("\n")
        typed = shlex.split(line)
        fixed = len(typed) if line.endswith(" ") else len(typed) - 1
        results.append([] if edited == line else shlex.split(edited)[fixed:])
    return results


def complete_zsh(world: World, lines: list[str]) -> list[list[str]]:
    """The matches zsh's completion system was given for each line (compadd's arguments)."""
    need("zsh")
    keys = [f"{line}\t\x14" for line in lines]
    text = in_terminal(world, ["zsh", "-f", "-i"], ZSH_SETUP, keys, len(lines))
    records = text.split("<end>\n")[: len(lines)]
    # the matches as zsh inserts them, quoted (\$HOME, x\ y.txt): unquoted here
    return [
        [re.sub(r"\\(.)", r"\1", r[5:]) for r in record.splitlines() if r.startswith("<hit>")]
        for record in records
    ]


def complete_fish(world: World, lines: list[str]) -> list[list[str]]:
    """fish's own answer: `complete -C LINE`."""
    need("fish")
    done = subprocess.run(
        ["fish", "--no-config", "-c", FISH_PROGRAM, *lines],
        capture_output=True,
        text=True,
        cwd=world.cwd,
        env=world.env,
        timeout=SESSION_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    records = done.stdout.split("<end>\n")[: len(lines)]
    return [[row.split("\t")[0] for row in record.splitlines()] for record in records]


COMPLETE = {"bash": complete_bash, "zsh": complete_zsh, "fish": complete_fish}


def complete(shell: str, world: World, lines: list[str]) -> dict[str, list[str]]:
    results = COMPLETE[shell](world, lines)
    assert len(results) == len(lines)
    assert world.pwned() == []
    return dict(zip(lines, results, strict=True))


def option_value(candidates: list[str], option: str) -> list[str]:
    """bash and fish replace the whole `--format=k` word; zsh completes after the `=`."""
    return [c.removeprefix(f"{option}=") for c in candidates]


@pytest.mark.parametrize("shell", SHELLS)
def test_shell_completes_commands_and_sub_commands(shell: str, world: World) -> None:
    got = complete(shell, world, ["tcptune ", "tcptune ch", "tcptune profiles ", "tcptune pro"])
    assert sorted(got["tcptune "]) == sorted(visible_commands(tree()))
    assert got["tcptune ch"] == ["check"]
    assert sorted(got["tcptune profiles "]) == ["capture", "list", "show", "validate"]
    assert got["tcptune pro"] == ["profiles"]


@pytest.mark.parametrize("shell", SHELLS)
def test_shell_completes_options(shell: str, world: World) -> None:
    got = complete(
        shell,
        world,
        [
            "tcptune apply --dr",
            "tcptune sockets --",
            "tcptune --",
            "tcptune profiles capture x --f",
        ],
    )
    assert sorted(got["tcptune apply --dr"]) == ["--drop-in", "--dry-run"]
    assert sorted(got["tcptune sockets --"]) == long_options(tree().commands["sockets"])
    assert sorted(got["tcptune --"]) == ["--help", "--netns", "--pid", "--root", "--version"]
    assert got["tcptune profiles capture x --f"] == ["--force"]


@pytest.mark.parametrize("shell", SHELLS)
def test_shell_completes_choices(shell: str, world: World) -> None:
    got = complete(
        shell,
        world,
        [
            "tcptune export server-profile --format ",
            "tcptune export server-profile --format=k",
            "tcptune sockets --source ",
            "tcptune sockets --source n",
            "tcptune completion ",
            "tcptune completion z",
        ],
    )
    assert sorted(got["tcptune export server-profile --format "]) == sorted(FORMATS)
    assert option_value(got["tcptune export server-profile --format=k"], "--format") == ["k8s"]
    assert sorted(got["tcptune sockets --source "]) == sorted(SOURCES)
    assert got["tcptune sockets --source n"] == ["netlink"]
    assert sorted(got["tcptune completion "]) == ["bash", "fish", "zsh"]
    assert got["tcptune completion z"] == ["zsh"]


@pytest.mark.parametrize("shell", SHELLS)
def test_shell_completes_profile_names_and_nothing_hostile(shell: str, world: World) -> None:
    """The profiles directory holds files named `$(touch PWNED).toml`, `*.toml`, names with
    quotes, spaces, newlines and escapes: none is offered, run or globbed; the working directory
    holds bait-*.toml files that a glob of `*.toml` would find."""
    lines = [
        "tcptune check ",
        "tcptune apply gol",
        "tcptune export e",
        "tcptune profiles show ",
        "tcptune check x",
        "tcptune check q",
        "tcptune check a",
        f"tcptune --root {world.other} check ",
    ]
    got = complete(shell, world, lines)
    assert sorted(got["tcptune check "]) == all_names()
    assert got["tcptune apply gol"] == ["golden-box"]
    assert got["tcptune export e"] == ["edge_2"]
    assert sorted(got["tcptune profiles show "]) == all_names()
    assert got["tcptune check x"] == ["x" * 64]
    assert got["tcptune check q"] == []
    # no profile name starts with "a": the shell completes file names (fish also matches inside
    # names); a;touch PWNED.toml is never among them
    assert set(got["tcptune check a"]) <= {"bait-1.toml", "bait-2.toml"}
    assert sorted(got[f"tcptune --root {world.other} check "]) == sorted(
        {*shipped_names(), *OTHER_ROOT_NAMES}
    )


@pytest.mark.parametrize("shell", SHELLS)
def test_shell_runs_nothing_from_the_command_line(shell: str, world: World) -> None:
    complete(
        shell,
        world,
        [
            "tcptune check $(touch PWNED) ",
            "tcptune check `touch PWNED` s",
            'tcptune --root "$(touch PWNED)" check ',
            "tcptune export x --format $(touch PWNED)",
            "tcptune profiles validate $(touch PWNED)",
            "tcptune profiles validate (touch PWNED)",  # fish's command substitution
            "tcptune check 'x;touch PWNED' ",
        ],
    )  # complete() asserts that no PWNED file appeared anywhere


@pytest.mark.parametrize("shell", SHELLS)
def test_shell_completes_paths_where_a_path_goes(shell: str, world: World) -> None:
    got = complete(shell, world, ["tcptune profiles validate ", "tcptune profiles validate ba"])
    files = {c.rstrip("/") for c in got["tcptune profiles validate "]}
    assert files == {"bait-1.toml", "bait-2.toml", "x y.txt", "subdir"}
    assert sorted(got["tcptune profiles validate ba"]) == ["bait-1.toml", "bait-2.toml"]


def test_bash_inserts_the_one_match(world: World) -> None:
    need("bash")
    keys = ["tcptune ch\t\x14", "tcptune export x --format=k\t\x14", "tcptune apply gol\t\x14"]
    text = in_terminal(world, ["bash", "--norc", "--noprofile", "-i"], BASH_SETUP, keys, len(keys))
    assert text.split("<end>\n")[:3] == [
        "tcptune check \n",
        "tcptune export x --format=k8s \n",
        "tcptune apply golden-box \n",
    ]


def test_zsh_inserts_the_one_match_and_loads_from_fpath(world: World) -> None:
    """Installed as _tcptune in a directory of $fpath, the script is autoloaded by compinit."""
    need("zsh")
    functions = world.home / "functions"
    functions.mkdir()
    (functions / "_tcptune").write_text(completion.script("zsh"))
    setup = ZSH_SETUP.replace("source <(tcptune completion zsh)\n", "").replace(
        "autoload -Uz compinit",
        f"fpath=({shlex.quote(str(functions))} $fpath)\nautoload -Uz compinit",
    )
    keys = ["tcptune ch\t\x14", "tcptune export x --format=k\t\x14", "tcptune apply gol\t\x14"]
    text = in_terminal(world, ["zsh", "-f", "-i"], setup, keys, len(keys))
    lines = [r for r in text.splitlines() if r.startswith("<line>")]
    assert lines == [
        "<line>tcptune check ",
        "<line>tcptune export x --format=k8s ",
        "<line>tcptune apply golden-box ",
    ]


HOSTILE_ANSWER = [
    "$(touch PWNED)",
    "`touch PWNED`",
    "*",
    "a b",
    "semi;touch PWNED",
    "quo'te",
    'dq"x',
    "back\\slash",
    "~root",
    "$HOME",
    "-rf",
]


@pytest.mark.parametrize("shell", SHELLS)
def test_shell_takes_even_a_hostile_answer_as_data(shell: str, world: World) -> None:
    """tcptune never answers such values (the answering side drops them), but the scripts do not
    rely on it: a stand-in tcptune that answers them, with hostile help texts, gets them offered
    literally, and nothing runs or globs."""
    fake = world.tmp / "fake-bin"
    fake.mkdir()
    answer = "".join(f"plain\t{value}\t$(touch PWNED) `touch PWNED`\n" for value in HOSTILE_ANSWER)
    stand_in = fake / "tcptune"
    stand_in.write_text(
        "#!/bin/sh\n"
        'if [ -z "$_TCPTUNE_COMPLETE" ]; then exec ' + shlex.quote(str(PROGRAM)) + ' "$@"; fi\n'
        "cat <<'ANSWER'\n" + answer + "ANSWER\n"
    )
    stand_in.chmod(0o755)
    world.env["PATH"] = f"{fake}:{world.env['PATH']}"
    got = complete(shell, world, ["tcptune "])
    assert sorted(got["tcptune "]) == sorted(HOSTILE_ANSWER)


def test_fish_loads_the_script_from_its_completions_directory(world: World) -> None:
    """Installed as ~/.config/fish/completions/tcptune.fish, fish loads it on first use."""
    need("fish")
    directory = Path(world.env["XDG_CONFIG_HOME"]) / "fish/completions"
    directory.mkdir(parents=True)
    (directory / "tcptune.fish").write_text(run_program("completion", "fish").stdout)
    done = subprocess.run(
        ["fish", "-c", 'complete -C "tcptune pro"; complete -C "tcptune apply gol"'],
        capture_output=True,
        text=True,
        cwd=world.cwd,
        env=world.env,
        timeout=SESSION_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert [row.split("\t")[0] for row in done.stdout.splitlines()] == ["profiles", "golden-box"]
