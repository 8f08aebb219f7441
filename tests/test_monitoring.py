"""integrations/: the alert rules under the real promtool (check rules, and test rules with a
series file in which each alert fires), and the systemd units under the real systemd-analyze
(verify, and the offline security score), as docs/monitoring.md tells an operator to use them.
The units' commands run for real, scraped by node_exporter, in tests/test_metrics_netns.py."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tcptune import metrics, rates

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "integrations/prometheus/tcptune-alerts.yml"
RULES_TEST = ROOT / "integrations/prometheus/tcptune-alerts.test.yml"
UNITS = ROOT / "integrations/systemd"
MONITORING = ROOT / "docs/monitoring.md"
TCPTUNE = Path(sys.executable).with_name("tcptune")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: run `make system-deps` (Debian packages)")
    return found


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


# --- the alert rules ----------------------------------------------------------------------------


def test_promtool_accepts_the_rules() -> None:
    done = run([tool("promtool"), "check", "rules", str(RULES)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 4 rules found" in done.stdout


def test_promtool_unit_tests_show_each_alert_firing() -> None:
    done = run([tool("promtool"), "test", "rules", RULES_TEST.name], cwd=RULES_TEST.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    text = RULES_TEST.read_text()
    for alert in ("TcptuneCloseWaitGrowing", "TcptunePortPressure", "TcptuneSettingDrift"):
        assert f"alertname: {alert}\n        exp_alerts:\n          - exp_labels:" in text, alert


def test_promtool_fails_a_rule_test_that_does_not_hold(tmp_path: Path) -> None:
    """The rule tests can fail: the same series with the leak alert expected at 4 minutes,
    before its `for: 15m`, is refused."""
    shutil.copy(RULES, tmp_path / RULES.name)
    broken = RULES_TEST.read_text().replace(
        "      - eval_time: 20m\n        alertname: TcptuneCloseWaitGrowing",
        "      - eval_time: 4m\n        alertname: TcptuneCloseWaitGrowing",
    )
    assert broken != RULES_TEST.read_text()
    (tmp_path / RULES_TEST.name).write_text(broken)
    done = run([tool("promtool"), "test", "rules", RULES_TEST.name], cwd=tmp_path)
    assert done.returncode == 1 and "FAILED" in done.stdout + done.stderr


def test_the_rules_use_only_metrics_and_labels_tcptune_writes() -> None:
    text = RULES.read_text()
    used = set(re.findall(r"\btcptune_[a-z_]+\b", text))
    assert used == {
        "tcptune_close_wait_growth_per_minute",
        "tcptune_port_pressure_ratio",
        "tcptune_setting_in_sync",
        "tcptune_last_run_timestamp_seconds",
    }
    for name, matchers in re.findall(r"(tcptune_[a-z_]+)\{([^}]*)\}", text):
        for label in re.findall(r"(\w+)\s*[!=~]", matchers):
            assert label in metrics.METRICS[name][1], (name, label)


def test_docs_show_the_rule_file_as_it_is() -> None:
    assert f"```yaml\n{RULES.read_text()}```" in MONITORING.read_text()


# --- the systemd units ----------------------------------------------------------------------------


def unit_files(tmp_path: Path) -> list[str]:
    """The units as an operator installs them, with the template instantiated for a profile."""
    for unit in UNITS.iterdir():
        shutil.copy(unit, tmp_path / unit.name)
    for kind in ("service", "timer"):
        (tmp_path / f"tcptune-check@server-profile.{kind}").symlink_to(f"tcptune-check@.{kind}")
    return [
        "tcptune-metrics.service",
        "tcptune-metrics.timer",
        "tcptune-check@server-profile.service",
        "tcptune-check@server-profile.timer",
    ]


# systemd-analyze verify resolves a bare ExecStart name on systemd's fixed search path, as systemd
# does: a private mount namespace puts this tcptune at /usr/local/bin/tcptune, as the docs say.
ON_PATH = """
mount -t tmpfs tmpfs /usr/local/bin
ln -s "$1" /usr/local/bin/tcptune
shift
exec "$@"
"""


def analyze(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    assert TCPTUNE.is_file(), f"{TCPTUNE} is missing: install the package (make dev)"
    return run(
        ["unshare", "-m", "sh", "-c", ON_PATH, "-", str(TCPTUNE), tool("systemd-analyze"), *argv],
        cwd=tmp_path,
    )


def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path, netns) -> None:
    units = [f"./{name}" for name in unit_files(tmp_path)]
    done = analyze(tmp_path, "verify", "--man=no", *units)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stderr
    # and it does complain when something is wrong: a misspelt option, a command not found
    path = tmp_path / "tcptune-metrics.service"
    path.write_text(path.read_text().replace("ProtectSystem=strict", "ProtectSystem=stirct"))
    done = analyze(tmp_path, "verify", "--man=no", "./tcptune-metrics.service")
    assert "Failed to parse protect system value, ignoring: stirct" in done.stderr


def test_the_units_are_hardened(tmp_path: Path, netns) -> None:
    for name in unit_files(tmp_path):
        if name.endswith(".timer"):
            continue
        done = analyze(tmp_path, "security", "--offline=yes", f"./{name}")
        assert done.returncode == 0, done.stderr
        score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)[1])
        assert score <= 2.0, done.stdout  # systemd's scale: 0 safest, 10 unprotected


def settings(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (UNITS / unit).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.mark.parametrize("unit", ["tcptune-metrics.service", "tcptune-check@.service"])
def test_each_service_may_write_where_it_writes_and_nowhere_else(unit: str) -> None:
    found = settings(unit)
    argv = shlex.split(found["ExecStart"][0])
    output = Path(argv[argv.index("--output") + 1])
    assert found["ReadWritePaths"] == [str(output.parent)]
    assert found["ProtectSystem"] == ["strict"] and found["NoNewPrivileges"] == ["yes"]
    assert "PrivateNetwork" not in found  # the host's sockets and sysctls are the ones to read
    if unit == "tcptune-metrics.service":
        assert found["StateDirectory"] == [Path(rates.STATE_DIR).name]  # /var/lib/tcptune
        assert found["StateDirectoryMode"] == ["0700"]
        assert found["SuccessExitStatus"] == ["1"]  # findings are metrics, not a failed run
    else:
        assert "SuccessExitStatus" not in found  # drift (exit 1) fails the unit
        assert "StateDirectory" not in found
