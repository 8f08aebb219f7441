"""Run inside `unshare -n -m` by tests/test_apply_netns.py: scenarios against the real kernel and the
real sysctl loaders, with tmpfs over every sysctl.d directory, /etc/sysctl.conf and
/var/lib/tcptune, so the host's configuration is never read or written. Prints one JSON document.

Usage: python inside_namespace.py SCENARIO
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CONF_DIRS = ["/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d"]
KEY = "net.ipv4.tcp_fin_timeout"
SYSTEMD_SYSCTL = next(
    (
        p
        for p in ("/usr/lib/systemd/systemd-sysctl", "/lib/systemd/systemd-sysctl")
        if os.path.exists(p)
    ),
    None,
)


def sh(*argv: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60, **kwargs)


def isolate() -> None:
    """Private mounts: empty sysctl.d directories, an empty /etc/sysctl.conf, empty state."""
    sh("mount", "--make-rprivate", "/")
    sh("mount", "-t", "tmpfs", "tmpfs", "/run")  # this namespace's own /run
    os.makedirs("/run/sysctl.d")
    for directory in CONF_DIRS:
        if directory != "/run/sysctl.d" and os.path.isdir(directory):
            sh("mount", "-t", "tmpfs", "tmpfs", directory)
    os.makedirs("/run/tcptune-test")
    Path("/run/tcptune-test/empty.conf").write_text("")
    if os.path.exists("/etc/sysctl.conf"):
        sh("mount", "--bind", "/run/tcptune-test/empty.conf", "/etc/sysctl.conf")
    if os.path.isdir("/var/lib/tcptune"):
        sh("mount", "-t", "tmpfs", "tmpfs", "/var/lib/tcptune")
    else:
        sh("mount", "-t", "tmpfs", "tmpfs", "/var/lib")  # only inside this namespace
    sh("ip", "link", "set", "lo", "up")
    # Nothing of the host's configuration is visible any more.
    for directory in [*CONF_DIRS, "/lib/sysctl.d"]:
        if os.path.isdir(directory):
            assert os.listdir(directory) == [], directory
    assert (
        Path("/etc/sysctl.conf").read_text() == "" if os.path.exists("/etc/sysctl.conf") else True
    )


def tcptune(*argv: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TCPTUNE_ROOT"}
    done = subprocess.run(
        [sys.executable, "-m", "tcptune", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return {
        "code": done.returncode,
        "out": done.stdout,
        "err": done.stderr,
        "doc": json.loads(done.stdout) if done.stdout.startswith("{") else None,
    }


def sysctl_values(keys: list[str]) -> dict[str, str | None]:
    result = {}
    for key in keys:
        done = sh("sysctl", "-n", key, check=False)
        result[key] = " ".join(done.stdout.split()) if done.returncode == 0 else None
    return result


def load_in_fresh_netns(loader: list[str], keys: list[str]) -> dict:
    """Run a real loader in a new network namespace (kernel defaults), then read the keys."""
    code = (
        "import json, subprocess, sys\n"
        f"done = subprocess.run({loader!r}, capture_output=True, text=True, timeout=60)\n"
        "values = {}\n"
        f"for key in {keys!r}:\n"
        "    r = subprocess.run(['sysctl', '-n', key], capture_output=True, text=True, timeout=30)\n"
        "    values[key] = ' '.join(r.stdout.split()) if r.returncode == 0 else None\n"
        "print(json.dumps({'code': done.returncode, 'stderr': done.stderr, 'values': values}))\n"
    )
    done = sh("unshare", "-n", sys.executable, "-c", code)
    return json.loads(done.stdout)


def profile_keys(name: str) -> dict[str, str]:
    shown = tcptune("profiles", "show", name, "--json")
    return shown["doc"]["sysctl"]


def scenario_apply_reboot_revert() -> dict:
    targets = profile_keys("server-profile")
    keys = list(targets)
    before = sysctl_values(keys)
    applied = tcptune("apply", "server-profile", "--json")
    after_apply = sysctl_values(keys)
    drop_in = Path("/etc/sysctl.d/99-tcptune.conf")
    drop_in_text = drop_in.read_text() if drop_in.exists() else None
    procps = load_in_fresh_netns(["sysctl", "--system"], keys)
    systemd = load_in_fresh_netns([SYSTEMD_SYSCTL], keys) if SYSTEMD_SYSCTL else None
    in_sync = tcptune("check", "server-profile", "--json")
    reverted = tcptune("revert", "--json")
    after_revert = sysctl_values(keys)
    return {
        "targets": targets,
        "before": before,
        "apply": applied,
        "after_apply": after_apply,
        "drop_in": drop_in_text,
        "procps": procps,
        "systemd": systemd,
        "check": in_sync,
        "revert": reverted,
        "after_revert": after_revert,
        "sysctl_d_after_revert": sorted(os.listdir("/etc/sysctl.d")),
    }


def scenario_kernel_rejects_a_value() -> dict:
    """A profile value the kernel refuses half-way (an unknown congestion control): apply stops,
    reports, and revert restores the keys written before the failure."""
    keys = [
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_congestion_control",
        "net.ipv4.tcp_keepalive_time",
    ]
    profile = Path("/run/tcptune-test/bad-cc.toml")
    profile.write_text(
        'description = "an algorithm this kernel does not have"\n[sysctl]\n'
        '"net.ipv4.tcp_fin_timeout" = 25\n'
        '"net.ipv4.tcp_congestion_control" = "no_such_algorithm"\n'
        '"net.ipv4.tcp_keepalive_time" = 900\n'
    )
    before = sysctl_values(keys)
    applied = tcptune("apply", str(profile), "--json")
    during = sysctl_values(keys)
    reverted = tcptune("revert", "--json")
    return {
        "before": before,
        "apply": applied,
        "during": during,
        "revert": reverted,
        "after": sysctl_values(keys),
        "sysctl_d": sorted(os.listdir("/etc/sysctl.d")),
    }


LAYOUTS = {
    "etc masks usr/lib": {
        "/usr/lib/sysctl.d/50-a.conf": f"{KEY} = 31\n",
        "/etc/sysctl.d/50-a.conf": f"{KEY} = 32\n",
    },
    "later file name wins across dirs": {
        "/etc/sysctl.d/10-x.conf": f"{KEY} = 33\n",
        "/usr/lib/sysctl.d/90-y.conf": f"{KEY} = 34\n",
    },
    "sysctl.conf last for procps only": {
        "/etc/sysctl.d/99-z.conf": f"{KEY} = 35\n",
        "/etc/sysctl.conf": f"{KEY} = 36\n",
    },
    "dev null mask": {
        "/etc/sysctl.d/50-a.conf": "@/dev/null",
        "/usr/lib/sysctl.d/50-a.conf": f"{KEY} = 37\n",
    },
    "last line wins": {"/run/sysctl.d/60-b.conf": f"{KEY} = 38\n{KEY} = 39\n"},
    "run masks usr/lib": {
        "/run/sysctl.d/70-c.conf": f"{KEY} = 40\n",
        "/usr/lib/sysctl.d/70-c.conf": f"{KEY} = 41\n",
    },
    "byte order of names": {
        "/etc/sysctl.d/a.conf": f"{KEY} = 42\n",
        "/etc/sysctl.d/B.conf": f"{KEY} = 43\n",
    },
    "slash keys and comments": {
        "/etc/sysctl.d/20-s.conf": "; x\n# y\nnet/ipv4/tcp_fin_timeout=44\n"
    },
    "glob key": {"/etc/sysctl.d/10-g.conf": "net.ipv4.tcp_fin_time* = 45\n"},
}


def clear_layout() -> None:
    for directory in ["/etc/sysctl.d", "/run/sysctl.d", "/usr/lib/sysctl.d"]:
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
    Path("/run/tcptune-test/empty.conf").write_text("")  # what /etc/sysctl.conf shows


def scenario_precedence() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tcptune import sysctld
    from tcptune.system import System, read_conf_files

    results = {}
    for name, files in LAYOUTS.items():
        clear_layout()
        for path, text in files.items():
            if path == "/etc/sysctl.conf":
                Path("/run/tcptune-test/empty.conf").write_text(text)
            elif text.startswith("@"):
                os.symlink(text[1:], path)
            else:
                Path(path).write_text(text)
        boot = sysctld.BootModel(read_conf_files(System("/")))
        model = {}
        for loader in sysctld.LOADERS:
            value = boot.answer(KEY, loader).value
            model[loader] = value or "60"  # nothing set: the kernel default
        real = {"procps": load_in_fresh_netns(["sysctl", "--system"], [KEY])["values"][KEY]}
        if SYSTEMD_SYSCTL:
            real["systemd"] = load_in_fresh_netns([SYSTEMD_SYSCTL], [KEY])["values"][KEY]
        results[name] = {"model": model, "real": real}
    clear_layout()
    return results


def expose_to_everyone(paths: list[str]) -> None:
    """Let an unprivileged user run this interpreter and tcptune: a private directory on the way
    (e.g. /root, 0700) is replaced, in this mount namespace only, by a 0755 tmpfs holding a bind
    mount of just the child that is needed. Host modes are untouched."""
    kept = 0
    for target in paths:
        parts = Path(target).resolve().parts
        for depth in range(1, len(parts) - 1):
            ancestor = Path(*parts[: depth + 1])
            if os.stat(ancestor).st_mode & 0o001:
                continue
            child = ancestor / parts[depth + 1]
            keep = Path(f"/run/tcptune-test/keep-{kept}")
            kept += 1
            keep.mkdir()
            sh("mount", "--bind", str(child), str(keep))
            sh("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", str(ancestor))
            child.mkdir()
            sh("mount", "--bind", str(keep), str(child))


def scenario_read_only_proc_sys() -> dict:
    """/proc/sys read-only; a non-root dry run prints the plan; root apply explains the fix."""
    sh("mount", "--bind", "/proc/sys", "/proc/sys")
    sh("mount", "-o", "remount,bind,ro", "/proc/sys")
    source = str(Path(__file__).resolve().parent.parent)
    expose_to_everyone([sys.base_prefix, sys.prefix, os.path.realpath(sys.executable), source])
    env = {k: v for k, v in os.environ.items() if k != "TCPTUNE_ROOT"}
    done = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-m",
            "tcptune",
            "apply",
            "server-profile",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd="/",
    )
    whoami = sh("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "id", "-u").stdout
    unprivileged = {
        "uid": int(whoami),
        "code": done.returncode,
        "out": done.stdout,
        "err": done.stderr,
    }
    as_root = tcptune("apply", "server-profile")
    persist_only = tcptune("apply", "server-profile", "--persist-only", "--json")
    return {"unprivileged": unprivileged, "root": as_root, "persist_only": persist_only}


def scenario_ci_recipe() -> dict:
    """docs/ci.md's commands as uid 65534 with /proc/sys read-only."""
    commands = json.loads(sys.argv[2])
    sh("mount", "--bind", "/proc/sys", "/proc/sys")
    sh("mount", "-o", "remount,bind,ro", "/proc/sys")
    source = str(Path(__file__).resolve().parent.parent)
    expose_to_everyone([sys.base_prefix, sys.prefix, os.path.realpath(sys.executable), source])
    bindir = Path("/run/tcptune-test/bin")
    bindir.mkdir()
    # `tcptune` on PATH, as in the container: this interpreter with this source tree.
    launcher = bindir / "tcptune"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} -m tcptune "$@"\n')
    launcher.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "TCPTUNE_ROOT"}
    env["PATH"] = f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}"
    read_only = bool(os.statvfs("/proc/sys").f_flag & os.ST_RDONLY)
    runs = []
    for command in commands:
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd="/",
        )
        uid = int(
            sh("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "id", "-u").stdout
        )
        runs.append(
            {
                "command": command,
                "uid": uid,
                "proc_sys_read_only": read_only,
                "code": done.returncode,
                "out": done.stdout,
                "err": done.stderr,
            }
        )
    return {"runs": runs}


def scenario_apply_and_check_agree() -> dict:
    """A site file that sorts after the drop-in overrides a key at boot: apply says which file,
    per loader; the real loaders then leave exactly that; check PROFILE agrees. Then a second
    profile leaves the first one's keys out of the drop-in: apply says their live values stay
    until a reboot, and what boot sets them to, and the real loaders agree with that too."""
    server = profile_keys("server-profile")
    client = profile_keys("client-profile")
    keys = sorted({*server, *client})
    kernel_defaults = load_in_fresh_netns(["true"], keys)["values"]
    Path("/etc/sysctl.d/zz-site.conf").write_text("net.ipv4.tcp_keepalive_time = 1800\n")
    applied = tcptune("apply", "server-profile", "--json")
    again = tcptune("apply", "server-profile")
    procps = load_in_fresh_netns(["sysctl", "--system"], keys)
    systemd = load_in_fresh_netns([SYSTEMD_SYSCTL], keys) if SYSTEMD_SYSCTL else None
    checked = tcptune("check", "server-profile", "--json")
    live_before_switch = sysctl_values(keys)
    switched = tcptune("apply", "client-profile", "--json")
    live_after_switch = sysctl_values(keys)
    procps_after_switch = load_in_fresh_netns(["sysctl", "--system"], keys)
    systemd_after_switch = load_in_fresh_netns([SYSTEMD_SYSCTL], keys) if SYSTEMD_SYSCTL else None
    return {
        "server": server,
        "client": client,
        "kernel_defaults": kernel_defaults,
        "apply": applied,
        "again": again,
        "procps": procps,
        "systemd": systemd,
        "check": checked,
        "live_before_switch": live_before_switch,
        "switch": switched,
        "live_after_switch": live_after_switch,
        "procps_after_switch": procps_after_switch,
        "systemd_after_switch": systemd_after_switch,
    }


def scenario_planted_keys() -> dict:
    """/proc/sys/net/ipv4 replaced (in this mount namespace) by a tmpfs holding copies of the
    real values, one key a symlink to a real value and one a FIFO: check with root / reads each
    key on its own and refuses the two planted ones, without following or waiting."""
    real = "/run/tcptune-test/ipv4-real"
    os.makedirs(real)
    sh("mount", "--bind", "/proc/sys/net/ipv4", real)
    sh("mount", "-t", "tmpfs", "tmpfs", "/proc/sys/net/ipv4")
    copied = {}
    for name in os.listdir(real):
        source = Path(real, name)
        if source.is_file():
            try:
                copied[name] = source.read_text()
            except OSError:  # a write-only key
                continue
            Path("/proc/sys/net/ipv4", name).write_text(copied[name])
    os.unlink("/proc/sys/net/ipv4/tcp_tw_reuse")
    os.symlink(f"{real}/tcp_tw_reuse", "/proc/sys/net/ipv4/tcp_tw_reuse")
    os.unlink("/proc/sys/net/ipv4/tcp_fin_timeout")
    os.mkfifo("/proc/sys/net/ipv4/tcp_fin_timeout")
    return {"copied": copied, "check": tcptune("check", "--json")}


if __name__ == "__main__":
    isolate()
    scenario = {
        "apply": scenario_apply_reboot_revert,
        "reject": scenario_kernel_rejects_a_value,
        "precedence": scenario_precedence,
        "read-only": scenario_read_only_proc_sys,
        "ci-recipe": scenario_ci_recipe,
        "agree": scenario_apply_and_check_agree,
        "planted": scenario_planted_keys,
    }[sys.argv[1]]
    print(json.dumps({"systemd_sysctl": SYSTEMD_SYSCTL, **scenario()}))
