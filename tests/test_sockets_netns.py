"""`tcptune sockets` against the real kernel, inside private network namespaces (`unshare -n`).

A few hundred loopback sockets of known states are made in the namespace; tcptune's counts must
equal what `ss` reports, over netlink and over /proc alike, and the CLOSE_WAIT owner must be the
child process that holds them. Only the namespace's own sysctls and loopback are touched.
"""

from __future__ import annotations

import os
import textwrap

import pytest
from conftest import run_in_namespace, ss_state_counts

pytestmark = pytest.mark.netns

# Runs inside the namespace. Sockets are bound to explicit addresses and ports, so that every
# group and count below is known in advance.
SETUP = textwrap.dedent(
    """
    import json, os, socket, subprocess, sys, time
    from socket import AF_INET, AF_INET6

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
    with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as handle:
        handle.write("40000 40999")

    HOLDER = '''
    import socket, sys
    listener = socket.socket()
    listener.bind(("127.0.0.1", 5002))
    listener.listen(128)
    print("ready", flush=True)
    held = [listener.accept()[0] for _ in range(int(sys.argv[1]))]
    print("held", flush=True)
    sys.stdin.read()  # never closes its sockets; exits when the parent closes stdin
    '''

    def listener(family, address, port, backlog=128):
        sock = socket.socket(family)
        sock.bind((address, port))
        sock.listen(backlog)
        return sock

    def connect(family, local, remote):
        sock = socket.socket(family)
        sock.settimeout(10)
        sock.bind(local)
        sock.connect(remote)
        return sock

    def client_closes_first(family, source, ports, server, destination):
        for port in ports:
            client = connect(family, (source, port), destination)
            accepted, _ = server.accept()
            client.close()
            accepted.recv(1)
            accepted.close()

    keep = []
    v4 = listener(AF_INET, "127.0.0.1", 5000)
    v6 = listener(AF_INET6, "::1", 5001)
    keep += [v4, v6]
    # TIME_WAIT on the client side, in the ephemeral range: three groups
    client_closes_first(AF_INET, "127.0.0.1", range(40000, 40120), v4, ("127.0.0.1", 5000))
    client_closes_first(AF_INET, "127.0.0.2", range(40000, 40060), v4, ("127.0.0.1", 5000))
    client_closes_first(AF_INET6, "::1", range(40500, 40540), v6, ("::1", 5001))
    # TIME_WAIT on the server side (the server closes first); client ports outside the range
    for port in range(30000, 30030):
        client = connect(AF_INET, ("127.0.0.1", port), ("127.0.0.1", 5000))
        accepted, _ = v4.accept()
        accepted.close()
        client.recv(1)
        client.close()
    # ESTABLISHED pairs kept open
    for port in range(40200, 40225):
        keep.append(connect(AF_INET, ("127.0.0.3", port), ("127.0.0.1", 5000)))
        keep.append(v4.accept()[0])
    # CLOSE_WAIT held by a child process: it accepts and never closes; our side closes
    close_wait = int(sys.argv[2])
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(close_wait)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "ready\\n"
    clients = [connect(AF_INET, ("127.0.0.4", 40300 + i), ("127.0.0.1", 5002))
               for i in range(close_wait)]
    assert holder.stdout.readline() == "held\\n"
    for client in clients:
        client.close()  # -> CLOSE_WAIT in the holder, orphaned FIN_WAIT2 here
    # SYN_SENT: a listener whose accept queue is full drops further SYNs
    full = listener(AF_INET, "127.0.0.1", 5003, backlog=0)
    keep.append(full)
    for i in range(6):
        pending = socket.socket()
        pending.setblocking(False)
        pending.bind(("127.0.0.5", 30100 + i))
        pending.connect_ex(("127.0.0.1", 5003))
        keep.append(pending)
    time.sleep(0.3)  # let loopback finish every handshake and FIN exchange
    """
)

MEASURE = textwrap.dedent(
    """
    env = {k: v for k, v in os.environ.items() if k != "TCPTUNE_ROOT"}
    def tcptune(*argv):
        done = subprocess.run([sys.executable, "-m", "tcptune", "sockets", "--json", *argv],
                              capture_output=True, text=True, env=env, timeout=60)
        return {"code": done.returncode, "stderr": done.stderr, "doc": json.loads(done.stdout)}
    netlink = tcptune()
    proc = tcptune("--source", "proc")
    ss = subprocess.run(["ss", "-Htan"], capture_output=True, text=True, timeout=60).stdout
    with open(f"/proc/{holder.pid}/comm") as handle:
        comm = handle.read().strip()
    print(json.dumps({"netlink": netlink, "proc": proc, "ss": ss.splitlines(),
                      "holder": holder.pid, "comm": comm}))
    holder.stdin.close()
    holder.wait(timeout=30)
    """
)

# Drops to uid/gid 65534 in a forked child and runs the CLI in-process (the virtualenv's
# interpreter may live below a directory that user cannot enter, so it cannot be exec'ed).
AS_NOBODY = textwrap.dedent(
    """
    import io, shutil, textwrap
    import tcptune.cli.main, tcptune.cli.sockets, tcptune.sockdiag, tcptune.system
    os.environ.pop("TCPTUNE_ROOT", None)
    # One run as root first: what the command line imports on the way (click imports some of
    # its parts when first used) is loaded before this interpreter's files may become unreadable.
    tcptune.cli.main.main(["sockets", "--json"], stdout=io.StringIO())
    tcptune.cli.main.main(["sockets"], stdout=io.StringIO())  # the text form's modules too
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            as_json, as_text = io.StringIO(), io.StringIO()
            codes = [tcptune.cli.main.main(["sockets", "--json"], stdout=as_json),
                     tcptune.cli.main.main(["sockets"], stdout=as_text)]
            os.write(write_end, json.dumps({"codes": codes, "doc": json.loads(as_json.getvalue()),
                                            "text": as_text.getvalue()}).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        result = json.loads(pipe.read())
    os.waitpid(pid, 0)
    result["holder"] = holder.pid
    print(json.dumps(result))
    holder.stdin.close()
    holder.wait(timeout=30)
    """
)


def in_namespace(script: str, close_wait: int) -> dict:
    return run_in_namespace(["-n"], ["-c", SETUP + script, "-", str(close_wait)], timeout=120)


@pytest.fixture(scope="module")
def census(netns) -> dict:
    return in_namespace(MEASURE, close_wait=37)


def test_counts_equal_what_ss_reports_for_every_state(census) -> None:
    doc = census["netlink"]["doc"]
    assert census["netlink"]["code"] in (0, 1), census["netlink"]["stderr"]
    assert doc["source"] == "netlink" and doc["source_note"] is None
    assert doc["states"] == ss_state_counts(census["ss"])
    assert doc["total"] == len(census["ss"])
    states = doc["states"]
    assert states["TIME_WAIT"] == 120 + 60 + 40 + 30
    assert states["CLOSE_WAIT"] == 37
    assert states["FIN_WAIT2"] == 37 and doc["orphans"] == 37 and doc["fin_wait2_orphans"] == 37
    assert states["LISTEN"] == 4
    assert states["SYN_SENT"] >= 1  # the accept queue of the full listener holds only a few
    assert "Traceback" not in census["netlink"]["stderr"]


def test_netlink_and_proc_readers_agree(census) -> None:
    from_netlink = dict(census["netlink"]["doc"])
    from_proc = dict(census["proc"]["doc"])
    assert from_proc["source"] == "proc"
    for doc in (from_netlink, from_proc):
        for varying in ("source", "owner_scan"):  # processes on the host come and go
            doc.pop(varying)
    assert from_netlink == from_proc


def test_the_close_wait_owner_is_the_child_with_the_exact_count(census) -> None:
    doc = census["netlink"]["doc"]
    (owner,) = doc["close_wait_owners"]
    assert owner["pid"] == census["holder"]
    assert owner["command"] == census["comm"]
    assert owner["count"] == 37 and owner["uid"] == os.geteuid()
    assert owner["local_endpoints"] == [{"endpoint": "127.0.0.1:5002", "count": 37}]
    assert doc["close_wait_unknown"] == 0
    (finding,) = [f for f in doc["findings"] if f["key"] == "CLOSE_WAIT"]
    assert finding["severity"] == "warning"
    assert f"(pid {census['holder']}) holds 37 CLOSE_WAIT sockets" in finding["message"]
    orphans = [f for f in doc["findings"] if f["key"] == "net.ipv4.tcp_fin_timeout"]
    assert "37 orphaned FIN_WAIT2" in orphans[0]["message"]


def test_port_pressure_groups(census) -> None:
    pressure = census["netlink"]["doc"]["port_pressure"]
    assert pressure["range"] == [40000, 40999] and pressure["usable"] == 1000
    groups = [
        (g["local_address"], g["remote_address"], g["remote_port"], g["sockets"], g["time_wait"])
        for g in pressure["top"]
    ]
    assert groups == [
        ("127.0.0.1", "127.0.0.1", 5000, 120, 120),
        ("127.0.0.2", "127.0.0.1", 5000, 60, 60),
        ("::1", "::1", 5001, 40, 40),
        ("127.0.0.4", "127.0.0.1", 5002, 37, 0),
        ("127.0.0.3", "127.0.0.1", 5000, 25, 0),
    ]
    assert pressure["sockets"] == 120 + 60 + 40 + 37 + 25
    assert pressure["top"][0]["percent"] == 12.0


def test_without_root_owners_are_unknown_and_it_says_why(netns) -> None:
    result = in_namespace(AS_NOBODY, close_wait=12)
    doc = result["doc"]
    assert result["codes"] == [0, 0]  # 12 CLOSE_WAIT: a warning, and the command still works
    assert doc["states"]["CLOSE_WAIT"] == 12 and doc["states"]["TIME_WAIT"] == 250
    assert doc["source"] == "netlink"
    (owner,) = doc["close_wait_owners"]
    assert owner["pid"] is None and owner["command"] is None
    assert owner["uid"] == 0 and owner["count"] == 12
    assert owner["reason"].startswith("not running as root")
    assert doc["close_wait_unknown"] == 12
    assert doc["owner_scan"]["root"] is False and doc["owner_scan"]["processes_denied"] > 0
    assert "unknown owners: not running as root" in result["text"]
    assert "12 CLOSE_WAIT sockets of uid 0" in result["text"]
