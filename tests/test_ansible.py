"""integrations/ansible run for real: ansible-playbook with a local connection against temporary roots.

Each playbook run takes a few seconds, so the runs are few and each checks several things. Task
statuses and the recap come from a small callback (tests/ansible_plugins/tcptune_record.py), since
ansible-core ships no JSON callback of its own.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import modern_machine

from tcptune import __version__
from tcptune.profiles import load as load_profile

REPO = Path(__file__).resolve().parent.parent
PLAYBOOK = REPO / "integrations/ansible/tcptune.yml"
PLUGINS = Path(__file__).resolve().parent / "ansible_plugins"
BIN = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = BIN / "ansible-playbook"
TCPTUNE = BIN / "tcptune"

APPLY = "tcptune : Run tcptune apply"
CHECK = "tcptune : Run tcptune check"
VERSION = "tcptune : Read tcptune's version"
PIP = "tcptune : Pip install tcptune"
WRITE_SUMMARY = "tcptune : Write the fleet summary on the controller"
SHOW_SUMMARY = "tcptune : Show the fleet summary"
FAIL_HOST = "tcptune : Fail the host with tcptune's reason"
LOOK = "tcptune : Look for tcptune on the host"

# ssh for the tests: no configuration file, no host key check or record, no control master left
# running, no retry, answers within seconds.
SSH_ENV = {
    "ANSIBLE_SSH_ARGS": (
        "-F /dev/null -o ControlMaster=no -o StrictHostKeyChecking=no"
        " -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes"
    ),
    "ANSIBLE_SSH_RETRIES": "0",
    "ANSIBLE_TIMEOUT": "10",
}


@pytest.fixture(scope="module", autouse=True)
def ansible_available() -> None:
    """ansible-core comes with the dev extra; on CI its absence is a failure, not a skip."""
    if ANSIBLE_PLAYBOOK.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(
            f"{ANSIBLE_PLAYBOOK} is missing: install the dev extra (pip install -e '.[dev]')"
        )
    pytest.skip("ansible-core is not installed (pip install -e '.[dev]')")


@dataclass
class Run:
    code: int
    output: str
    results: list[dict]
    recap: dict[str, dict[str, int]]

    def task(self, name: str, host: str = "localhost") -> dict:
        found = [r for r in self.results if r["task"] == name and r["host"] == host]
        assert len(found) == 1, f"{name} on {host}: {found}\n{self.output}"
        return found[0]

    def changed_tasks(self, host: str = "localhost") -> list[str]:
        return [r["task"] for r in self.results if r["host"] == host and r["status"] == "changed"]

    def summary(self) -> dict:
        """The fleet summary as the play printed it."""
        (shown,) = [r for r in self.results if r["task"] == SHOW_SUMMARY]
        return shown["msg"]

    def written_summary(self, path: Path) -> dict:
        """The summary file, which must hold the same document as the one printed."""
        written = json.loads(path.read_text())
        assert written == self.summary(), self.output
        return written


def machine(root: Path) -> Path:
    """A fake modern machine as in conftest, plus the sysctl.d directory apply writes into."""
    modern_machine(root)
    (root / "etc/sysctl.d").mkdir(parents=True)
    return root


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path below root with its type, mode, and content for files."""
    tree = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        tree[str(path.relative_to(root))] = (info.st_mode, content)
    return tree


def fleet_inventory(path: Path, hosts: dict[str, dict], **common) -> str:
    """A YAML (JSON) inventory: one group, each host with its own variables over common ones and
    over the defaults playbook() would pass as extra variables (which no host could override)."""
    group_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "tcptune_become": False,
        "tcptune_install": "never",
        "tcptune_bin": str(TCPTUNE),
        **common,
    }
    path.write_text(json.dumps({"fleet": {"hosts": hosts, "vars": group_vars}}))
    return str(path)


def live(root: Path, key: str) -> str:
    return " ".join((root / "proc/sys" / key.replace(".", "/")).read_text().split())


def playbook(
    tmp_path: Path,
    *args: str,
    extra: dict | None = None,
    inventory: str = "localhost,",
    connection: str | None = "local",
    prefix: Sequence[str] = (),
    env: dict[str, str] | None = None,
    playbook_file: Path = PLAYBOOK,
) -> Run:
    """ansible-playbook, by default with a local connection and tcptune below a temporary root,
    never /. prefix runs it inside a namespace (`unshare -n`, `ip netns exec NAME`)."""
    work = tmp_path / "ansible"
    work.mkdir(exist_ok=True)
    record = work / "record.json"
    record.unlink(missing_ok=True)
    config = work / "ansible.cfg"
    config.write_text("[defaults]\n")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "TCPTUNE_"))}
    full_env.update(
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_HOME=str(work / "home"),
        ANSIBLE_LOCAL_TEMP=str(work / "local-tmp"),
        ANSIBLE_REMOTE_TEMP=str(work / "remote-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_CALLBACK_PLUGINS=str(PLUGINS),
        ANSIBLE_CALLBACKS_ENABLED="tcptune_record",
        TCPTUNE_ANSIBLE_RECORD=str(record),
        **(env or {}),
    )
    variables = {
        "ansible_python_interpreter": sys.executable,
        "tcptune_become": False,
        "tcptune_install": "never",
        "tcptune_bin": str(TCPTUNE),
        **(extra or {}),
    }
    if inventory.endswith(".json"):  # fleet_inventory() holds the defaults, per host
        variables = dict(extra or {})
    proc = subprocess.run(
        [
            *prefix,
            str(ANSIBLE_PLAYBOOK),
            *("-i", inventory),
            *(("-c", connection) if connection else ()),
            *(str(playbook_file), *args),
            *("-e", json.dumps(variables)),
        ],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=work,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert record.exists(), f"no record written (exit {proc.returncode}):\n{output}"
    data = json.loads(record.read_text())
    return Run(proc.returncode, output, data["results"], data["recap"])


def test_apply_changes_then_second_apply_is_unchanged(tmp_path: Path) -> None:
    root = machine(tmp_path / "root")
    summary_file = tmp_path / "summary.json"
    extra = {
        "tcptune_profile": "server-profile",
        "tcptune_root": str(root),
        "tcptune_summary_file": str(summary_file),
    }
    targets = load_profile("server-profile", root).sysctl
    assert any(live(root, key) != value for key, value in targets.items())

    first = playbook(tmp_path, extra=extra)
    assert first.code == 0, first.output
    assert first.recap["localhost"]["failures"] == 0
    assert first.recap["localhost"]["changed"] >= 1
    apply = first.task(APPLY)
    assert apply["status"] == "changed", first.output
    assert apply["cmd"] == [str(TCPTUNE), "--root", str(root), "apply", "server-profile", "--json"]
    report = json.loads(apply["stdout"])
    assert report["changed"] is True and report["backup_id"]
    drop_in = root / "etc/sysctl.d/99-tcptune.conf"
    assert drop_in.read_text().startswith("# Managed by tcptune: profile server-profile.")
    for key, value in targets.items():
        assert live(root, key) == value, key
        assert f"{key} = {value}\n" in drop_in.read_text()
    backups = sorted((root / "var/lib/tcptune/backups").iterdir())
    assert [b.stem for b in backups] == [report["backup_id"]]
    # The check after the apply: rc 0, and the summary says in sync.
    assert first.task(CHECK)["rc"] == 0
    summary = first.written_summary(summary_file)
    assert set(summary) == {"in_sync", "drifted", "failed", "not_installed", "hosts"}
    assert summary["in_sync"] == ["localhost"]
    assert summary["drifted"] == summary["failed"] == summary["not_installed"] == []
    assert set(summary["hosts"]) == {"localhost"}
    host = summary["hosts"]["localhost"]
    assert host["in_sync"] is True and host["drifted"] == [] and host["exit_code"] == 0
    assert host["profile"] == "server-profile" and host["tcptune_version"] == __version__
    assert host["apply"]["changed"] is True and host["apply"]["dry_run"] is False
    assert set(host["apply"]["keys_to_change"]) == {
        k["key"] for k in report["keys"] if k["action"] == "change"
    }
    assert SHOW_SUMMARY in first.output

    drop_in_before = (drop_in.read_bytes(), drop_in.stat().st_mtime_ns)
    second = playbook(tmp_path, extra=extra)
    assert second.code == 0, second.output
    assert second.task(APPLY)["status"] == "ok", second.output
    assert json.loads(second.task(APPLY)["stdout"])["nothing_to_do"] is True
    # Only the controller's summary file may change (its "apply" part now says unchanged).
    assert set(second.changed_tasks()) <= {WRITE_SUMMARY}, second.output
    assert sorted((root / "var/lib/tcptune/backups").iterdir()) == backups
    assert (drop_in.read_bytes(), drop_in.stat().st_mtime_ns) == drop_in_before
    host = second.written_summary(summary_file)["hosts"]["localhost"]
    assert host["in_sync"] is True and host["apply"]["changed"] is False
    assert host["apply"]["backup_id"] is None


def test_check_mode_runs_dry_run_and_writes_nothing(tmp_path: Path) -> None:
    root = machine(tmp_path / "root")
    summary_file = tmp_path / "summary.json"
    before = snapshot(root)
    targets = load_profile("proxy-profile", root).sysctl
    drifting = {key for key, value in targets.items() if live(root, key) != value}
    assert drifting

    run = playbook(
        tmp_path,
        "--check",
        "--diff",
        extra={
            "tcptune_profile": "proxy-profile",
            "tcptune_root": str(root),
            "tcptune_summary_file": str(summary_file),
        },
    )
    assert run.code == 0, run.output
    assert snapshot(root) == before
    apply = run.task(APPLY)
    assert apply["cmd"][-2:] == ["--json", "--dry-run"]
    # "changed" in check mode means "would change": the plan has something to do.
    assert apply["status"] == "changed", run.output
    plan = json.loads(apply["stdout"])
    assert plan["dry_run"] is True and plan["nothing_to_do"] is False
    assert "+++ /etc/sysctl.d/99-tcptune.conf" in run.output  # --diff shows the drop-in diff
    # Drift makes `tcptune check` exit 1: reported, not a failure.
    check = run.task(CHECK)
    assert check["rc"] == 1 and check["status"] == "ok"
    summary = run.written_summary(summary_file)
    assert summary["drifted"] == ["localhost"] and summary["in_sync"] == []
    host = summary["hosts"]["localhost"]
    assert host["in_sync"] is False and host["exit_code"] == 1
    assert set(host["drifted"]) == drifting
    assert set(host["apply"]["keys_to_change"]) == drifting
    assert host["apply"]["dry_run"] is True and host["apply"]["changed"] is False


def test_summary_over_hosts_with_a_failure(tmp_path: Path) -> None:
    """Four hosts: one applied, one only audited (tcptune_apply=false), one with a bad profile,
    one where a site file overrides a key at boot (apply exits 1: applied, reported as drift)."""
    roots = {
        name: machine(tmp_path / name) for name in ("tuned", "audited", "broken", "overridden")
    }
    site = roots["overridden"] / "etc/sysctl.d/zz-site.conf"
    site.write_text("net.ipv4.tcp_keepalive_time = 1800\n")
    audited_before = snapshot(roots["audited"])
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        "[fleet]\n"
        f"tuned tcptune_root={roots['tuned']}\n"
        f"audited tcptune_root={roots['audited']} tcptune_apply=false\n"
        f"broken tcptune_root={roots['broken']} tcptune_profile=no-such-profile\n"
        f"overridden tcptune_root={roots['overridden']}\n"
        "[fleet:vars]\nansible_connection=local\ntcptune_profile=server-profile\n"
    )
    summary_file = tmp_path / "summary.json"
    extra = {"tcptune_summary_file": str(summary_file)}
    # Extra vars would override the per-host profile and root: pass only the common ones.
    run = playbook(tmp_path, extra=extra, inventory=str(inventory))
    assert run.code == 2, run.output  # a host failed
    assert run.recap["broken"]["failures"] == 1
    assert run.recap["tuned"]["failures"] == 0 and run.recap["audited"]["failures"] == 0
    failure = run.task(FAIL_HOST, "broken")
    assert failure["msg"].startswith("tcptune apply exited 2 (bad input"), failure
    assert "unknown profile 'no-such-profile'" in failure["msg"]
    assert run.task(APPLY, "tuned")["status"] == "changed"
    assert run.task(APPLY, "audited")["status"] == "skipped"
    assert snapshot(roots["audited"]) == audited_before
    assert not (roots["broken"] / "etc/sysctl.d/99-tcptune.conf").exists()

    document = run.written_summary(summary_file)
    assert document["in_sync"] == ["tuned"]
    assert document["drifted"] == ["audited", "overridden"]
    assert document["failed"] == ["broken"] and document["not_installed"] == []
    summary = document["hosts"]
    assert set(summary) == {"tuned", "audited", "broken", "overridden"}
    assert summary["tuned"]["in_sync"] is True
    assert summary["audited"]["in_sync"] is False and summary["audited"]["apply"] == {}
    assert "net.ipv4.tcp_rfc1337" in summary["audited"]["drifted"]
    assert summary["broken"]["in_sync"] is None
    assert summary["broken"]["error"] == failure["msg"]
    # applied (changed, not failed), and the summary reports the key boot will override
    assert run.recap["overridden"]["failures"] == 0
    apply = run.task(APPLY, "overridden")
    assert apply["status"] == "changed" and apply["rc"] == 1
    assert live(roots["overridden"], "net.ipv4.tcp_keepalive_time") == "600"
    assert summary["overridden"]["in_sync"] is False
    assert summary["overridden"]["drifted"] == ["net.ipv4.tcp_keepalive_time"]


def test_install_from_a_wheel_into_a_virtualenv(tmp_path: Path, built_wheel: Path) -> None:
    wheel = built_wheel
    venv = tmp_path / "opt/tcptune"
    root = machine(tmp_path / "root")

    run = playbook(
        tmp_path,
        extra={
            "tcptune_install": "missing",
            "tcptune_bin": str(venv / "bin/tcptune"),
            "tcptune_venv": str(venv),
            "tcptune_python": sys.executable,
            "tcptune_package_file": str(wheel),
            "tcptune_profile": "server-profile",
            "tcptune_root": str(root),
        },
    )
    assert run.code == 0, run.output
    assert run.task(PIP)["status"] == "changed", run.output
    assert (venv / "dist" / wheel.name).read_bytes() == wheel.read_bytes()
    version = run.task(VERSION)
    assert version["cmd"] == [str(venv / "bin/tcptune"), "--version"]
    assert version["stdout"] == f"tcptune {__version__}"
    # The installed tcptune found its shipped profile and did the work.
    assert run.task(APPLY)["cmd"][0] == str(venv / "bin/tcptune")
    assert run.task(APPLY)["status"] == "changed"
    assert run.task(CHECK)["rc"] == 0


def test_summary_when_every_host_fails(tmp_path: Path) -> None:
    """Three hosts, three ways to fail: the summary is still printed, and written, listing them."""
    roots = {name: machine(tmp_path / name) for name in ("misnamed", "missing", "unbuilt")}
    before = {name: snapshot(root) for name, root in roots.items()}
    absent_bin = tmp_path / "nowhere/bin/tcptune"
    absent_wheel = tmp_path / "dist/tcptune-0.1.0-py3-none-any.whl"
    venv = tmp_path / "venv"
    inventory = fleet_inventory(
        tmp_path / "inventory.json",
        {
            "misnamed": {
                "tcptune_root": str(roots["misnamed"]),
                "tcptune_profile": "serverprofile",
            },
            "missing": {"tcptune_root": str(roots["missing"]), "tcptune_bin": str(absent_bin)},
            "unbuilt": {
                "tcptune_root": str(roots["unbuilt"]),
                "tcptune_install": "missing",
                "tcptune_bin": str(venv / "bin/tcptune"),
                "tcptune_venv": str(venv),
                "tcptune_package_file": str(absent_wheel),
            },
        },
        tcptune_profile="server-profile",
    )
    summary_file = tmp_path / "summary.json"
    run = playbook(tmp_path, extra={"tcptune_summary_file": str(summary_file)}, inventory=inventory)
    assert run.code == 2, run.output
    for host in roots:
        assert run.recap[host]["failures"] == 1, run.output
    summary = run.written_summary(summary_file)
    assert summary["failed"] == ["misnamed", "missing", "unbuilt"]
    assert summary["in_sync"] == summary["drifted"] == summary["not_installed"] == []
    errors = {host: entry["error"] for host, entry in summary["hosts"].items()}
    assert {host: entry["in_sync"] for host, entry in summary["hosts"].items()} == dict.fromkeys(
        roots
    )
    assert errors["misnamed"].startswith("tcptune apply exited 2 (bad input"), errors
    assert "unknown profile 'serverprofile'" in errors["misnamed"]
    assert errors["missing"] == f"{absent_bin} does not exist and tcptune_install is 'never'"
    assert (
        errors["unbuilt"] == f"tcptune_package_file {absent_wheel} is not a file on the controller"
    )
    # Each host is failed with its own reason, after the summary.
    for host, error in errors.items():
        assert run.task(FAIL_HOST, host)["msg"] == error
    assert run.output.index(SHOW_SUMMARY) < run.output.index(FAIL_HOST)
    assert not venv.exists()
    assert {name: snapshot(root) for name, root in roots.items()} == before


def test_summary_when_no_host_can_be_reached(tmp_path: Path, netns) -> None:
    """SSH hosts the controller has no route to, from inside a network namespace with nothing
    in it: no packet leaves. Each host is reported as failed, unreachable, and the summary is
    printed and written."""
    key = tmp_path / "id_ed25519"
    inventory = fleet_inventory(
        tmp_path / "inventory.json",
        {
            "far1": {"ansible_host": "192.0.2.1"},
            "far2": {"ansible_host": "192.0.2.2"},
        },
        ansible_connection="ssh",
        ansible_user="root",
        ansible_ssh_private_key_file=str(key),
        tcptune_profile="server-profile",
    )
    summary_file = tmp_path / "summary.json"
    run = playbook(
        tmp_path,
        extra={"tcptune_summary_file": str(summary_file)},
        inventory=inventory,
        connection=None,
        prefix=["unshare", "-n"],
        env=SSH_ENV,
    )
    assert run.code == 2, run.output
    summary = run.written_summary(summary_file)
    assert summary["failed"] == ["far1", "far2"]
    assert summary["in_sync"] == summary["drifted"] == summary["not_installed"] == []
    for host in ("far1", "far2"):
        assert run.task(LOOK, host)["status"] == "unreachable"
        error = summary["hosts"][host]["error"]
        assert error.startswith("unreachable: "), error
        assert "Network is unreachable" in error, error
        assert run.task(FAIL_HOST, host)["msg"] == error
        assert run.recap[host]["failures"] == 1


def test_check_mode_reports_hosts_without_tcptune_as_not_installed(tmp_path: Path) -> None:
    roots = {name: machine(tmp_path / name) for name in ("ready", "bare", "bare-never")}
    before = {name: snapshot(root) for name, root in roots.items()}
    venv = tmp_path / "venv"
    inventory = fleet_inventory(
        tmp_path / "inventory.json",
        {
            "ready": {"tcptune_root": str(roots["ready"])},
            "bare": {
                "tcptune_root": str(roots["bare"]),
                "tcptune_install": "missing",
                "tcptune_venv": str(venv),
                "tcptune_bin": str(venv / "bin/tcptune"),
                "tcptune_package": f"tcptune=={__version__}",
            },
            "bare-never": {
                "tcptune_root": str(roots["bare-never"]),
                "tcptune_bin": str(venv / "bin/tcptune"),
            },
        },
        tcptune_profile="server-profile",
    )
    summary_file = tmp_path / "summary.json"
    run = playbook(
        tmp_path, "--check", extra={"tcptune_summary_file": str(summary_file)}, inventory=inventory
    )
    assert run.code == 0, run.output
    assert all(counts["failures"] == 0 for counts in run.recap.values()), run.output
    summary = run.written_summary(summary_file)
    assert summary["not_installed"] == ["bare", "bare-never"]
    assert summary["failed"] == [] and summary["in_sync"] == []
    assert summary["drifted"] == ["ready"]
    bin_path = venv / "bin/tcptune"
    preamble = (
        f"tcptune is not installed ({bin_path} does not exist) and check mode installs nothing, "
        "so there is nothing to preview; "
    )
    assert summary["hosts"]["bare"] == {
        "in_sync": None,
        "installed": False,
        "message": preamble + f"a real run installs it from tcptune=={__version__}",
    }
    assert summary["hosts"]["bare-never"] == {
        "in_sync": None,
        "installed": False,
        "message": preamble
        + f"a real run stops: {bin_path} does not exist and tcptune_install is never",
    }
    assert "failed before tcptune ran" not in run.output
    for host in ("bare", "bare-never"):
        for task in (APPLY, CHECK, VERSION, PIP):
            assert run.task(task, host)["status"] == "skipped"
    assert not venv.exists()
    assert {name: snapshot(root) for name, root in roots.items()} == before


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of this checkout's sources, to build in and run the playbook from."""
    copy = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "dist", "build")
    for name in ("tcptune", "profiles", "integrations"):
        shutil.copytree(REPO / name, copy / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, copy / name)
    return copy


def documented_build_command() -> str:
    """The one command integrations/ansible/README.md gives for the wheel the role installs."""
    readme = (REPO / "integrations/ansible/README.md").read_text()
    commands = {
        line.strip()
        for line in readme.splitlines()
        if line.startswith("python") and " -m pip wheel " in line
    }
    assert len(commands) == 1, commands
    return commands.pop()


def install_variables(tmp_path: Path, root: Path) -> dict:
    venv = tmp_path / "opt/tcptune"
    return {
        "tcptune_install": "missing",
        "tcptune_bin": str(venv / "bin/tcptune"),
        "tcptune_venv": str(venv),
        "tcptune_python": sys.executable,
        "tcptune_profile": "server-profile",
        "tcptune_root": str(root),
    }


def test_without_a_package_the_host_fails_saying_how_to_build_one(
    tmp_path: Path, checkout: Path
) -> None:
    root = machine(tmp_path / "root")
    before = snapshot(root)
    summary_file = tmp_path / "summary.json"
    extra = install_variables(tmp_path, root) | {"tcptune_summary_file": str(summary_file)}
    run = playbook(
        tmp_path, extra=extra, playbook_file=checkout / "integrations/ansible/tcptune.yml"
    )
    assert run.code == 2, run.output
    wheel = checkout / f"dist/tcptune-{__version__}-py3-none-any.whl"
    expected = (
        f"nothing to install tcptune from: {wheel} does not exist; build it on the controller"
        f" with `{documented_build_command()}` in {checkout} (or set tcptune_package_file to a"
        " wheel on the controller, or tcptune_package to a pip requirement the hosts can"
        " install)"
    )
    assert run.task(FAIL_HOST)["msg"] == expected
    summary = run.written_summary(summary_file)
    assert summary["failed"] == ["localhost"]
    assert summary["hosts"]["localhost"] == {"in_sync": None, "error": expected}
    assert not (tmp_path / "opt").exists()
    assert snapshot(root) == before


def test_the_default_installs_the_wheel_the_documented_command_builds(
    tmp_path: Path, checkout: Path
) -> None:
    command = shlex.split(documented_build_command())
    assert command[0] == "python3"
    built = subprocess.run(
        [sys.executable, *command[1:]],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    wheel = checkout / f"dist/tcptune-{__version__}-py3-none-any.whl"
    assert wheel.is_file(), sorted((checkout / "dist").iterdir())

    root = machine(tmp_path / "root")
    extra = install_variables(tmp_path, root)
    venv = Path(extra["tcptune_venv"])
    run = playbook(
        tmp_path, extra=extra, playbook_file=checkout / "integrations/ansible/tcptune.yml"
    )
    assert run.code == 0, run.output
    pip = run.task(PIP)
    assert pip["status"] == "changed", run.output
    assert pip["cmd"][-1] == str(venv / "dist" / wheel.name)
    assert (venv / "dist" / wheel.name).read_bytes() == wheel.read_bytes()
    assert run.task(VERSION)["stdout"] == f"tcptune {__version__}"
    assert run.task(APPLY)["cmd"][0] == str(venv / "bin/tcptune")
    assert run.task(APPLY)["status"] == "changed"
    assert run.task(CHECK)["rc"] == 0


def test_the_readme_names_tests_that_exist() -> None:
    """integrations/ansible/README.md says which test checks what: each named test is there."""
    readme = (REPO / "integrations/ansible/README.md").read_text()
    named = set(re.findall(r"`(test_\w+)`", readme))
    assert len(named) >= 8, named
    defined = set()
    for module in ("test_ansible.py", "test_ansible_ssh.py"):
        source = (Path(__file__).parent / module).read_text()
        defined |= set(re.findall(r"^def (test_\w+)\(", source, re.MULTILINE))
    assert named <= defined, named - defined
