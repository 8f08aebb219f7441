"""--format prometheus on fake trees: the exposition text (checked by the real `promtool check
metrics`), the bound on label cardinality, --output written atomically, the CLOSE_WAIT growth
state (its modes, its hostile contents, who may write it), --watch's growth, and what
`check --json` does not load. The real kernel and node_exporter: tests/test_metrics_netns.py."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import FakeMachine, as_nobody, modern_machine, run_cli
from test_cli_imports import loaded_by
from test_sockets import PROC_HEADER, V6, Sock, fake_sockets, proc_line

from tcptune import metrics, rates
from tcptune.census import Owner


def promtool(text: str) -> tuple[int, str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: run `make system-deps` (Debian package prometheus)")
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout + done.stderr


def close_wait(n: int, uid: int, first_inode: int = 0, port: int = 8080) -> list[Sock]:
    return [
        Sock(
            "CLOSE_WAIT",
            ("127.0.0.1", port),
            ("127.0.0.9", 40000 + uid % 500 + i),
            inode=first_inode + i if first_inode else 0,
            uid=uid,
        )
        for i in range(n)
    ]


def write_table(machine: FakeMachine, socks: list[Sock]) -> None:
    net = machine.root / "proc/net"
    net.mkdir(parents=True, exist_ok=True)
    (net / "tcp").write_text(PROC_HEADER + "".join(proc_line(i, s) for i, s in enumerate(socks)))
    (net / "tcp6").write_text(PROC_HEADER)


def samples(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


# --- the format ---------------------------------------------------------------------------------


def test_label_values_are_escaped_as_the_format_requires() -> None:
    assert metrics.escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert metrics.escape_label("}{,= \t\x1b é") == "}{,= \t\x1b é"  # only three need it
    assert [metrics.format_value(v) for v in (0, 37, 0.12, 1e20, float("nan"), float("inf"))] == [
        "0",
        "37",
        "0.12",
        "1e+20",  # beyond 2**53 a float is no longer an exact integer
        "NaN",
        "+Inf",
    ]


def test_every_metric_follows_the_naming_rules() -> None:
    for name, (kind, labels, text) in metrics.METRICS.items():
        assert name.startswith("tcptune_") and name == name.lower(), name
        assert name.endswith("_total") == (kind == metrics.COUNTER), name
        assert {"netns", "netns_owner"} <= set(labels) and list(labels) == sorted(labels), name
        assert text.endswith(".") and "\n" not in text and "\\" not in text, name


def test_a_series_must_carry_exactly_its_declared_labels() -> None:
    out = metrics.Exposition()
    with pytest.raises(AssertionError, match="declared"):
        out.add("tcptune_sockets", 1, state="LISTEN")  # netns left out
    assert out.text() == ""


# --- the CLOSE_WAIT growth state ------------------------------------------------------------------


def owner(pid: int | None, count: int, command: str = "app", uid: int = 1000) -> Owner:
    return Owner(pid=pid, command=command, cmdline=None, uid=uid, count=count, local=[], remote=[])


def snap(owners: list[Owner], at: float, boot: str = "b1", netns: str = "9") -> rates.Snapshot:
    return rates.snapshot(owners, sum(o.count for o in owners), time=at, boot_id=boot, netns=netns)


def test_growth_per_minute_between_two_snapshots() -> None:
    before = snap([owner(10, 5), owner(11, 40), owner(None, 2)], 1000.0)
    after = snap([owner(10, 17), owner(11, 40), owner(12, 3), owner(None, 1)], 1030.0)
    growth = rates.growth(before, after)
    assert growth is not None and growth.window == 30
    assert growth.per_owner == {
        ("10", "app", "1000"): 24.0,  # 12 more in half a minute
        ("11", "app", "1000"): 0.0,
        ("12", "app", "1000"): 6.0,  # new: it had none before
        ("unknown", "unknown", "1000"): -2.0,
    }
    assert growth.total == (61 - 47) * 2
    assert growth.ranked()[0][0] == ("10", "app", "1000")


@pytest.mark.parametrize(
    "before",
    [
        None,
        snap([owner(10, 5)], 1000.0, boot="another boot"),
        snap([owner(10, 5)], 1000.0, netns="another namespace"),
        snap([owner(10, 5)], 1030.0),  # the clock did not move forward
        snap([owner(10, 5)], 2000.0),
    ],
)
def test_no_growth_without_a_usable_baseline(before) -> None:
    assert rates.growth(before, snap([owner(10, 9)], 1030.0)) is None


def test_the_state_file_round_trips_and_keeps_the_largest_owners() -> None:
    many = [owner(pid, 1 if pid <= 50 else 5) for pid in range(1, rates.MAX_STATE_OWNERS + 51)]
    data = rates.to_json(snap(many, 1000.5))
    back = rates.from_json(data)
    assert len(back.owners) == rates.MAX_STATE_OWNERS and back.complete is False
    assert {int(pid) for pid, _, _ in back.owners} == set(range(51, rates.MAX_STATE_OWNERS + 51))
    # an owner left out of an incomplete state gets no growth; a kept one does
    growth = rates.growth(back, snap([owner(1, 1), owner(60, 9)], 1060.5))
    assert growth is not None and growth.per_owner == {("60", "app", "1000"): 4.0}
    small = snap([owner(10, 5, command='a"b\n')], 1.0)
    assert rates.from_json(rates.to_json(small)) == small


GOOD = json.loads(rates.to_json(snap([owner(10, 5)], 1000.0)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: b"not json", "not JSON"),
        (lambda d: b"\xff\xfe", "not JSON"),
        (lambda d: b"[" * 100000, "not JSON"),
        (lambda d: {**d, "format": 2}, "format 1"),
        (lambda d: {**d, "extra": 1}, "unexpected fields"),
        (lambda d: {**d, "time": "now"}, "time"),
        (lambda d: {**d, "time": float("inf")}, "time"),
        (lambda d: {**d, "complete": 1}, "complete"),
        (lambda d: {**d, "close_wait": -1}, "count"),
        (lambda d: {**d, "close_wait": True}, "count"),
        (lambda d: {**d, "netns": ["x"]}, "label"),
        (lambda d: {**d, "owners": [["1", "x", "0"]]}, "owner"),
        (lambda d: {**d, "owners": [["1", "x", "0", 1.5]]}, "count"),
        (lambda d: {**d, "owners": [["1", "x" * 300, "0", 1]]}, "label"),
        (lambda d: {**d, "owners": [["1", "x", "0", 1], ["1", "x", "0", 2]]}, "twice"),
        (lambda d: {**d, "owners": {"1": 2}}, "owners"),
        (lambda d: b" " * (rates.MAX_STATE_BYTES + 1), "larger than"),
    ],
)
def test_a_state_file_that_to_json_would_not_write_is_refused(change, message: str) -> None:
    changed = change(dict(GOOD))
    data = changed if isinstance(changed, bytes) else json.dumps(changed).encode()
    with pytest.raises(ValueError, match=message):
        rates.from_json(data)


# --- the command on fake trees --------------------------------------------------------------------


def test_sockets_prometheus_is_accepted_by_promtool_and_bounded_by_top(modern: FakeMachine) -> None:
    socks = (
        close_wait(9, 1001, first_inode=100)
        + close_wait(7, 1002, first_inode=200)
        + close_wait(5, 1003)  # held by no visible process: unknown, uid 1003
        + close_wait(3, 1004, first_inode=400)
        + close_wait(2, 1005, first_inode=500)
        + [Sock("TIME_WAIT", ("::1", 40001), ("::1", 443), family=V6)]
    )
    fake_sockets(
        modern,
        socks,
        {
            101: ("nginx", [100 + i for i in range(9)]),
            102: ('evil"\\name', [200 + i for i in range(7)]),
            104: ("small", [400, 401, 402]),
            105: ("tiny", [500, 501]),
        },
    )
    result = run_cli("--root", str(modern.root), "sockets", "--format", "prometheus", "--top", "3")
    assert result.code == 0, result.err
    code, said = promtool(result.out)
    assert code == 0, said
    owners = samples(result.out, "tcptune_close_wait_sockets")
    netns = 'netns="unknown",netns_owner="unknown"'  # a fake tree has no proc/self/ns/net
    assert owners == [
        f'tcptune_close_wait_sockets{{command="nginx",{netns},pid="101",uid="1001"}} 9',
        f'tcptune_close_wait_sockets{{command="evil\\"\\\\name",{netns},pid="102",uid="1002"}} 7',
        f'tcptune_close_wait_sockets{{command="unknown",{netns},pid="unknown",uid="1003"}} 5',
        f'tcptune_close_wait_sockets{{command="other",{netns},pid="other",uid=""}} 5',  # 3 + 2
    ]
    assert samples(result.out, "tcptune_port_pressure_ratio") == [
        f'tcptune_port_pressure_ratio{{local="::1",{netns},remote="[::1]:443"}} '
        + metrics.format_value(1 / 28232)
    ]
    assert "tcptune_close_wait_growth_per_minute" not in result.out  # no --output: no state
    assert not (modern.root / "var/lib/tcptune").exists()  # printing writes nothing


def test_format_json_and_text_are_the_old_outputs(modern: FakeMachine) -> None:
    write_table(modern, close_wait(3, 1000))
    root = ["--root", str(modern.root)]
    for command in (["sockets"], ["check"], ["check", "server-profile"]):
        json_flag = run_cli(*root, *command, "--json")
        json_format = run_cli(*root, *command, "--format", "json")
        assert (json_flag.code, json_flag.out) == (json_format.code, json_format.out)
        text = run_cli(*root, *command)
        assert run_cli(*root, *command, "--format", "text").out == text.out
        assert json_flag.out.startswith("{") and not text.out.startswith("{")


def test_check_and_check_profile_as_metrics(modern: FakeMachine, tmp_path: Path) -> None:
    (modern.root / "etc/sysctl.d").mkdir(parents=True)
    (modern.root / "etc/sysctl.d/60-site.conf").write_text("net.ipv4.tcp_fin_timeout = 25\n")
    modern.set("net.ipv4.tcp_fin_timeout", "25")
    profile = tmp_path / "site.toml"
    profile.write_text(
        'description = "d"\n[sysctl]\n"net.ipv4.tcp_fin_timeout" = 25\n'
        '"net.ipv4.tcp_tw_recycle" = 0\n"net.ipv4.tcp_keepalive_time" = 600\n'
    )
    root = ["--root", str(modern.root)]
    drift = run_cli(*root, "check", str(profile), "--format", "prometheus")
    assert drift.code == 1, drift.err  # keepalive_time drifts
    assert promtool(drift.out)[0] == 0
    assert samples(drift.out, "tcptune_setting_in_sync") == [
        'tcptune_setting_in_sync{key="net.ipv4.tcp_fin_timeout",netns="unknown",'
        'netns_owner="unknown",profile="site"} 1',
        'tcptune_setting_in_sync{key="net.ipv4.tcp_keepalive_time",netns="unknown",'
        'netns_owner="unknown",profile="site"} 0',
    ]  # tcp_tw_recycle, removed in 4.12, is skipped: no series
    persisted = samples(drift.out, "tcptune_setting_persisted")
    assert [line.rsplit(" ", 1)[1] for line in persisted] == ["1", "1", "0", "0"]
    assert 'key="net.ipv4.tcp_fin_timeout",loader="procps"' in persisted[0]
    plain = run_cli(*root, "check", "--format", "prometheus")
    assert plain.code == 0 and promtool(plain.out)[0] == 0
    assert samples(plain.out, "tcptune_findings")[0].startswith(
        'tcptune_findings{command="check",netns="unknown",netns_owner="unknown",profile="",'
        'severity="info"} '
    )


def test_output_is_atomic_and_keeps_the_growth_state(modern: FakeMachine) -> None:
    write_table(modern, close_wait(4, 1000))
    textfile = modern.root / "textfile"
    textfile.mkdir()
    target = textfile / "tcptune-sockets.prom"
    argv = ["--root", str(modern.root), "sockets", "--format", "prometheus", "--output"]
    old_umask = os.umask(0o077)  # the modes must not depend on it
    try:
        first = run_cli(*argv, str(target))
        write_table(modern, close_wait(7, 1000))
        time.sleep(0.05)
        second = run_cli(*argv, str(target))
    finally:
        os.umask(old_umask)
    assert (first.code, first.out, first.err) == (0, "", "")
    assert (second.code, second.out, second.err) == (0, "", "")
    assert sorted(os.listdir(textfile)) == ["tcptune-sockets.prom"]  # no temp file left
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    state = modern.root / "var/lib/tcptune"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "close-wait.json").stat().st_mode) == 0o600
    text = target.read_text()
    assert promtool(text)[0] == 0
    (window_line,) = samples(text, "tcptune_close_wait_growth_window_seconds")
    window = float(window_line.rsplit(" ", 1)[1])
    (rate_line, other) = samples(text, "tcptune_close_wait_growth_per_minute")
    assert 'pid="unknown",uid="1000"' in rate_line and other.endswith(" 0")
    assert float(rate_line.rsplit(" ", 1)[1]) * window / 60 == pytest.approx(3)


def test_a_corrupted_state_file_is_replaced_with_a_warning(modern: FakeMachine) -> None:
    write_table(modern, close_wait(2, 1000))
    state = modern.root / "var/lib/tcptune"
    state.mkdir(parents=True, mode=0o700)
    (state / "close-wait.json").write_text('{"format": 1, "time": "yesterday"}')
    target = modern.root / "out.prom"
    argv = ["--root", str(modern.root), "sockets", "--format", "prometheus", "--output"]
    result = run_cli(*argv, str(target))
    assert result.code == 0
    assert result.err.startswith("tcptune: warning: ignored ") and result.err.count("\n") == 1
    assert "CLOSE_WAIT growth starts again" in result.err
    assert rates.from_json((state / "close-wait.json").read_bytes()).close_wait == 2
    assert "tcptune_sockets{" in target.read_text()


def world_readable_machine() -> Path:
    """A fake machine in a directory uid 65534 can enter (pytest's tmp_path is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="tcptune-metrics-"))
    base.chmod(0o755)
    machine = modern_machine(base / "root")
    write_table(machine, close_wait(3, 1000))
    return base


def test_an_unprivileged_run_cannot_replace_roots_file(netns) -> None:
    import tcptune.cli.main
    import tcptune.cli.prometheus  # loaded before privileges are dropped

    base = world_readable_machine()
    try:
        textfile = base / "textfile"
        textfile.mkdir(mode=0o755)  # root's: others cannot write it
        previous = textfile / "tcptune.prom"
        previous.write_text("previous\n")
        mine = base / "mine"
        mine.mkdir()
        os.chown(mine, 65534, 65534)
        root = ["--root", str(base / "root"), "sockets", "--format", "prometheus", "--output"]
        tcptune.cli.main.main([*root, str(base / "as-root.prom")], stdout=io.StringIO())
        state = base / "root/var/lib/tcptune"
        assert stat.S_IMODE(state.stat().st_mode) == 0o700  # the run as root made it

        def attempt() -> dict:
            import contextlib

            results = {}
            for name, path in (("root's", previous), ("mine", mine / "t.prom")):
                err = io.StringIO()
                with contextlib.redirect_stderr(err):
                    code = tcptune.cli.main.main([*root, str(path)], stdout=io.StringIO())
                results[name] = [code, err.getvalue()]
            return results

        results = as_nobody(attempt)
        code, err = results["root's"]
        assert code == 3 and err.count("\n") == 1
        assert err.startswith(f"tcptune: error: cannot write {previous}: Permission denied")
        assert previous.read_text() == "previous\n"
        assert sorted(os.listdir(textfile)) == ["tcptune.prom"]
        # its own directory is fine; root's state directory is not: no growth, one warning
        code, err = results["mine"]
        assert code == 0
        assert err.startswith(f"tcptune: warning: cannot write {state}: Permission denied")
        assert err.endswith("CLOSE_WAIT growth left out\n") and err.count("\n") == 1
        written = (mine / "t.prom").read_text()
        assert "tcptune_sockets{" in written and "growth" not in written
    finally:
        shutil.rmtree(base)


def test_watch_shows_growth_per_owner_since_the_first_refresh(
    modern: FakeMachine, monkeypatch
) -> None:
    from tcptune.cli import sockets
    from tcptune.system import System

    clock = iter([100.0, 130.0])
    monkeypatch.setattr(sockets.time, "monotonic", lambda: next(clock))
    socks = close_wait(4, 1001, first_inode=100)
    fake_sockets(modern, socks, {4242: ("leaky", [100, 101, 102, 103, 104, 105])})
    system, first = System(modern.root), []
    before = sockets.watch_frame(system, "proc", 10, first)
    write_table(modern, close_wait(6, 1001, first_inode=100))
    after = sockets.watch_frame(system, "proc", 10, first)
    assert "PER MIN" not in before and "CLOSE_WAIT growth over" not in before
    header, row = [line.split() for line in after.splitlines() if line.startswith(("PID", "4242"))]
    assert header[:5] == ["PID", "COMMAND", "UID", "COUNT", "PER"]
    # the command is named with its arguments: "leaky (--serve)"
    assert row[:6] == ["4242", "leaky", "(--serve)", "1001", "6", "+4.0"]  # 2 more in 30 s
    assert "CLOSE_WAIT growth over the last 30 s: +4.0 sockets per minute" in after


def test_check_json_loads_no_metrics_code(modern: FakeMachine) -> None:
    for argv in (["check", "--json"], ["check", "--format", "json"]):
        code, modules = loaded_by("--root", str(modern.root), *argv)
        assert code == 0
        assert not {"tcptune.metrics", "tcptune.rates", "tcptune.cli.prometheus"} & set(modules)


@pytest.mark.parametrize("output", ["/", "..", "/tmp/.."])
def test_a_directory_given_as_output_is_refused_before_anything_is_written(
    modern: FakeMachine, output: str
) -> None:
    result = run_cli(
        "--root", str(modern.root), "check", "--format", "prometheus", "--output", output
    )
    assert result.code == 3 and result.out == ""
    assert result.err == (
        f"tcptune: error: {output} is not a regular file; refusing to replace it "
        "(give a file path ending in .prom)\n"
    )
