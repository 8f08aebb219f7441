"""`tcptune sockets --all-netns` over 100 network namespaces holding 1,000 TCP sockets each.

Target: the median of `tcptune sockets --all-netns --json` (the whole command: start-up, finding
the namespaces, entering each, counting, naming the owners, the JSON) under 2 s. Needs root: this
script creates the namespaces itself (unshare(CLONE_NEWNET), one after the other, each with a
`sleep` in it so that /proc/*/ns/net finds it), and in each makes, on its own loopback, 700
TIME_WAIT, 150 CLOSE_WAIT (held by this process), their 150 orphaned FIN_WAIT2 peers and one
listener. Every namespace, its sysctls and its traffic vanish when the script ends; the host's
are never touched.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

NAMESPACES = 100
TIME_WAIT = 700
CLOSE_WAIT = 150
ROUNDS = 5
TARGET_SECONDS = 2.0
CLONE_NEWNET = 0x40000000
SERVER = ("127.0.0.1", 80)
CLOSE_WAIT_SERVER = ("127.0.0.1", 81)
LIBC = ctypes.CDLL(None, use_errno=True)


def check(result: int) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def fill_namespace(held: list[socket.socket]) -> None:
    """In the namespace this process is in now: TIME_WAIT on the client side (it closes first),
    and CLOSE_WAIT on accepted sockets this process keeps while their clients close."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
    listener = socket.socket()
    listener.bind(SERVER)
    listener.listen(1024)
    for i in range(TIME_WAIT):
        client = socket.socket()
        client.bind(("127.0.0.1", 20000 + i))
        client.connect(SERVER)
        server, _ = listener.accept()
        client.close()
        server.close()
    listener.close()
    keeper = socket.socket()
    keeper.bind(CLOSE_WAIT_SERVER)
    keeper.listen(1024)
    held.append(keeper)
    clients = []
    for i in range(CLOSE_WAIT):
        client = socket.socket()
        client.bind(("127.0.0.2", 30000 + i))
        client.connect(CLOSE_WAIT_SERVER)
        clients.append(client)
        held.append(keeper.accept()[0])
    for client in clients:
        client.close()  # -> CLOSE_WAIT on the accepted side, FIN_WAIT2 (an orphan) here


def tcptune_argv() -> list[str]:
    script = Path(sys.executable).with_name("tcptune")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "tcptune"]
    return [*base, "sockets", "--all-netns", "--json"]


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    return time.perf_counter() - start, done


def main() -> int:
    if os.geteuid() != 0 or not shutil.which("ip"):
        print("bench_all_netns: needs root and ip (iproute2)", file=sys.stderr)
        return 3
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = NAMESPACES * (CLOSE_WAIT + 2) + 1000
    if hard != resource.RLIM_INFINITY and hard < need:
        print(f"bench_all_netns: RLIMIT_NOFILE hard limit {hard} is below {need}", file=sys.stderr)
        return 3
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    held: list[socket.socket] = []
    sleepers: list[subprocess.Popen] = []
    made: dict[str, int] = {}  # namespace inode -> the sleep in it
    start = time.perf_counter()
    try:
        for _ in range(NAMESPACES):
            check(LIBC.unshare(CLONE_NEWNET))
            fill_namespace(held)
            sleeper = subprocess.Popen(["sleep", "600"])  # in this namespace: /proc finds it
            sleepers.append(sleeper)
            made[str(os.stat("/proc/self/ns/net").st_ino)] = sleeper.pid
        check(LIBC.setns(home, CLONE_NEWNET))
        setup = time.perf_counter() - start
        time.sleep(0.3)  # let loopback finish every FIN exchange
        argv = tcptune_argv()
        timed(argv)  # warm the page and bytecode caches
        times = []
        for _ in range(ROUNDS):
            elapsed, done = timed(argv)
            if done.returncode not in (0, 1):
                raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
            times.append(elapsed)
        documents = json.loads(done.stdout)
        ours = [d for d in documents if d["netns"]["inode"] in made]
        if len(ours) != NAMESPACES:
            raise SystemExit(f"found {len(ours)} of the {NAMESPACES} namespaces")
        for doc in ours:
            states, owner = doc["states"], doc["netns"]["owner"]
            if states["CLOSE_WAIT"] != CLOSE_WAIT or states["TIME_WAIT"] < TIME_WAIT * 0.99:
                raise SystemExit(f"unexpected census in {doc['netns']['inode']}: {states}")
            if owner["pid"] != made[doc["netns"]["inode"]] or owner["command"] != "sleep":
                raise SystemExit(f"unexpected owner: {owner}")
            (cw_owner,) = doc["close_wait_owners"]
            if cw_owner["pid"] != os.getpid() or cw_owner["count"] != CLOSE_WAIT:
                raise SystemExit(f"unexpected CLOSE_WAIT owner: {cw_owner}")
        sockets = sum(d["total"] for d in ours)
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait(timeout=30)
        for sock in held:
            sock.close()
        os.close(home)
    median = statistics.median(times)
    ok = median < TARGET_SECONDS
    print(
        f"machine: {platform.node()}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    print(
        f"made {NAMESPACES} namespaces, {sockets} sockets in them, in {setup:.1f} s "
        f"({len(documents)} namespaces on the machine)"
    )
    print(
        f"tcptune sockets --all-netns --json  median {median * 1000:7.1f} ms over {ROUNDS} runs "
        f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}; target < "
        f"{TARGET_SECONDS:g} s: {'ok' if ok else 'OVER TARGET'})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
