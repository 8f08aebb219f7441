"""Facts of the knowledge base measured on the running kernel, each in a fresh private network
namespace (`unshare -n`): values are written to that namespace's own /proc/sys, traffic stays on
its loopback, and the host's sysctls are only read. docs/kernel-facts.md records the results and the
kernel version they were measured on."""

from __future__ import annotations

import json
import textwrap

import pytest
from conftest import run_in_namespace

from tcptune import keys

pytestmark = pytest.mark.netns

# Runs inside the namespace; argv[1] names the scenario, argv[2] its JSON arguments.
INSIDE = textwrap.dedent(
    """
    import errno, json, socket, struct, subprocess, sys, time

    def write(key, value):
        with open("/proc/sys/" + key.replace(".", "/"), "w") as handle:
            handle.write(value)

    def read(key):
        with open("/proc/sys/" + key.replace(".", "/")) as handle:
            return " ".join(handle.read().split())

    def tcp_ext():
        lines = open("/proc/net/netstat").read().splitlines()
        for names, values in zip(lines[::2], lines[1::2]):
            if names.startswith("TcpExt:"):
                return dict(zip(names.split()[1:], map(int, values.split()[1:])))
        return {}

    def sockstat_tw():
        for line in open("/proc/net/sockstat"):
            if line.startswith("TCP:"):
                words = line.split()
                return dict(zip(words[1::2], map(int, words[2::2])))["tw"]

    class OnePort:
        # ip_local_port_range narrowed to one port, so connect() must reuse or fail.
        def __init__(self, port, server=("127.0.0.1", 5555), family=socket.AF_INET):
            write("net.ipv4.ip_local_port_range", f"{port} {port}")
            self.port, self.family = port, family
            self.listener = socket.socket(family)
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind(server)
            self.listener.listen(16)
            self.target = (server[0] if family == socket.AF_INET else server[0], server[1])

        def connect_and_close(self, bind=False, target=None):
            # One connection that this side closes first: it leaves a TIME_WAIT here.
            client = socket.socket(self.family)
            try:
                if bind:
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    client.bind(("127.0.0.1", self.port))
                client.connect(target or self.target)
            except OSError as err:
                client.close()
                return err.errno
            server, _ = self.listener.accept()
            client.close()
            server.recv(1)
            server.close()
            time.sleep(0.05)
            return 0

        def seconds_until_reuse(self, limit, target=None):
            start = time.monotonic()
            while time.monotonic() - start < limit:
                if self.connect_and_close(target=target) == 0:
                    return time.monotonic() - start
                time.sleep(0.02)
            return None

    def syn_tsvals(count):
        # TSval of the SYNs of `count` loopback connections, read off lo with a packet socket.
        capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        capture.bind(("lo", 0))
        capture.settimeout(0.5)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        held = []
        for _ in range(count):
            client = socket.create_connection(("127.0.0.1", port))
            held += [client, listener.accept()[0]]
        seen = {}
        while True:
            try:
                frame = capture.recv(65535)
            except socket.timeout:
                break
            ip = frame[14:]
            tcp = ip[(ip[0] & 15) * 4:]
            source, dest = struct.unpack("!HH", tcp[:4])
            if ip[9] != 6 or dest != port or tcp[13] & 0x12 != 0x02:
                continue
            options, i = tcp[20:(tcp[12] >> 4) * 4], 0
            while i < len(options) and options[i] != 0:
                if options[i] == 1:
                    i += 1
                    continue
                if options[i] == 8:
                    seen[source] = struct.unpack("!I", options[i + 2:i + 6])[0]
                i += options[i + 1]
        for sock in held:
            sock.close()
        return list(seen.values())

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    scenario, args = sys.argv[1], json.loads(sys.argv[2])
    out = {}

    if scenario == "reuse-delay":
        write("net.ipv4.tcp_tw_reuse", "1")
        for index, delay in enumerate(args):
            write("net.ipv4.tcp_tw_reuse_delay", str(delay))
            one = OnePort(40000 + 10 * index, ("127.0.0.1", 5550 + index))
            one.connect_and_close()  # the TIME_WAIT starts now (plus the 50 ms pause)
            waited = one.seconds_until_reuse(6)
            out[str(delay)] = None if waited is None else waited + 0.05
        write("net.ipv4.tcp_tw_reuse", "0")
        write("net.ipv4.tcp_tw_reuse_delay", "1")
        one = OnePort(40100, ("127.0.0.1", 5560))
        one.connect_and_close()
        out["reuse_off"] = one.seconds_until_reuse(2)

    elif scenario == "reuse-paths":
        write("net.ipv4.tcp_tw_reuse", "0")
        # bind() then connect(): takes the TIME_WAIT 4-tuple over whatever tcp_tw_reuse says.
        one = OnePort(40200, ("127.0.0.1", 5570))
        one.connect_and_close(bind=True)
        before = tcp_ext()["TWRecycled"]
        out["bind_with_reuse_0"] = one.connect_and_close(bind=True)
        out["bind_recycled"] = tcp_ext()["TWRecycled"] - before
        # The automatic port with tcp_tw_reuse=1: counted in the same counter.
        write("net.ipv4.tcp_tw_reuse", "1")
        write("net.ipv4.tcp_tw_reuse_delay", "1")
        one = OnePort(40210, ("127.0.0.1", 5571))
        one.connect_and_close()
        before = tcp_ext()["TWRecycled"]
        out["auto_seconds"] = one.seconds_until_reuse(2)
        out["auto_recycled"] = tcp_ext()["TWRecycled"] - before
        # A TIME_WAIT from a connection without timestamps: never reused, by either path.
        write("net.ipv4.tcp_timestamps", "0")
        one = OnePort(40220, ("127.0.0.1", 5572))
        one.connect_and_close(bind=True)
        out["no_ts_auto"] = one.seconds_until_reuse(1.5)
        out["no_ts_bind"] = one.connect_and_close(bind=True)

    elif scenario == "reuse-loopback":
        write("net.ipv4.tcp_tw_reuse", "2")
        write("net.ipv4.tcp_tw_reuse_delay", "1")
        subprocess.run(["ip", "addr", "add", "10.9.9.9/32", "dev", "lo"], check=True)
        cases = [
            ("127.0.0.1", socket.AF_INET, ("127.0.0.1", 5581), ("127.0.0.1", 5581)),
            ("::ffff:127.0.0.1", socket.AF_INET6, ("::", 5582), ("::ffff:127.0.0.1", 5582)),
            ("10.9.9.9 on lo", socket.AF_INET, ("10.9.9.9", 5583), ("10.9.9.9", 5583)),
        ]
        for index, (name, family, server, target) in enumerate(cases):
            one = OnePort(40300 + 10 * index, server, family)
            out[name] = [one.connect_and_close(target=target),
                         one.seconds_until_reuse(1, target=target)]

    elif scenario == "fin-wait2-in-tw":
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        held = []
        for timeout in args:
            write("net.ipv4.tcp_fin_timeout", str(timeout))
            before = sockstat_tw()
            client = socket.create_connection(listener.getsockname())
            held.append(listener.accept()[0])  # the server never closes: client in FIN_WAIT2
            client.close()  # and orphaned: no process holds it any more
            time.sleep(0.3)
            out[str(timeout)] = sockstat_tw() - before

    elif scenario == "nested":
        # Change values here, then create a namespace from inside this one.
        for key, value in args.items():
            write(key, value)
        out["outer"] = {key: read(key) for key in args}
        inner = subprocess.run(["unshare", "-n", sys.executable, "-c", sys.argv[3], "read",
                                json.dumps(list(args))], capture_output=True, text=True,
                               check=True, timeout=60)
        out["inner"] = json.loads(inner.stdout)
        available = read("net.ipv4.tcp_available_congestion_control").split()
        allowed = read("net.ipv4.tcp_allowed_congestion_control").split()
        restricted = [name for name in available if name not in allowed]
        if restricted:
            try:
                write("net.ipv4.tcp_congestion_control", restricted[0])
                out["restricted"] = 0
            except OSError as err:
                out["restricted"] = err.errno

    elif scenario == "read":
        out = {key: read(key) for key in args}

    elif scenario == "accepts":
        for key, value in args:
            try:
                write(key, value)
                out[f"{key}={value}"] = read(key)
            except OSError as err:
                out[f"{key}={value}"] = errno.errorcode[err.errno]

    elif scenario == "timestamps":
        for mode in ("2", "1"):
            write("net.ipv4.tcp_timestamps", mode)
            out[mode] = syn_tsvals(6)

    elif scenario == "fastopen":
        for value in args:
            write("net.ipv4.tcp_fastopen", str(value))
            listener = socket.socket()  # no TCP_FASTOPEN socket option
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            before = tcp_ext().get("TCPFastOpenPassive", 0)
            for _ in range(3):
                client = socket.socket()
                client.sendto(b"x", 0x20000000, listener.getsockname())  # MSG_FASTOPEN
                server, _ = listener.accept()
                server.recv(1)
                server.close()
                client.close()
            out[str(value)] = tcp_ext().get("TCPFastOpenPassive", 0) - before
            listener.close()

    print(json.dumps(out))
    """
)


def inside(scenario: str, args: object = None) -> dict:
    return run_in_namespace(["-n"], ["-c", INSIDE, scenario, json.dumps(args), INSIDE], timeout=120)


def host_value(key: str) -> str:
    with open("/proc/sys/" + key.replace(".", "/")) as handle:  # read only
        return " ".join(handle.read().split())


def test_reuse_delay_counts_from_entering_time_wait(netns) -> None:
    """tcp_twsk_unique: reuse_thresh = tw_entry_stamp + tcp_tw_reuse_delay. The wait follows the
    delay (2 s, then 0.2 s), which the pre-6.14 rule (the next second after the peer's last
    timestamp: 0 to 1 s) could not give; with tcp_tw_reuse=0 the port never comes back."""
    out = inside("reuse-delay", [2000, 200])
    assert 1.8 <= out["2000"] <= 3.5, out
    assert out["200"] <= 0.8, out
    assert out["reuse_off"] is None, out
    assert "entering TIME-WAIT" in keys.KEYS["net.ipv4.tcp_tw_reuse_delay"].summary


def test_reuse_needs_timestamps_and_bind_path_ignores_the_sysctl(netns) -> None:
    out = inside("reuse-paths")
    # bind() then connect() took the TIME_WAIT 4-tuple over with tcp_tw_reuse=0 ...
    assert out["bind_with_reuse_0"] == 0, out
    # ... and TWRecycled counts it, as it counts the automatic path.
    assert out["bind_recycled"] == 1, out
    assert out["auto_seconds"] is not None and out["auto_recycled"] == 1, out
    # Without timestamps on the old connection: no reuse at all (EADDRNOTAVAIL on bind+connect).
    assert out["no_ts_auto"] is None, out
    assert out["no_ts_bind"] == 99, out


def test_reuse_2_covers_v4_mapped_loopback_not_other_addresses_on_lo(netns) -> None:
    out = inside("reuse-loopback")
    assert out["127.0.0.1"][0] == 0 and out["127.0.0.1"][1] is not None, out
    assert out["::ffff:127.0.0.1"][0] == 0 and out["::ffff:127.0.0.1"][1] is not None, out
    assert out["10.9.9.9 on lo"][0] == 0 and out["10.9.9.9 on lo"][1] is None, out
    assert "::ffff:127.0.0.0/104" in keys.KEYS["net.ipv4.tcp_tw_reuse"].values["2"]


def test_sockstat_tw_counts_fin_wait2_orphans_only_in_their_last_60_s(netns) -> None:
    """__tcp_close: an orphan with more than TCP_TIMEWAIT_LEN to go stays a full socket."""
    out = inside("fin-wait2-in-tw", [120, 30])
    assert out == {"120": 0, "30": 1}


def test_new_namespace_copies_host_buffers_and_congestion_control(netns) -> None:
    changed = {
        "net.ipv4.tcp_rmem": "4096 65536 1000000",
        "net.ipv4.tcp_wmem": "4096 16384 2000000",
        "net.ipv4.tcp_congestion_control": "reno",
        "net.ipv4.tcp_fin_timeout": "33",
    }
    out = inside("nested", changed)
    assert out["outer"] == changed
    for key in ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.ipv4.tcp_congestion_control"):
        assert out["inner"][key] == host_value(key), key  # the host's, not its parent's
        assert "host" in keys.KEYS[key].default_note
    if host_value("net.ipv4.tcp_congestion_control") != "reno":
        assert out["inner"]["net.ipv4.tcp_congestion_control"] != "reno"
    assert out["inner"]["net.ipv4.tcp_fin_timeout"] == "60"  # others start at the kernel default
    if "restricted" in out:  # an available algorithm the host does not allow
        assert out["restricted"] == 1  # EPERM


def test_keepalive_time_and_intvl_accept_zero(netns) -> None:
    out = inside(
        "accepts",
        [
            ["net.ipv4.tcp_keepalive_time", "0"],
            ["net.ipv4.tcp_keepalive_intvl", "0"],
            ["net.ipv4.tcp_keepalive_time", "-5"],
            ["net.ipv4.tcp_timestamps", "3"],
            ["net.ipv4.tcp_timestamps", "256"],
        ],
    )
    assert out["net.ipv4.tcp_keepalive_time=0"] == "0"
    assert out["net.ipv4.tcp_keepalive_intvl=0"] == "0"
    assert out["net.ipv4.tcp_keepalive_time=-5"] == "-5"  # not range-checked at all
    assert out["net.ipv4.tcp_timestamps=3"] == "3"  # a u8 with no bounds: 0..255
    assert out["net.ipv4.tcp_timestamps=256"] == "EINVAL"
    assert keys.KEYS["net.ipv4.tcp_keepalive_time"].minimum == 0


def test_tw_recycle_is_gone(netns) -> None:
    out = inside("accepts", [["net.ipv4.tcp_tw_recycle", "0"]])
    assert out == {"net.ipv4.tcp_tw_recycle=0": "ENOENT"}


def test_timestamp_offset_mode_2_has_none_and_mode_1_adds_one(netns) -> None:
    out = inside("timestamps")
    plain, offset = out["2"], out["1"]
    assert len(plain) == 6 and len(offset) == 6, out
    assert max(plain) - min(plain) < 1000, out  # one clock, in ms, over well under a second
    # An offset is added (far from the plain clock, modulo 2^32) per connection or per address
    # pair, depending on the kernel (95a22caee396, 28ee1b746f49, 165573e41f2f).
    for value in offset:
        distance = min((value - plain[0]) % 2**32, (plain[0] - value) % 2**32)
        assert distance > 10_000, out


def test_fastopen_0x400_enables_listeners_without_the_option(netns) -> None:
    out = inside("fastopen", [0x3, 0x403])
    assert out[str(0x3)] == 0, out
    assert out[str(0x403)] >= 1, out
