"""Helpers for the site-cluster tests (issue 3): one site of real agents that form a raft
cluster, on the session's private Podman, with the tower stoppable under them.

Every agent keeps its data folder, --listen port and --dev-dir across restarts, so a
restarted agent is the same raft member. Each host only sees the containers labelled
skerry.host=<its name>. `site_env` (import it into a test module) yields a SiteEnv and, at
the end, stops every agent and removes their containers, data and device folders.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading

import pytest

from conftest import SKERRY, Env, Proc, free_port, wait_for

LOST_AFTER = 2.0  # the tests' host-lost-after, seconds
# Generous bounds for things the issue wants "in seconds": a loaded 2-core machine runs
# several test sessions at once.
MOVE_TIMEOUT = 40.0


def print_flush(*args):
    print(*args, flush=True)


class Host:
    """One agent of a site: its fixed name, port, data and device folders."""

    def __init__(self, site, name, labels=None, camera=False):
        self.site = site
        self.name = name
        self.labels = dict(labels or {})
        self.port = free_port()
        self.listen = f"127.0.0.1:{self.port}"
        work = site.env.workdir
        self.data = os.path.join(work, f"agent-{name}")
        self.dev_dir = os.path.join(work, f"dev-{name}")
        os.makedirs(self.dev_dir, exist_ok=True)
        if camera:
            self.add_device("video0", 81, 0)
        self.proc = None

    def add_device(self, node, major, minor):
        """A real character device node (we run as root), as udev would make it."""
        path = os.path.join(self.dev_dir, node)
        subprocess.run(["mknod", path, "c", str(major), str(minor)], check=True)

    @property
    def joined(self):
        return os.path.exists(os.path.join(self.data, "identity.json"))

    def start(self, tower=None):
        """Starts (or restarts) the agent; the first start joins with a new token."""
        tower = tower or self.site.tower
        args = ["agent", "--data", self.data, "--tower", tower.addr, "--ca", tower.ca,
                "--runtime", self.site.env.podman.url, "--name", self.name,
                "--listen", self.listen, "--dev-dir", self.dev_dir]
        if not self.joined:
            args += ["--join", self.site.token()]
        if self.labels:
            args += ["--labels", ",".join(f"{k}={v}" for k, v in self.labels.items())]
        self.proc = Proc(f"agent-{self.name}", args, self.site.env.workdir).start()
        self.site.env.agents[self.name] = self.proc
        return self

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def kill9(self):
        """kill -9 of the agent, then of its containers (a host losing power)."""
        self.proc.p.send_signal(signal.SIGKILL)
        self.proc.p.wait()
        p = self.site.env.podman
        for c in p.running(host=self.name):
            status, body = p.request("POST", f"/containers/{c['Id']}/kill?signal=KILL")
            assert status in (204, 304, 409), body

    def stop(self):
        rc = self.proc.stop() if self.proc else None
        assert rc in (0, None, -9), f"agent {self.name} exited {rc}:\n{self.proc.log()}"

    def log(self):
        return self.proc.log() if self.proc else ""


class Site:
    """A site of the tower with its hosts. `hosts`: {name: {"labels": {}, "camera": bool}}."""

    def __init__(self, env, name, hosts, lost_after=f"{LOST_AFTER:g}s", tower=None,
                 cli=None, labels=None):
        self.env = env
        self.name = name
        self.tower = tower or env.tower
        self.cli = cli or env.cli
        labels = labels or {"role": "e2e"}
        lbl = ", ".join(f"{k}: {v}" for k, v in labels.items())
        self.cli("apply", "-f", "-", input=(
            f"kind: site\nname: {name}\nlabels: {{{lbl}}}\n"
            "devices:\n  - {label: camera, match: \"/dev/video*\"}\n"
            f"host-lost-after: {lost_after}\n"))
        self.hosts = {h: Host(self, h, **spec) for h, spec in hosts.items()}
        self.last_site_error = ""

    def token(self):
        return self.cli("site", "token", self.name).stdout.strip()

    def start(self, names=None):
        """Starts the hosts (all, or those named) one at a time and returns once each has
        joined (so the tower lists it): the first host of the site bootstraps it (wait until
        it leads), the next ones join it."""
        first = not any(h.joined for h in self.hosts.values())
        for i, h in enumerate(self.hosts[n] for n in (names or self.hosts)):
            h.start()
            wait_for(lambda: h.joined or not h.alive(), 30, what=f"{h.name} to join")
            assert h.alive(), f"agent {h.name} exited:\n{h.log()}"
            if i == 0 and first:
                try:
                    wait_for(lambda: self.leader() == h.name, 30, interval=0.3,
                             what=f"the first host {h.name} to lead the site")
                except AssertionError as e:
                    raise AssertionError(f"{e}\nhosts: {self.tower_hosts()}\n{self.logs()}")
        return self

    def __getitem__(self, name):
        return self.hosts[name]

    # --- what the tower says -------------------------------------------------------------

    def tower_hosts(self):
        return json.loads(self.cli("get", "hosts", "--site", self.name, "-o", "json").stdout)[
            "items"]

    def tower_instances(self):
        return json.loads(
            self.cli("get", "instances", "--site", self.name, "-o", "json").stdout)["items"]

    # --- what the site says (tower down) -------------------------------------------------

    def site_local(self, host, *args, data=None, check=True, timeout=30):
        """`skerry --site-local ADDR --agent-data DIR ...` with no tower settings at all."""
        h = self.hosts[host]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKERRY_")}
        env["HOME"] = self.env.workdir
        env.pop("XDG_CONFIG_HOME", None)
        r = subprocess.run([SKERRY, "--site-local", h.listen, "--agent-data", data or h.data]
                           + list(args), capture_output=True, text=True, env=env,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(
                f"skerry --site-local {h.listen} {' '.join(args)} exited {r.returncode}:\n"
                f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def site_local_json(self, host, *args):
        return json.loads(self.site_local(host, *args, "-o", "json").stdout)["items"]

    def site_hosts(self, via):
        """get hosts through the site-local API of host `via`; None when it does not answer
        (no leader right now, the host is down...)."""
        r = self.site_local(via, "get", "hosts", "-o", "json", check=False)
        if r.returncode != 0:
            self.last_site_error = f"via {via}: exit {r.returncode}: {r.stderr.strip()}"
            return None
        return json.loads(r.stdout)["items"]

    def hosts_view(self, via=None):
        """get hosts from the tower when it runs, else from the site (through `via`, or any
        host whose agent runs); None when the site does not answer."""
        if self.tower.proc.alive():
            return self.tower_hosts()
        for h in [via] if via else [h.name for h in self.hosts.values() if h.alive()]:
            view = self.site_hosts(h)
            if view is not None:
                return view
        return None

    def leader(self, via=None):
        """The one host whose role is leader among the live ones (None while there is none)."""
        view = self.hosts_view(via) or []
        leaders = [h["name"] for h in view if h.get("role") == "leader" and
                   h.get("state", "alive") == "alive"]
        assert len(leaders) <= 1, f"more than one leader: {view}"
        return leaders[0] if leaders else None

    def wait_leader(self, among, timeout=30):
        """Waits until the site (asked through each host of `among` in turn) names a leader
        in `among`, and returns it."""
        def found():
            for via in among:
                name = self.leader(via)
                if name in among:
                    return name
            return None
        try:
            return wait_for(found, timeout, interval=0.3, what=f"a leader among {among}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.last_site_error}\n{self.logs()}")

    def wait_alive(self, host, via, timeout=30):
        """The site (through `via`) lists `host` alive."""
        def alive():
            return any(h["name"] == host and h.get("state") == "alive"
                       for h in self.site_hosts(via) or [])
        try:
            wait_for(alive, timeout, interval=0.3, what=f"{host} alive again")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.last_site_error}\n{self.logs()}")

    def wait_cluster(self, timeout=60):
        """Every host listed alive, with one leader."""
        names = set(self.hosts)

        def ready():
            view = self.hosts_view() or []
            alive = {h["name"] for h in view if h.get("state") == "alive"}
            leaders = [h for h in view if h.get("role") == "leader"]
            return alive >= names and len(leaders) == 1 and view
        try:
            return wait_for(ready, timeout, interval=0.5,
                            what=f"hosts {sorted(names)} alive with one leader")
        except AssertionError as e:
            raise AssertionError(f"{e}\nhosts: {json.dumps(self.hosts_view())}\n"
                                 f"{self.last_site_error}\n{self.logs()}")

    # --- what runs (Podman) --------------------------------------------------------------

    def placements(self):
        """{instance: [host, ...]} of the site's running containers (one per instance here)."""
        out = {}
        for c in self.env.podman.running(site=self.name):
            lb = c["Labels"]
            out.setdefault(lb["skerry.instance"], []).append(lb["skerry.host"])
        for v in out.values():
            v.sort()
        return out

    def runs_exactly_once(self, instances, avoid=()):
        """All of `instances` run, each on one host not in `avoid`, and nothing else runs."""
        pl = self.placements()
        if set(pl) != set(instances):
            return False
        return all(len(hs) == 1 and hs[0] not in avoid for hs in pl.values()) and pl

    def runs_spread(self, instances, hosts):
        """runs_exactly_once, and the replicas of each service differ by at most one between
        `hosts` (the eligible ones): what the scheduler's spread brings about."""
        pl = self.runs_exactly_once(instances)
        if not pl:
            return False
        counts = {}
        for inst, (h,) in pl.items():
            svc = counts.setdefault(inst.rsplit("/", 1)[0], dict.fromkeys(hosts, 0))
            if h not in svc:
                return False
            svc[h] += 1
        return all(max(c.values()) - min(c.values()) <= 1 for c in counts.values()) and pl

    def _wait_running(self, predicate, timeout, what):
        try:
            return wait_for(predicate, timeout, interval=0.1, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}\nrunning now: {self.placements()}\n{self.logs()}")

    def wait_exactly_once(self, instances, avoid=(), timeout=MOVE_TIMEOUT, what=None):
        return self._wait_running(lambda: self.runs_exactly_once(instances, avoid), timeout,
                                  what or "every instance running exactly once")

    def wait_spread(self, instances, hosts=None, timeout=MOVE_TIMEOUT, what=None):
        hosts = list(hosts or self.hosts)
        return self._wait_running(lambda: self.runs_spread(instances, hosts), timeout,
                                  what or f"every instance running once, spread over {hosts}")

    def logs(self, lines=25):
        out = []
        for h in self.hosts.values():
            tail = "\n".join(h.log().splitlines()[-lines:])
            out.append(f"--- agent {h.name} (last {lines} lines):\n{tail}")
        return "\n".join(out)


class SiteEnv(Env):
    """The conftest Env plus the sites of one test, cleaned up at the end."""

    def __init__(self, workdir, podman):
        super().__init__(workdir, podman)
        self.sites = []
        self.extra_towers = []

    def site(self, name, hosts, **kw):
        s = Site(self, name, hosts, **kw)
        self.sites.append(s)
        return s

    def cleanup(self):
        problems = []
        for s in self.sites:
            for h in s.hosts.values():
                try:
                    h.stop()
                except AssertionError as e:
                    problems.append(str(e))
                # Stopped here (and reported once): Env.stop_all need not see it again.
                self.agents.pop(h.name, None)
        for t in self.extra_towers:
            if t.proc.alive():
                rc = t.proc.stop()
                if rc != 0:
                    problems.append(f"second tower exited {rc}:\n{t.proc.log()}")
        names = {h for s in self.sites for h in s.hosts}
        for c in self.podman.containers():
            if c.get("Labels", {}).get("skerry.host") in names:
                self.podman.request("DELETE", f"/containers/{c['Id']}?force=true")
        for s in self.sites:
            for h in s.hosts.values():
                shutil.rmtree(h.data, ignore_errors=True)
                shutil.rmtree(h.dev_dir, ignore_errors=True)
        return problems


@pytest.fixture
def site_env(podman, tmp_path):
    e = SiteEnv(str(tmp_path), podman)
    e.tower.start()
    try:
        yield e
    finally:
        problems = e.cleanup()
        problems += e.stop_all()
        for name in ("tower", "tower2"):
            shutil.rmtree(os.path.join(str(tmp_path), name), ignore_errors=True)
    assert not problems, "\n".join(problems)


def instance_ids(deployment, services, tenant="default"):
    """Instance ids of replicated services: {service: replicas}."""
    return {f"{tenant}/{deployment}/{svc}/{i}" for svc, n in services.items() for i in range(n)}


def app_yaml(name, services, version="1.0.0"):
    """An application of busybox services: [{"name", "replicas"|"mode", "placement",
    "resources", "env", "devices"}], and a deployment of it on sites with role=e2e."""
    lines = [f"kind: application\nname: {name}\nversion: \"{version}\"\nservices:"]
    for s in services:
        lines.append(f"  - name: {s['name']}")
        if "mode" in s:
            lines.append(f"    mode: {s['mode']}")
        else:
            lines.append(f"    replicas: {s.get('replicas', 1)}")
        if "placement" in s:
            lines.append(f"    placement: {json.dumps(s['placement'])}")
        if "resources" in s:
            lines.append(f"    resources: {json.dumps(s['resources'])}")
        lines += ["    containers:", "      - name: main",
                  "        image: localhost/busybox:latest",
                  "        cmd: [\"/bin/sh\", \"-c\", \"while true; do sleep 1; done\"]",
                  "        restart: always"]
        if "env" in s:
            lines.append(f"        env: {json.dumps(s['env'])}")
        if "devices" in s:
            lines.append(f"        devices: {json.dumps(s['devices'])}")
    lines.append(f"---\nkind: deployment\nname: {name}\napplication: {name}\n"
                 f"version: \"*\"\nsites: role = e2e\n")
    return "\n".join(lines)


# --- reading the wire ----------------------------------------------------------------------

class LoopbackCapture:
    """A packet capture on lo (AF_PACKET, as tcpdump would do; we run as root) of the TCP
    segments to or from `ports`, reassembled per direction of each connection."""

    def __init__(self, ports):
        self.ports = set(ports)
        self.flows = {}  # (src port, dst port, first seen) key -> {seq: payload}
        self.first = {}  # flow -> first payload bytes seen
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                frame, addr = self.sock.recvfrom(262144)
            except socket.timeout:
                continue
            except OSError:
                return
            if addr[2] == socket.PACKET_OUTGOING:  # lo shows each segment twice
                continue
            self._segment(frame)

    def _segment(self, frame):
        if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
            return
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 6:  # TCP
            return
        total = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[ihl:total]
        if len(tcp) < 20:
            return
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        if sport not in self.ports and dport not in self.ports:
            return
        payload = tcp[(tcp[12] >> 4) * 4:]
        if not payload:
            return
        key = (sport, dport)
        self.flows.setdefault(key, {}).setdefault(seq, payload)
        self.first.setdefault(key, payload[:8])

    def add_port(self, port):
        self.ports.add(port)

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()

    def streams(self):
        """{(src port, dst port): bytes} in sequence order (wrap-around ignored: short tests)."""
        return {k: b"".join(v[s] for s in sorted(v)) for k, v in self.flows.items()}

    def total_bytes(self, port):
        return sum(len(b) for (s, d), b in self.streams().items() if port in (s, d))


# --- TLS probes ----------------------------------------------------------------------------

def tls_probe(port, cert=None, key=None, send=b"", wait=5.0):
    """Connects to 127.0.0.1:port with TLS (optionally a client certificate), sends `send`,
    and reads for up to `wait` seconds. Returns ("refused", why) when the server ends the
    connection or fails the handshake, ("open", b"") when it keeps the connection open
    without a word, ("data", bytes) when it answers something."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    raw = socket.create_connection(("127.0.0.1", port), timeout=wait)
    try:
        try:
            s = ctx.wrap_socket(raw, server_hostname="skerry-host")
        except (ssl.SSLError, OSError) as e:
            return "refused", f"handshake: {e}"
        try:
            if send:
                s.sendall(send)
            s.settimeout(wait)
            data = s.recv(4096)
        except socket.timeout:
            return "open", b""
        except (ssl.SSLError, OSError) as e:
            return "refused", f"read: {e}"
        finally:
            s.close()
        if not data:
            return "refused", "closed with no data"
        return "data", data
    finally:
        raw.close()


def raft_hello(host_id, address):
    """The hello a dialling host sends inside TLS (docs/site-cluster.md): protocol "SKRAFT"
    version 1, its raft id (= host id), the address length with its NUL, the address."""
    a = address.encode() + b"\0"
    return struct.pack("<QQQ", 0x534B524146540001, host_id, len(a)) + a


def identity(host):
    with open(os.path.join(host.data, "identity.json")) as f:
        return json.load(f)


def exec_exit_code(podman, cid, cmd, timeout=20):
    """Runs cmd in a container (Docker exec API; Podman 4.3 does not run a detached exec
    started through the compat API, so attach and read the output) and returns its exit
    code."""
    status, body = podman.request("POST", f"/containers/{cid}/exec",
                                  {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True})
    assert status == 201, body
    eid = body["Id"]
    status, body = podman.request("POST", f"/exec/{eid}/start", {"Detach": False, "Tty": False})
    assert status == 200, body

    def done():
        st, info = podman.request("GET", f"/exec/{eid}/json")
        return st == 200 and not info.get("Running") and info
    return wait_for(done, timeout, what=f"exec {cmd}")["ExitCode"]
