"""Hosts for tests: network namespaces joined to this one by veth pairs, as separate machines are.

Each host is a namespace with one veth pair: 10.231.0.<4k+1> on this side, 10.231.0.<4k+2> inside,
and a default route back. A process started with `Host.spawn` sees only its own addresses and the
root namespace's (where a test's SMTP sink listens on `host.gateway`); like any process on the
machine it still reaches Unix sockets, PostgreSQL's among them. Needs root and `ip netns`.
"""

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.processes import stop_all

SUBNET = "10.231.0"  # /30 slices of 10.231.0.0/24: at most 64 hosts on one machine at a time
PREFIX = "rlv"  # namespace and interface names: rlv<pid>x<n>, short enough for a 15-byte ifname
ALLOCATION_LOCK = Path(tempfile.gettempdir()) / "relieve-netns.lock"


class Unavailable(Exception):
    """This machine cannot create network namespaces here; the message says why."""


def check_available():
    if os.geteuid() != 0:
        raise Unavailable("creating network namespaces needs root")
    if shutil.which("ip") is None:
        raise Unavailable("the `ip` command (iproute2) is not installed")
    probe = f"{PREFIX}{os.getpid()}probe"
    done = _ip("netns", "add", probe, check=False)
    if done.returncode:
        raise Unavailable(f"`ip netns add` fails here: {done.stderr.strip()}")
    _ip("netns", "del", probe, check=False)


class Host:
    def __init__(self, namespace, index, outer):
        self.namespace = namespace
        self.outer = outer  # the veth end in the root namespace
        self.gateway = f"{SUBNET}.{4 * index + 1}"  # this side, as the host sees it
        self.address = f"{SUBNET}.{4 * index + 2}"  # the host's own address
        self.processes = []

    def spawn(self, argv, *, cwd, env, log_path):
        """Start `argv` inside this host; its output goes to `log_path`."""
        with open(log_path, "a") as log:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace, *argv],
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def stop(self, timeout=20):
        stop_all(self.processes, timeout)


class Network:
    """Hosts made by `add()`; `close()` stops their processes and removes every namespace and link."""

    def __init__(self):
        self.tag = f"{PREFIX}{os.getpid()}"
        self.hosts = []

    def __enter__(self):
        _remove_leftovers()
        return self

    def __exit__(self, *exc):
        self.close()

    def add(self):
        name = f"{self.tag}x{len(self.hosts)}"
        with _allocation():
            index = _free_index()
            host = Host(name, index, f"{name}o")
            self.hosts.append(host)
            _ip("netns", "add", name)
            _ip("link", "add", host.outer, "type", "veth", "peer", "name", f"{name}i", "netns", name)
            _ip("addr", "add", f"{host.gateway}/30", "dev", host.outer)
            _ip("link", "set", host.outer, "up")
        _ip("-n", name, "addr", "add", f"{host.address}/30", "dev", f"{name}i")
        _ip("-n", name, "link", "set", f"{name}i", "up")
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "route", "add", "default", "via", host.gateway)
        return host

    def close(self):
        for host in self.hosts:
            host.stop()
        for host in self.hosts:
            _ip("netns", "del", host.namespace, check=False)  # takes the veth pair with it
            _ip("link", "del", host.outer, check=False)
        self.hosts = []


def _ip(*args, check=True):
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


@contextlib.contextmanager
def _allocation():
    """Two runs on one machine must not pick the same addresses."""
    with open(ALLOCATION_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _free_index():
    taken = set(re.findall(rf"inet {re.escape(SUBNET)}\.(\d+)/", _ip("-o", "-4", "addr", "show").stdout))
    for index in range(64):
        if str(4 * index + 1) not in taken:
            return index
    raise RuntimeError(f"all 64 test subnets of {SUBNET}.0/24 are in use")


def _remove_leftovers():
    """Namespaces and links of an earlier run whose process is gone (killed before its teardown)."""
    names = _ip("netns", "list", check=False).stdout.split()
    links = re.findall(rf"\d+: ({PREFIX}\d+x\d+o)[@:]", _ip("-o", "link", "show", check=False).stdout)
    for name in [n for n in names if re.fullmatch(rf"{PREFIX}\d+(x\d+|probe)", n)] + links:
        pid = int(re.match(rf"{PREFIX}(\d+)", name).group(1))
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            if name.endswith("o"):
                _ip("link", "del", name, check=False)
            else:
                _ip("netns", "del", name, check=False)
