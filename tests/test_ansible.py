"""integrations/ansible run for real: ansible-playbook with a local connection against temporary roots.

Each playbook run takes a few seconds, so the runs are few and each checks several things. Task
statuses and the recap come from a small callback (tests/ansible_plugins/tcptune_record.py), since
ansible-core ships no JSON callback of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def live(root: Path, key: str) -> str:
    return " ".join((root / "proc/sys" / key.replace(".", "/")).read_text().split())


def playbook(
    tmp_path: Path, *args: str, extra: dict | None = None, inventory: str = "localhost,"
) -> Run:
    """ansible-playbook with a local connection; tcptune below a temporary root, never /."""
    work = tmp_path / "ansible"
    work.mkdir(exist_ok=True)
    record = work / "record.json"
    record.unlink(missing_ok=True)
    config = work / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "TCPTUNE_"))}
    env.update(
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
    )
    variables = {
        "ansible_python_interpreter": sys.executable,
        "tcptune_become": False,
        "tcptune_install": "never",
        "tcptune_bin": str(TCPTUNE),
        **(extra or {}),
    }
    proc = subprocess.run(
        [
            str(ANSIBLE_PLAYBOOK),
            *("-i", inventory, "-c", "local", str(PLAYBOOK), *args),
            *("-e", json.dumps(variables)),
        ],
        capture_output=True,
        text=True,
        env=env,
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
    summary = json.loads(summary_file.read_text())
    assert set(summary) == {"localhost"}
    host = summary["localhost"]
    assert host["in_sync"] is True and host["drifted"] == [] and host["exit_code"] == 0
    assert host["profile"] == "server-profile" and host["tcptune_version"] == __version__
    assert host["apply"]["changed"] is True and host["apply"]["dry_run"] is False
    assert set(host["apply"]["keys_to_change"]) == {
        k["key"] for k in report["keys"] if k["action"] == "change"
    }
    assert "tcptune : Show the fleet summary" in first.output

    drop_in_before = (drop_in.read_bytes(), drop_in.stat().st_mtime_ns)
    second = playbook(tmp_path, extra=extra)
    assert second.code == 0, second.output
    assert second.task(APPLY)["status"] == "ok", second.output
    assert json.loads(second.task(APPLY)["stdout"])["nothing_to_do"] is True
    # Only the controller's summary file may change (its "apply" part now says unchanged).
    assert set(second.changed_tasks()) <= {WRITE_SUMMARY}, second.output
    assert sorted((root / "var/lib/tcptune/backups").iterdir()) == backups
    assert (drop_in.read_bytes(), drop_in.stat().st_mtime_ns) == drop_in_before
    host = json.loads(summary_file.read_text())["localhost"]
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
    host = json.loads(summary_file.read_text())["localhost"]
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
    failure = run.task("tcptune : Fail the host with tcptune's reason", "broken")
    assert failure["msg"].startswith("tcptune apply exited 2 (bad input"), failure
    assert "unknown profile 'no-such-profile'" in failure["msg"]
    assert run.task(APPLY, "tuned")["status"] == "changed"
    assert run.task(APPLY, "audited")["status"] == "skipped"
    assert snapshot(roots["audited"]) == audited_before
    assert not (roots["broken"] / "etc/sysctl.d/99-tcptune.conf").exists()

    summary = json.loads(summary_file.read_text())
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
