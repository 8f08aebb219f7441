"""`tcptune sockets` at 100,000 TIME_WAIT sockets against the real kernel, in a private network
namespace (`unshare -n`): its counts per state equal those of `ss` and of the floor program
(bench/floor.c, the same dump counted in C), from netlink and from /proc alike, and its
port-pressure groups equal a count made socket by socket from `ss` output. Only the namespace's
own sysctls and loopback are touched. No timing is asserted here: speed is the benchmark's.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from conftest import SS_STATES, run_in_namespace

pytestmark = pytest.mark.netns

FLOOR_SOURCE = Path(__file__).resolve().parent.parent / "bench" / "floor.c"
LOW, HIGH = 30000, 40999  # the namespace's ip_local_port_range: part of each address's ports

SCRIPT = textwrap.dedent(
    """
    import json, os, socket, subprocess, sys, time
    from socket import AF_INET, AF_INET6

    floor, low, high = sys.argv[1], sys.argv[2], sys.argv[3]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
    for key, value in {"tcp_tw_reuse": "0", "tcp_max_tw_buckets": "400000",
                       "ip_local_port_range": f"{low} {high}"}.items():
        with open(f"/proc/sys/net/ipv4/{key}", "w") as handle:
            handle.write(value)

    def client_closes_first(family, server, sources, ports):
        # the client closes first and stays in TIME_WAIT; explicit ports: no port search
        listener = socket.socket(family)
        listener.bind(server)
        listener.listen(128)
        for source in sources:
            for port in ports:
                client = socket.socket(family)
                client.bind((source, port))
                client.connect(server)
                accepted, _ = listener.accept()
                client.close()
                accepted.close()
        listener.close()

    HOLDER = '''
    import socket, sys
    listener = socket.socket()
    listener.bind(("127.0.0.1", 81))
    listener.listen(1024)
    print("ready", flush=True)
    held = [listener.accept()[0] for _ in range(int(sys.argv[1]))]
    print("held", flush=True)
    sys.stdin.read()  # never closes its sockets; exits when the parent closes stdin
    '''
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "1000"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "ready\\n"
    clients = []
    for i in range(1000):
        client = socket.socket()
        client.bind(("127.2.0.1", 35000 + i))
        client.connect(("127.0.0.1", 81))
        clients.append(client)
    assert holder.stdout.readline() == "held\\n"
    for client in clients:
        client.close()  # CLOSE_WAIT in the holder, orphaned FIN_WAIT2 here
    keep = []
    server = socket.socket()
    server.bind(("127.0.0.1", 82))
    server.listen(128)
    for i in range(300):  # ESTABLISHED pairs, in the range
        keep.append(socket.create_connection(("127.0.0.1", 82), source_address=("127.3.0.1", 33000 + i)))
        keep.append(server.accept()[0])
    sources = [f"127.1.{n}.1" for n in range(4)]
    client_closes_first(AF_INET, ("127.0.0.1", 80), sources, range(20000, 45000))
    client_closes_first(AF_INET6, ("::1", 443), ["::1"], range(34000, 36000))
    time.sleep(0.3)  # let loopback finish every FIN exchange

    env = {k: v for k, v in os.environ.items() if k != "TCPTUNE_ROOT"}
    def tcptune(*argv):
        done = subprocess.run([sys.executable, "-m", "tcptune", "sockets", "--json",
                               "--top", "1000000", *argv],
                              capture_output=True, text=True, env=env, timeout=120)
        return {"code": done.returncode, "stderr": done.stderr, "doc": json.loads(done.stdout)}
    result = {
        "floor": json.loads(subprocess.run([floor], capture_output=True, text=True,
                                           check=True, timeout=120).stdout),
        "netlink": tcptune(),
        "proc": tcptune("--source", "proc"),
        "ss": subprocess.run(["ss", "-Htan"], capture_output=True, text=True,
                             timeout=120).stdout.splitlines(),
        "holder": holder.pid,
    }
    result["floor_after"] = json.loads(subprocess.run([floor], capture_output=True, text=True,
                                                      check=True, timeout=120).stdout)
    print(json.dumps(result))
    holder.stdin.close()
    holder.wait(timeout=30)
    """
)


def split_endpoint(text: str) -> tuple[str, int]:
    address, _, port = text.rpartition(":")
    return address.strip("[]"), int(port)


def brute_force(lines: list[str]) -> tuple[dict[str, int], list[tuple]]:
    """Per-state counts and port-pressure groups, one `ss -Htan` line at a time."""
    states = Counter()
    groups, time_wait = Counter(), Counter()
    for line in lines:
        state, _, _, local, remote = line.split()[:5]
        states[SS_STATES[state]] += 1
        local_address, port = split_endpoint(local)
        if state != "LISTEN" and LOW <= port <= HIGH:
            key = (local_address, *split_endpoint(remote))
            groups[key] += 1
            time_wait[key] += state == "TIME-WAIT"
    counts = {name: states[name] for name in SS_STATES.values()}
    return counts, sorted((*key, n, time_wait[key]) for key, n in groups.items())


def groups_of(doc: dict) -> list[tuple]:
    return sorted(
        (g["local_address"], g["remote_address"], g["remote_port"], g["sockets"], g["time_wait"])
        for g in doc["port_pressure"]["top"]
    )


@pytest.fixture(scope="module")
def floor(tmp_path_factory) -> str:
    """bench/floor.c, built as the benchmark builds it."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "a C compiler (gcc) is needed to build bench/floor.c"
    binary = tmp_path_factory.mktemp("floor") / "floor"
    subprocess.run([gcc, "-O2", "-o", str(binary), str(FLOOR_SOURCE)], check=True, timeout=120)
    return str(binary)


@pytest.fixture(scope="module")
def scale(netns, floor) -> dict:
    argv = ["-c", SCRIPT, floor, str(LOW), str(HIGH)]
    return run_in_namespace(["-n"], argv, timeout=600)


def test_the_table_did_not_change_while_it_was_read(scale) -> None:
    assert scale["floor"] == scale["floor_after"]
    assert scale["floor"]["TIME_WAIT"] == 100000 + 2000
    assert scale["floor"]["CLOSE_WAIT"] == 1000


def test_counts_per_state_equal_the_floor_and_ss(scale) -> None:
    floor = {k: v for k, v in scale["floor"].items() if k != "total"}
    counts, _ = brute_force(scale["ss"])
    for source in ("netlink", "proc"):
        run = scale[source]
        assert run["code"] in (0, 1), run["stderr"]
        assert run["doc"]["source"] == source and "Traceback" not in run["stderr"]
        assert run["doc"]["states"] == floor == counts
        assert run["doc"]["total"] == scale["floor"]["total"] == len(scale["ss"])


def test_port_pressure_groups_equal_a_count_socket_by_socket(scale) -> None:
    _, groups = brute_force(scale["ss"])
    assert len(groups) == 4 + 1 + 1 + 1  # four TIME_WAIT sources, IPv6, FIN_WAIT2, ESTABLISHED
    assert groups_of(scale["netlink"]["doc"]) == groups
    assert groups_of(scale["proc"]["doc"]) == groups
    pressure = scale["netlink"]["doc"]["port_pressure"]
    assert pressure["sockets"] == sum(g[3] for g in groups)
    assert pressure["groups"] == len(groups)


def test_the_close_wait_owner_is_named_at_scale(scale) -> None:
    for source in ("netlink", "proc"):
        (owner,) = scale[source]["doc"]["close_wait_owners"]
        assert owner["pid"] == scale["holder"] and owner["count"] == 1000
        assert owner["local_endpoints"] == [{"endpoint": "127.0.0.1:81", "count": 1000}]


SPOOF = textwrap.dedent(
    """
    import json, socket, struct, subprocess, sys
    from tcptune import census
    from tcptune.system import System

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 80))
    listener.listen(128)
    for port in range(20000, 23000):  # 3,000 TIME_WAIT: a dump of several buffers
        client = socket.socket()
        client.bind(("127.0.0.1", port))
        client.connect(("127.0.0.1", 80))
        accepted, _ = listener.accept()
        client.close()
        accepted.close()

    spoofer = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)
    spoofer.bind((0, 0))
    own = spoofer.getsockname()[0]
    sent = []
    tally = census.Tally(census.NETLINK, 1024, 65535)
    feed = tally.netlink_feeder(socket.AF_INET)

    def spoofing_feed(data):
        if not sent:  # after the first buffer: a forged end of dump to the dumping socket
            with open("/proc/net/netlink") as handle:
                rows = [line.split() for line in handle.readlines()[1:]]
            ports = [int(r[2]) for r in rows if r[1] == "4" and int(r[2]) not in (0, own)]
            done = struct.pack("=IHHIIi", 20, 3, 2, 1, 0, 0)
            for port in ports:
                spoofer.sendto(done, (port, 0))
            sent.extend(ports)
        return feed(data)

    System("/").sock_diag(socket.AF_INET, census.ALL_STATES, spoofing_feed)
    ss = subprocess.run(["ss", "-Htan"], capture_output=True, text=True, timeout=60).stdout
    print(json.dumps({"sent": sent, "states": tally.finish().states,
                      "time_wait": ss.count("TIME-WAIT")}))
    """
)


def test_a_forged_datagram_from_another_process_is_dropped(netns) -> None:
    """Another process (root in the namespace may send to a netlink port) sends a forged
    NLMSG_DONE to tcptune's socket during the dump: only the kernel's datagrams are counted."""
    result = run_in_namespace(["-n"], ["-c", SPOOF], timeout=300)
    assert result["sent"], "the dumping socket was not found in /proc/net/netlink"
    assert result["states"]["TIME_WAIT"] == result["time_wait"] == 3000
