"""`tcptune sockets --json` at scale, against `ss` and against the floor of the kernel's own dump.

Two cases, each in a private network namespace this script creates (`unshare -n`, needs root;
its sysctls and loopback traffic vanish with it, the host's are never touched):

- 100,000 TIME_WAIT + 5,000 CLOSE_WAIT: goals tcptune / ss <= 1.2 and peak RSS <= 100 MiB; the
  ratio to the floor is stated.
- 1,000,000 TIME_WAIT + 5,000 CLOSE_WAIT: goals tcptune / ss <= 1.0, tcptune / floor <= 1.5 and
  peak RSS <= 64 MiB.

"ss" is `ss -tan` + `ss -tanp state close-wait` (what an operator runs for the same answers).
The floor is bench/floor.c: the same NETLINK_SOCK_DIAG dump as tcptune's, counting states only.
The TIME_WAIT sockets are made by bench/make_time_wait.c (a million in Python would take longer
than the 60 s a TIME_WAIT socket lives). Both are built here with the C compiler (gcc, or $CC).
Figures are medians of interleaved runs (background load hits every side alike); wall time is
the goal's measure, and CPU time (user + system, from wait4) is printed beside it because it
does not depend on what else the machine runs. Peak RSS is tcptune's process alone (wait4).
Counts: tcptune's per-state counts must equal the floor's, read just before and just after.
Also shown: each side's run before any socket exists (its fixed cost: for tcptune the
interpreter, Typer and the imports) and what the sockets add, tcptune's over the floor's; one
frame of `sockets --watch` (the census and the findings, in one process, five times: its median
and the process's peak RSS after them); one run of `--source proc`.
With --pyroute2, also times a pyroute2 DiagSocket dump of the 100,000, if pyroute2 is installed.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLOSE_WAIT = 5_000
INSIDE = "TCPTUNE_BENCH_NETNS"
HERE = Path(__file__).resolve().parent
# time_wait sockets -> (rounds, goal tcptune/ss, goal tcptune/floor or None, goal peak RSS MiB)
CASES = {
    100_000: (7, 1.2, None, 100),
    1_000_000: (5, 1.0, 1.5, 64),
}
MAKERS = 4  # processes making TIME_WAIT sockets, one server port each (80, 81, ...)
CW_SERVER = ("127.0.0.1", 79)
PORTS = range(20000, 45000)  # 25,000 explicit client ports per source address


def set_sysctl(key: str, value: str) -> None:
    with open("/proc/sys/" + key.replace(".", "/"), "w") as handle:
        handle.write(value)


def hold_close_wait(listener: socket.socket, count: int, ready: int, release: int) -> None:
    """Child process: accept `count` connections and never close them; once the clients close,
    each one sits in CLOSE_WAIT here. Exits when the parent closes `release`."""
    held = []
    for _ in range(count):
        conn, _ = listener.accept()
        held.append(conn)
    os.write(ready, b"ok")
    os.read(release, 1)  # returns when the parent closes its end (or exits)
    os._exit(0)


def make_close_wait(count: int) -> tuple[int, int]:
    """`count` CLOSE_WAIT sockets held by a child process; returns (child pid, release fd)."""
    listener = socket.socket()
    listener.bind(CW_SERVER)
    listener.listen(4096)
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(release_w)
        hold_close_wait(listener, count, ready_w, release_r)
    os.close(ready_w)
    os.close(release_r)
    listener.close()
    clients = []
    for i in range(count):
        client = socket.socket()
        client.bind((f"127.2.0.{1 + i // len(PORTS)}", PORTS[i % len(PORTS)]))
        client.connect(CW_SERVER)
        clients.append(client)
    if os.read(ready_r, 2) != b"ok":
        raise SystemExit("the CLOSE_WAIT holder failed")
    for client in clients:
        client.close()  # the child never closes its side: CLOSE_WAIT there
    return pid, release_w


def run(argv: list[str], stdout=subprocess.DEVNULL) -> tuple[float, float, int, int, str]:
    """Wall time, CPU time (user + system), exit status, peak RSS (KiB) and output of one
    command."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL, text=True)
    output = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    return (
        elapsed,
        usage.ru_utime + usage.ru_stime,
        os.waitstatus_to_exitcode(status),
        usage.ru_maxrss,
        output,
    )


def tcptune_argv(*extra: str) -> list[str]:
    script = Path(sys.executable).with_name("tcptune")
    if script.exists():
        return [str(script), "sockets", "--json", *extra]
    return [sys.executable, "-m", "tcptune", "sockets", "--json", *extra]


def in_process(code: str) -> tuple[float, int, int] | None:
    """Run a snippet that prints 'seconds sockets'; add its peak RSS (KiB). None if it fails."""
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return None
    seconds, count = output.split()
    return float(seconds), int(count), usage.ru_maxrss


def watch_frames() -> tuple[float, int, int] | None:
    """What one refresh of `sockets --watch` costs: the census, owners and findings (look()),
    five times in one process; the median frame, the sockets, the process's peak RSS."""
    code = (
        "import statistics, time\n"
        "from tcptune.cli.sockets import look\n"
        "from tcptune.system import System\n"
        "frames = []\n"
        "for _ in range(5):\n"
        "    start = time.perf_counter()\n"
        "    report = look(System('/'), 'auto', 10)\n"
        "    frames.append(time.perf_counter() - start)\n"
        "print(statistics.median(frames), report.facts.census.total)\n"
    )
    return in_process(code)


def pyroute2_dump() -> tuple[float, int, int] | None:
    """One pyroute2 dump of both families (time, sockets, peak KiB), or None without pyroute2."""
    code = (
        "import socket, time\n"
        "from pyroute2 import DiagSocket\n"
        "start = time.perf_counter()\n"
        "with DiagSocket() as ds:\n"
        "    ds.bind()\n"
        "    n = sum(len(ds.get_sock_stats(family=f, states=0xFFE))\n"
        "            for f in (socket.AF_INET, socket.AF_INET6))\n"
        "print(time.perf_counter() - start, n)\n"
    )
    return in_process(code)


def floor_counts(floor: str) -> dict[str, int]:
    _, _, code, _, output = run([floor], stdout=subprocess.PIPE)
    if code != 0:
        raise SystemExit(f"{floor} failed with exit {code}")
    return json.loads(output)


def inside(time_wait: int, floor: str, maker: str, compare_pyroute2: bool) -> int:
    rounds, ss_goal, floor_goal, rss_goal = CASES[time_wait]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
    # Inside the namespace only. tcp_tw_reuse=0: no connect() may take over a TIME_WAIT; a cap
    # well above the sockets made; a wide range so every bound client port is ephemeral.
    set_sysctl("net.ipv4.tcp_tw_reuse", "0")
    set_sysctl("net.ipv4.tcp_max_tw_buckets", str(2 * time_wait))
    set_sysctl("net.ipv4.ip_local_port_range", "1024 65535")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < CLOSE_WAIT + 1000:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} is below {CLOSE_WAIT + 1000}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, CLOSE_WAIT + 1000), hard))

    # The fixed cost of each side, before any socket exists: start-up (for tcptune the
    # interpreter, Typer and its imports) and an empty dump.
    empty: dict[str, list[float]] = {"tcptune": [], "floor": []}
    for _ in range(rounds):
        empty["tcptune"].append(run(tcptune_argv())[0])
        empty["floor"].append(run([floor])[0])

    start = time.perf_counter()
    holder, release = make_close_wait(CLOSE_WAIT)
    subprocess.run([maker, str(time_wait), str(MAKERS)], check=True, timeout=300)
    made = time.perf_counter() - start

    tcptune, ss_all = tcptune_argv(), ["ss", "-tan"]
    ss_close_wait = ["ss", "-tanp", "state", "close-wait"]
    before = floor_counts(floor)
    doc = json.loads(run(tcptune, stdout=subprocess.PIPE)[4])
    after = floor_counts(floor)
    states = doc["states"]
    owners = doc["close_wait_owners"]
    print(
        f"\n{time_wait:,} TIME_WAIT + {CLOSE_WAIT:,} CLOSE_WAIT, made in {made:.1f} s; "
        f"owner {owners[0]['command']} pid {owners[0]['pid']} x {owners[0]['count']} "
        f"(holder pid {holder})"
    )
    counts_equal = before == after and states == {k: v for k, v in before.items() if k != "total"}
    print(
        f"counts: tcptune {states['TIME_WAIT']} TIME_WAIT, {states['CLOSE_WAIT']} CLOSE_WAIT, "
        f"{doc['total']} in all; floor {before['TIME_WAIT']}, {before['CLOSE_WAIT']}, "
        f"{before['total']}: {'equal' if counts_equal else 'DIFFERENT'} "
        f"(every state; the floor read just before and just after)"
    )
    # A connection or two of a million may not end in TIME_WAIT (the kernel's choice, not
    # tcptune's); what is measured is what is there, as long as tcptune and the floor agree.
    if not counts_equal or states["TIME_WAIT"] < time_wait * 0.999:
        raise SystemExit(f"unexpected census: {states}")
    if states["TIME_WAIT"] != time_wait:
        print(f"({time_wait - states['TIME_WAIT']} of the {time_wait:,} not in TIME_WAIT)")
    if states["CLOSE_WAIT"] != CLOSE_WAIT:
        raise SystemExit(f"unexpected census: {states}")
    if owners[0]["pid"] != holder or owners[0]["count"] != CLOSE_WAIT:
        raise SystemExit(f"unexpected owners: {owners}")

    for argv in (tcptune, ss_all, ss_close_wait, [floor]):  # warm the page and bytecode caches
        run(argv)
    sides: dict[str, list[tuple[float, float]]] = {"tcptune": [], "ss": [], "floor": []}
    rss = []
    for _ in range(rounds):  # interleaved: background load hits every side alike
        elapsed, cpu, code, maxrss, _ = run(tcptune)
        if code not in (0, 1):
            raise SystemExit(f"tcptune sockets --json failed with exit {code}")
        sides["tcptune"].append((elapsed, cpu))
        rss.append(maxrss)
        first, second = run(ss_all), run(ss_close_wait)
        sides["ss"].append((first[0] + second[0], first[1] + second[1]))
        elapsed, cpu, *_ = run([floor])
        sides["floor"].append((elapsed, cpu))
    frame = watch_frames()
    proc = run(tcptune_argv("--source", "proc"))
    pyroute2 = pyroute2_dump() if compare_pyroute2 else None
    left = floor_counts(floor)["TIME_WAIT"]
    os.close(release)
    os.waitpid(holder, 0)

    wall = {k: statistics.median(w for w, _ in v) * 1000 for k, v in sides.items()}
    cpu = {k: statistics.median(c for _, c in v) * 1000 for k, v in sides.items()}
    names = {
        "tcptune": "tcptune sockets --json",
        "ss": "ss -tan + ss -tanp state close-wait",
        "floor": "floor (bench/floor.c)",
    }
    for key, name in names.items():
        print(f"{name:<37} median {wall[key]:7.1f} ms  (CPU {cpu[key]:6.1f} ms) over {rounds}")
    ok = True
    for key, goal in (("ss", ss_goal), ("floor", floor_goal)):
        ratio, cpu_ratio = wall["tcptune"] / wall[key], cpu["tcptune"] / cpu[key]
        verdict = "no goal at this scale"
        if goal is not None:
            verdict = f"goal <= {goal}: {'ok' if ratio <= goal else 'MISSED'}"
            ok &= ratio <= goal
        print(f"tcptune / {key:<27} {ratio:7.2f}  (CPU {cpu_ratio:.2f}; {verdict})")
    fixed = {k: statistics.median(v) * 1000 for k, v in empty.items()}
    marginal = (wall["tcptune"] - fixed["tcptune"]) / (wall["floor"] - fixed["floor"])
    print(
        f"with no socket yet: tcptune {fixed['tcptune']:.1f} ms, floor {fixed['floor']:.1f} ms; "
        f"what the sockets add, tcptune / floor: {marginal:.2f} (for information)"
    )
    peak = max(rss) / 1024
    ok &= peak <= rss_goal and counts_equal
    print(
        f"tcptune peak RSS                      {peak:7.1f} MiB "
        f"(goal <= {rss_goal}: {'ok' if peak <= rss_goal else 'MISSED'})"
    )
    if frame:
        seconds, total, frame_rss = frame
        print(
            f"--watch frame (census, owners, findings; median of 5 in one process) "
            f"{seconds * 1000:.1f} ms for {total} sockets, peak RSS {frame_rss / 1024:.1f} MiB"
        )
    print(
        f"--source proc (one run)               {proc[0] * 1000:7.1f} ms  (CPU "
        f"{proc[1] * 1000:.1f} ms), peak RSS {proc[3] / 1024:.1f} MiB"
    )
    print(f"TIME_WAIT still present at the end: {left}")
    if compare_pyroute2:
        if pyroute2 is None:
            print("pyroute2 DiagSocket: not available (pip install pyroute2 to compare)")
        else:
            seconds, count, peak_kib = pyroute2
            print(
                f"pyroute2 DiagSocket in-process {seconds * 1000:8.1f} ms, peak RSS "
                f"{peak_kib / 1024:6.1f} MiB for {count} sockets"
            )
    return 0 if ok else 1


def build(directory: Path) -> tuple[str, str]:
    compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not compiler:
        raise SystemExit("bench_sockets: needs a C compiler (gcc) to build bench/floor.c")
    built = []
    for name in ("floor", "make_time_wait"):
        binary = directory / name
        subprocess.run(
            [compiler, "-O2", "-Wall", "-o", str(binary), str(HERE / f"{name}.c")],
            check=True,
            timeout=120,
        )
        built.append(str(binary))
    return built[0], built[1]


def main() -> int:
    compare = "--pyroute2" in sys.argv[1:]
    if os.environ.get(INSIDE):
        time_wait, floor, maker = os.environ[INSIDE].split(":", 2)
        return inside(int(time_wait), floor, maker, compare)
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ss"):
        print("bench_sockets: needs root, unshare (util-linux) and ss (iproute2)", file=sys.stderr)
        return 3
    print(
        f"machine: {os.cpu_count()} cores (nproc), Linux {platform.release()}, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f} at the start"
    )
    status = 0
    with tempfile.TemporaryDirectory(prefix="tcptune-bench-") as directory:
        floor, maker = build(Path(directory))
        for time_wait in CASES:  # each in a fresh namespace: the last one's sockets are gone
            done = subprocess.run(
                ["unshare", "-n", sys.executable, __file__, *sys.argv[1:]],
                env={**os.environ, INSIDE: f"{time_wait}:{floor}:{maker}"},
                timeout=900,
            )
            status |= done.returncode != 0
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
