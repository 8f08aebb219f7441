"""The layers of the package, read from its source: which module imports which (at the top or
inside a function alike), and which code touches the machine."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tcptune"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in SOURCES.items()}


def imported(tree: ast.Module, package: str) -> set[str]:
    """The tcptune modules a module's code imports, at the top or inside a function alike.
    `from tcptune.x import y` counts as importing tcptune.x.y when that is a module, else
    tcptune.x; `package` anchors relative imports."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x, from ..x import y
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in SOURCES else base
                for alias in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t.split(".")[0] == "tcptune")
    return found


def package_of(name: str) -> str:
    return name if SOURCES[name].name == "__init__.py" else name.rpartition(".")[0]


GRAPH = {name: imported(TREES[name], package_of(name)) - {name} for name in SOURCES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None (depth-first search)."""
    state: dict[str, str] = {}  # "open" while on the current path, then "done"
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == "open":
                return [*path[path.index(child) :], child]
            if child not in state and (found := visit(child)):
                return found
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_import_names_a_module_that_exists() -> None:
    for name, targets in GRAPH.items():
        assert targets <= set(SOURCES), f"{name} imports {targets - set(SOURCES)}"


def test_imports_inside_functions_count() -> None:
    """Function-level imports are edges like any other: they are what hid the old cycles."""
    tree = ast.parse(
        "from tcptune import model\n"
        "def f():\n"
        "    from tcptune.census import Tally\n"
        "    from . import rules\n"
        "    import tcptune.sysctld\n"
    )
    assert imported(tree, "tcptune") == {
        "tcptune.model",
        "tcptune.census",
        "tcptune.rules",
        "tcptune.sysctld",
    }


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_model_imports_no_other_tcptune_module() -> None:
    assert GRAPH["tcptune.model"] == set()


def test_only_the_command_line_imports_the_command_line() -> None:
    """tcptune.cli uses the domain modules, never the other way round."""

    def is_cli(name: str) -> bool:
        return name == "tcptune.cli" or name.startswith("tcptune.cli.")

    for name, targets in GRAPH.items():
        if not is_cli(name) and name != "tcptune.__main__":
            assert not [t for t in targets if is_cli(t)], name


# --- machine access -------------------------------------------------------------------------------

# The code that reads or writes the machine: the system layer and the netlink dump it calls.
MACHINE_LAYER = {"tcptune.system", "tcptune.sockdiag"}
# The command line's plumbing owns the process's own streams, arguments and exit, and completion
# lists the profile directories; not part of this rule. The command modules (tcptune.cli.check,
# tcptune.cli.apply, ...) do the commands' work and are held to it like every other module.
COMMAND_LINE = {
    "tcptune.cli",
    "tcptune.cli.main",
    "tcptune.cli.core",
    "tcptune.cli.options",
    "tcptune.cli.completion",
    "tcptune.errors",
    "tcptune.__main__",
}

# Calls that reach the file system, the kernel or other processes, by the name they are made with.
PATH_METHODS = {
    "absolute", "chmod", "exists", "expanduser", "glob", "hardlink_to", "is_dir",
    "is_file", "is_symlink", "iterdir", "lchmod", "lstat", "mkdir", "open", "owner", "read_bytes",
    "read_text", "readlink", "rename", "resolve", "rglob", "rmdir", "samefile", "stat",
    "symlink_to", "touch", "unlink", "write_bytes", "write_text",
}  # fmt: skip
IO_MODULES = {"fcntl", "glob", "os", "shutil", "socket", "subprocess", "tempfile"}
PURE_CALLS = {  # functions of those modules that compute and touch nothing
    "os.strerror",
    "os.fspath",
    "os.path.join",
    "os.path.normpath",
    "os.path.dirname",
    "os.path.basename",
    "socket.inet_ntop",
    "socket.inet_pton",
    "shutil.get_terminal_size",  # the terminal the output goes to, for wrapping
    "os.get_terminal_size",  # the same, asked of stdout or stderr (a pager's screen)
    "os.environ.get",  # the process's own settings (NO_COLOR, TCPTUNE_ROOT)
}


def dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def machine_calls(tree: ast.Module) -> list[str]:
    """Calls in the code that may touch the machine, as 'line: call'."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func) or ""
        method = node.func.attr if isinstance(node.func, ast.Attribute) else None
        if (
            name in ("open", "io.open")
            or (name.split(".")[0] in IO_MODULES and "." in name and name not in PURE_CALLS)
            or method in PATH_METHODS
        ):
            found.append(f"{node.lineno}: {name or method}()")
    return found


def test_the_machine_check_sees_the_usual_calls() -> None:
    tree = ast.parse(
        "open(p)\n"
        "os.stat(p)\n"
        "os.mkdir(p)\n"
        "Path(p).read_text()\n"
        "directory.glob('*.toml')\n"
        "os.listdir(p)\n"
        "fcntl.flock(fd, 1)\n"
        "os.path.isfile(p)\n"
        "os.strerror(2)\n"
        "'a.b'.replace('.', '/')\n"
        "socket.inet_ntop(2, b'....')\n"
    )
    assert [call.split(": ")[1] for call in machine_calls(tree)] == [
        "open()",
        "os.stat()",
        "os.mkdir()",
        "read_text()",
        "directory.glob()",
        "os.listdir()",
        "fcntl.flock()",
        "os.path.isfile()",
    ]


def test_only_the_system_layer_touches_the_machine() -> None:
    """Everything else asks tcptune.system, so it runs unchanged on a fake tree below --root."""
    offenders = {
        name: calls
        for name, tree in TREES.items()
        if name not in MACHINE_LAYER and name not in COMMAND_LINE and (calls := machine_calls(tree))
    }
    assert offenders == {}
