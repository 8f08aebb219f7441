"""Processes with known sockets in network namespaces of their own, for the tests of --pid,
--netns and sockets --all-netns.

MAKER runs in the namespace (under `unshare -n`, or as a container's command): it sets the
sysctls it is given, makes TIME_WAIT sockets on the client side of loopback connections it closes
first, and CLOSE_WAIT sockets held by a child whose command name it chooses (its clients close:
FIN_WAIT2 orphans on the maker's side), then prints one JSON line and waits: until its stdin
closes ("stdin"), or until it is killed ("sleep", in a container). Only the namespace's own
loopback and sysctls are touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

from conftest import ss_state_counts

MAKER = r"""
import json, os, socket, subprocess, sys, time
time_wait, close_wait, comm, wait = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
for key, value in json.loads(sys.argv[5]).items():
    with open("/proc/sys/" + key.replace(".", "/"), "w") as handle:
        handle.write(value)
HOLDER = '''
import socket, sys
with open("/proc/self/comm", "w") as handle:
    handle.write(sys.argv[2])
listener = socket.socket()
listener.bind(("127.0.0.1", 5002))
listener.listen(1024)
print("ready", flush=True)
held = [listener.accept()[0] for _ in range(int(sys.argv[1]))]
print("held", flush=True)
sys.stdin.read()  # never closes its sockets; exits when the maker goes
'''
listener = socket.socket()
listener.bind(("127.0.0.1", 5000))
listener.listen(1024)
for i in range(time_wait):
    client = socket.socket()
    client.settimeout(10)
    client.bind(("127.0.0.1", 40000 + i))
    client.connect(("127.0.0.1", 5000))
    server, _ = listener.accept()
    client.close()  # the client closes first: TIME_WAIT on its side
    server.recv(1)
    server.close()
holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(close_wait), comm],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
assert holder.stdout.readline() == "ready\n"
clients = []
for i in range(close_wait):
    client = socket.socket()
    client.settimeout(10)
    client.bind(("127.0.0.4", 41000 + i))
    client.connect(("127.0.0.1", 5002))
    clients.append(client)
assert holder.stdout.readline() == "held\n"
for client in clients:
    client.close()  # CLOSE_WAIT in the holder, FIN_WAIT2 (orphaned) here
time.sleep(0.3)  # let loopback finish every FIN exchange
print(json.dumps({"maker": os.getpid(), "holder": holder.pid}), flush=True)
if wait == "stdin":
    sys.stdin.read()
else:
    while True:
        time.sleep(3600)
"""


@dataclass
class Target:
    """A maker running in a network namespace of its own, made by `unshare -n`."""

    process: subprocess.Popen
    pid: int  # the maker: the first process of the namespace
    holder: int  # the child holding the CLOSE_WAIT sockets
    comm: str

    @property
    def inode(self) -> int:
        return os.stat(f"/proc/{self.pid}/ns/net").st_ino

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def start_target(time_wait: int, close_wait: int, comm: str, sysctls: dict[str, str]) -> Target:
    """unshare -n: loopback up, then MAKER (exec'ed: the namespace's first process is it)."""
    process = subprocess.Popen(
        [
            "unshare",
            "-n",
            "sh",
            "-c",
            'ip link set lo up && exec "$0" "$@"',
            sys.executable,
            "-c",
            MAKER,
            str(time_wait),
            str(close_wait),
            comm,
            "stdin",
            json.dumps(sysctls),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, "the maker failed"
    made = json.loads(line)
    assert made["maker"] == process.pid  # unshare and sh exec: one process, one pid
    return Target(process=process, pid=process.pid, holder=made["holder"], comm=comm)


def inside(pid: int, *argv: str) -> str:
    """A command run inside the network namespace of `pid` (nsenter -n), its stdout."""
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def sysctl_inside(pid: int, key: str) -> str | None:
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "sysctl", "-n", key],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return " ".join(done.stdout.split()) if done.returncode == 0 else None


def ss_counts(pid: int) -> dict[str, int]:
    """Sockets per state as `ss -tan`, run inside the namespace of `pid`, counts them."""
    return ss_state_counts(inside(pid, "ss", "-Htan").splitlines())


def host_pid_of(inode: int, comm: str) -> int:
    """The pid, as the host sees it, of the process named `comm` in the namespace `inode`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}/ns/net").st_ino != inode:
                continue
            with open(f"/proc/{name}/comm") as handle:
                if handle.read().strip() == comm:
                    found.append(int(name))
        except OSError:
            continue
    assert len(found) == 1, found
    return found[0]


def host_values(keys: list[str]) -> dict[str, str]:
    """The values of the network namespace the tests run in (the host's), read directly."""
    values = {}
    for key in keys:
        with open("/proc/sys/" + key.replace(".", "/")) as handle:
            values[key] = " ".join(handle.read().split())
    return values
