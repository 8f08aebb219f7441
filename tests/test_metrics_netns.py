"""The metrics end to end, with real components, inside private network and mount namespaces.

Known sockets are made in the namespace (those of tests/test_sockets_netns.py, plus a program that
leaks CLOSE_WAIT under a hostile command name); the commands of the systemd units in
integrations/systemd/ write their .prom files into a temporary textfile directory; Debian's
prometheus-node-exporter, started on the namespace's loopback with only the textfile collector,
serves them; the test reads /metrics and finds every tcptune series with the value that `ss`,
`ss -s`, `nstat` and `sysctl` give. `promtool check metrics` accepts each file. The namespace has
its own tmpfs over /var/lib/tcptune (the CLOSE_WAIT growth state) and the sysctl.d directories.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import textwrap
import time
from pathlib import Path

import pytest
from conftest import run_in_namespace, ss_state_counts
from test_sockets_netns import SETUP

pytestmark = pytest.mark.netns

UNITS = Path(__file__).resolve().parent.parent / "integrations/systemd"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"  # what the units write into
# A command name with every character the exposition format escapes, and braces.
HOSTILE_COMM = 'leak"y\\x\nz}{'

NAMESPACE = textwrap.dedent(
    """
    import shlex, shutil, tempfile, textwrap, urllib.request
    from inside_namespace import isolate

    commands = json.loads(sys.argv[3])
    isolate()  # tmpfs over /run, the sysctl.d directories and /var/lib/tcptune
    with open("/etc/sysctl.d/50-site.conf", "w") as handle:
        handle.write("net.ipv4.tcp_keepalive_time = 600\\nnet.ipv4.tcp_rfc1337 = 0\\n")
    subprocess.run(["sysctl", "-qw", "net.ipv4.tcp_keepalive_time=600"], check=True, timeout=30)

    LEAKY = '''
    import socket, sys
    with open("/proc/self/comm", "wb") as handle:
        handle.write(sys.argv[1].encode())
    listener = socket.socket()
    listener.bind(("127.0.0.1", 5010))
    listener.listen(128)
    print("ready", flush=True)
    held = []
    for line in sys.stdin:  # accept N more, never close one
        held += [listener.accept()[0] for _ in range(int(line))]
        print("held", flush=True)
    '''
    leaky = subprocess.Popen([sys.executable, "-c", textwrap.dedent(LEAKY), sys.argv[4]],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert leaky.stdout.readline() == "ready\\n"

    def leak(count, first_port):
        clients = [connect(AF_INET, ("127.0.0.6", first_port + i), ("127.0.0.1", 5010))
                   for i in range(count)]
        leaky.stdin.write(f"{count}\\n")
        leaky.stdin.flush()
        assert leaky.stdout.readline() == "held\\n"
        for client in clients:
            client.close()  # -> CLOSE_WAIT in the leaky program
        time.sleep(0.3)

    env = {k: v for k, v in os.environ.items() if k != "TCPTUNE_ROOT"}
    def run(argv):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
        return {"code": done.returncode, "out": done.stdout, "err": done.stderr}
    def tcptune(*argv):
        return run([sys.executable, "-m", "tcptune", *argv])

    textfile = tempfile.mkdtemp(prefix="tcptune-textfile-")
    os.chmod(textfile, 0o755)
    def unit_command(name):
        return [a.replace(sys.argv[5], textfile) for a in commands[name]]

    leak(5, 40600)
    first = tcptune(*unit_command("sockets"))
    with open(os.path.join(textfile, "tcptune-sockets.prom")) as handle:
        first_file = handle.read()
    time.sleep(1.0)
    leak(12, 40700)
    second = tcptune(*unit_command("sockets"))
    # What the kernel shows right after, through other tools
    ss = run(["ss", "-Htan"])["out"].splitlines()
    users = run(["ss", "-Htanp", "state", "close-wait"])["out"]
    summary = run(["ss", "-s"])["out"]
    nstat = json.loads(run(["nstat", "-asz", "--json"])["out"])["kernel"]
    sockets_json = json.loads(tcptune("sockets", "--json")["out"])
    check = tcptune(*unit_command("check"))
    plain = tcptune("check", "--format", "prometheus", "--output",
                    os.path.join(textfile, "tcptune-check.prom"))
    profile = json.loads(tcptune("profiles", "show", "server-profile", "--json")["out"])
    check_json = json.loads(tcptune("check", "server-profile", "--json")["out"])
    live = {key: " ".join(run(["sysctl", "-n", key])["out"].split())
            for key in profile["sysctl"]}
    with open(f"/proc/{leaky.pid}/comm") as handle:
        leaky_comm = handle.read().strip()
    with open("/var/lib/tcptune/close-wait.json") as handle:
        state = json.load(handle)
    state_modes = [oct(os.stat(p).st_mode & 0o7777)
                   for p in ("/var/lib/tcptune", "/var/lib/tcptune/close-wait.json")]
    files = {}
    for name in sorted(os.listdir(textfile)):
        path = os.path.join(textfile, name)
        with open(path) as handle:
            text = handle.read()
        checked = subprocess.run(["promtool", "check", "metrics"], input=text,
                                 capture_output=True, text=True, timeout=60)
        files[name] = {"text": text, "mode": oct(os.stat(path).st_mode & 0o7777),
                       "promtool": [checked.returncode, checked.stdout + checked.stderr]}

    exporter = subprocess.Popen(
        ["prometheus-node-exporter", "--web.listen-address=127.0.0.1:9100",
         "--collector.disable-defaults", "--collector.textfile",
         f"--collector.textfile.directory={textfile}", "--web.disable-exporter-metrics"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    scraped, deadline = None, time.monotonic() + 20
    while scraped is None and time.monotonic() < deadline and exporter.poll() is None:
        try:
            with urllib.request.urlopen("http://127.0.0.1:9100/metrics", timeout=2) as reply:
                scraped = reply.read().decode()
        except OSError:
            time.sleep(0.1)
    exporter.terminate()
    exporter_err = exporter.communicate(timeout=30)[1]

    print(json.dumps({
        "first": first, "first_file": first_file, "second": second, "check": check,
        "plain": plain, "ss": ss, "users": users, "summary": summary, "nstat": nstat,
        "sockets_json": sockets_json, "profile": profile["sysctl"], "check_json": check_json,
        "live": live, "holder": holder.pid, "leaky": leaky.pid, "leaky_comm": leaky_comm,
        "state": state, "state_modes": state_modes, "files": files, "scraped": scraped,
        "exporter_err": exporter_err, "textfile": textfile,
    }))
    shutil.rmtree(textfile)
    holder.stdin.close()
    leaky.stdin.close()
    holder.wait(timeout=30)
    leaky.wait(timeout=30)
    """
)


def exec_start(unit: str) -> list[str]:
    """The arguments after `tcptune` in a unit's ExecStart."""
    (line,) = [
        line for line in (UNITS / unit).read_text().splitlines() if line.startswith("ExecStart=")
    ]
    argv = shlex.split(line.removeprefix("ExecStart="))
    assert argv[0] == "tcptune", line
    return argv[1:]


# --- reading the exposition format ----------------------------------------------------------------

SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def parse_labels(text: str) -> dict[str, str]:
    """name="value",... with the format's escapes (\\\\, \\", \\n) undone."""
    labels, i = {}, 0
    while i < len(text):
        equals = text.index("=", i)
        name = text[i:equals]
        assert text[equals + 1] == '"', text
        i, value = equals + 2, []
        while text[i] != '"':
            if text[i] == "\\":
                value.append(ESCAPES[text[i + 1]])
                i += 2
            else:
                value.append(text[i])
                i += 1
        labels[name] = "".join(value)
        i += 1
        if i < len(text):
            assert text[i] == ",", text
            i += 1
    return labels


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples per metric name; HELP and TYPE lines are checked to come before their samples."""
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    typed = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.fullmatch(line)
        assert match, line
        name, labels, value = match.groups()
        assert name in typed, f"{name}: sample before its TYPE line"
        series.setdefault(name, []).append((parse_labels(labels or ""), float(value)))
    return series


def one(series, name: str, **labels: str) -> float:
    found = [
        v for got, v in series.get(name, []) if all(got.get(k) == w for k, w in labels.items())
    ]
    assert len(found) == 1, (name, labels, series.get(name))
    return found[0]


# --- the run ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scraped(netns) -> dict:
    for tool in ("prometheus-node-exporter", "promtool", "ss", "nstat"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make system-deps` (Debian packages)")
    commands = {
        "sockets": exec_start("tcptune-metrics.service"),
        "check": [a.replace("%i", "server-profile") for a in exec_start("tcptune-check@.service")],
    }
    started = time.monotonic()
    result = run_in_namespace(
        ["-n", "-m"],
        ["-c", SETUP + NAMESPACE, "-", "37", json.dumps(commands), HOSTILE_COMM, TEXTFILE_DIR],
        timeout=180,
    )
    result["seconds"] = time.monotonic() - started
    result["metrics"] = parse(result["scraped"] or "")
    return result


def test_node_exporter_serves_every_file_tcptune_wrote(scraped) -> None:
    assert scraped["scraped"], scraped["exporter_err"]
    metrics = scraped["metrics"]
    assert one(metrics, "node_textfile_scrape_error") == 0, scraped["exporter_err"]
    files = {labels["file"] for labels, _ in metrics["node_textfile_mtime_seconds"]}
    assert {Path(f).name for f in files} == {
        "tcptune-sockets.prom",
        "tcptune-check-server-profile.prom",
        "tcptune-check.prom",
    }
    for name, written in scraped["files"].items():
        assert written["mode"] == "0o644", name  # node_exporter reads it as its own user
        assert written["promtool"][0] == 0, (name, written["promtool"][1])
    assert scraped["first"]["code"] == 0 and scraped["first"]["err"] == "", scraped["first"]
    assert scraped["second"]["code"] == 0 and scraped["second"]["err"] == "", scraped["second"]


def test_states_equal_what_ss_reports(scraped) -> None:
    metrics = scraped["metrics"]
    counts = ss_state_counts(scraped["ss"])
    served = {labels["state"]: value for labels, value in metrics["tcptune_sockets"]}
    assert served == counts
    assert counts["CLOSE_WAIT"] == 37 + 5 + 12 and counts["TIME_WAIT"] == 250
    (netns,) = {labels["netns"] for labels, _ in metrics["tcptune_sockets"]}
    assert netns.isdigit()
    # every series of every file describes that namespace
    for name, samples in metrics.items():
        if name.startswith("tcptune_"):
            assert {labels["netns"] for labels, _ in samples} == {netns}, name


def test_time_wait_buckets_and_counters_equal_ss_and_nstat(scraped) -> None:
    metrics = scraped["metrics"]
    timewait = int(re.search(r"timewait (\d+)", scraped["summary"])[1])
    assert one(metrics, "tcptune_time_wait_buckets_used") == timewait
    assert one(metrics, "tcptune_time_wait_buckets_max") == int(
        scraped["sockets_json"]["sysctl"]["net.ipv4.tcp_max_tw_buckets"]
    )
    nstat = scraped["nstat"]
    assert nstat["TcpExtTW"] > 0
    for metric, counter in (
        ("tcptune_tcpext_tw_total", "TcpExtTW"),
        ("tcptune_tcpext_tw_killed_total", "TcpExtTWKilled"),
        ("tcptune_tcpext_tw_recycled_total", "TcpExtTWRecycled"),
        ("tcptune_tcpext_time_wait_overflow_total", "TcpExtTCPTimeWaitOverflow"),
    ):
        assert one(metrics, metric) == nstat[counter], metric


def test_close_wait_owners_equal_ss_with_the_hostile_name_intact(scraped) -> None:
    metrics = scraped["metrics"]
    per_pid: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+),fd=", scraped["users"]):
        per_pid[pid] = per_pid.get(pid, 0) + 1
    assert per_pid == {str(scraped["holder"]): 37, str(scraped["leaky"]): 17}
    served = {
        labels["pid"]: (labels["command"], value)
        for labels, value in metrics["tcptune_close_wait_sockets"]
    }
    assert scraped["leaky_comm"] == HOSTILE_COMM
    assert served[str(scraped["leaky"])] == (HOSTILE_COMM, 17)
    assert served[str(scraped["holder"])][1] == 37
    assert served["other"] == ("other", 0)
    assert len(served) == 3


def test_port_pressure_equals_the_groups_ss_shows(scraped) -> None:
    groups: dict[tuple[str, str], int] = {}
    for line in scraped["ss"]:
        state, _, _, local, peer = line.split()[:5]
        address, _, port = local.rpartition(":")
        if state != "LISTEN" and 40000 <= int(port) <= 40999:
            key = (address.strip("[]"), peer)
            groups[key] = groups.get(key, 0) + 1
    largest = sorted(groups.items(), key=lambda item: -item[1])[:10]
    served = {
        (labels["local"], labels["remote"]): value
        for labels, value in scraped["metrics"]["tcptune_port_pressure_ratio"]
    }
    assert served == {key: count / 1000 for key, count in largest}  # 40000-40999: 1000 ports
    assert served[("127.0.0.1", "127.0.0.1:5000")] == 0.12


def test_close_wait_growth_between_two_runs_names_the_leak(scraped) -> None:
    first = parse(scraped["first_file"])
    assert "tcptune_close_wait_growth_per_minute" not in first  # no previous run yet
    metrics = scraped["metrics"]
    window = one(metrics, "tcptune_close_wait_growth_window_seconds")
    assert 1.0 <= window < 30
    growth = {
        labels["pid"]: value for labels, value in metrics["tcptune_close_wait_growth_per_minute"]
    }
    leaked = growth[str(scraped["leaky"])]
    assert leaked * window / 60 == pytest.approx(12)  # 12 more CLOSE_WAIT in `window` seconds
    assert growth[str(scraped["holder"])] == 0 and growth["other"] == 0
    assert max(growth, key=growth.get) == str(scraped["leaky"])
    state = scraped["state"]
    assert state["close_wait"] == 54 and state["complete"] is True
    assert [str(scraped["leaky"]), HOSTILE_COMM, "0", 17] in state["owners"]
    assert scraped["state_modes"] == ["0o700", "0o600"]


def test_check_profile_series_equal_sysctl_and_the_files_at_boot(scraped) -> None:
    metrics = scraped["metrics"]
    assert scraped["check"]["code"] == 1  # drift: the unit fails, as systemctl --failed shows
    in_sync = {
        labels["key"]: value
        for labels, value in metrics["tcptune_setting_in_sync"]
        if labels["profile"] == "server-profile"
    }
    expected = {
        key: float(scraped["live"][key] == " ".join(str(target).split()))
        for key, target in scraped["profile"].items()
    }
    assert in_sync == expected
    assert in_sync["net.ipv4.tcp_keepalive_time"] == 1 and in_sync["net.ipv4.tcp_rfc1337"] == 0
    persisted = {
        (labels["key"], labels["loader"]): value
        for labels, value in metrics["tcptune_setting_persisted"]
    }
    # 50-site.conf persists keepalive_time = 600 and overrides rfc1337 with 0; no file sets the rest
    assert persisted == {
        (key, loader): float(key == "net.ipv4.tcp_keepalive_time")
        for key in scraped["profile"]
        for loader in ("procps", "systemd")
    }
    findings = {
        labels["severity"]: value
        for labels, value in metrics["tcptune_findings"]
        if labels["command"] == "check" and labels["profile"] == "server-profile"
    }
    shown = scraped["check_json"]["findings"]
    assert findings == {s: sum(f["severity"] == s for f in shown) for s in findings}
    assert set(findings) == {"info", "warning", "error"}
    sockets = {
        labels["severity"]: value
        for labels, value in metrics["tcptune_findings"]
        if labels["command"] == "sockets"
    }
    found = scraped["sockets_json"]["findings"]
    assert sockets == {s: sum(f["severity"] == s for f in found) for s in sockets}
    assert sockets["warning"] >= 2  # two programs holding 10 or more CLOSE_WAIT each
    runs = {
        (labels["command"], labels["profile"]): value
        for labels, value in metrics["tcptune_last_run_timestamp_seconds"]
    }
    assert set(runs) == {("sockets", ""), ("check", "server-profile"), ("check", "")}
    assert all(abs(value - time.time()) < 600 for value in runs.values())
    assert scraped["plain"]["code"] in (0, 1) and scraped["plain"]["err"] == ""
