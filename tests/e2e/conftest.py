"""End-to-end harness: real tower, real agents, real Podman (a private store per run).

Everything a test starts lives under its temporary folder and is stopped at teardown:
processes are killed, containers removed by the podman-service script's `stop`.
"""

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKERRY = os.environ.get("SKERRY_BIN", os.path.join(REPO, "build", "skerry"))
PODMAN_SERVICE = os.path.join(REPO, "tests", "lib", "podman-service.sh")
IMAGE = "localhost/busybox:latest"


def wait_for(predicate, timeout=30.0, interval=0.2, what="condition"):
    """Polls predicate until it returns a truthy value; fails the test on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def stays(predicate, seconds, interval=0.25, what="condition", detail=None):
    """The one "stays so for N seconds" check: predicate holds at every poll for the whole
    `seconds` (the first poll at once, the last at the end); fails at the first poll where it
    does not, with detail() in the message. Tests wait with wait_for or this, never sleep."""
    deadline = time.monotonic() + seconds
    while True:
        v = predicate()
        assert v, f"{what} stopped holding (last: {v!r})" + (f"\n{detail()}" if detail else "")
        left = deadline - time.monotonic()
        if left <= 0:
            return v
        time.sleep(min(interval, left))


def free_port():
    """A loopback port free now, below the kernel's ephemeral range (32768 and up), so an
    outgoing connection made before the test binds it cannot take it meanwhile."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in 20000..32000")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Podman:
    """The Docker Engine API of a private Podman service."""

    def __init__(self, socket_path):
        self.socket_path = socket_path
        self.url = "unix://" + socket_path

    def request(self, method, path, body=None):
        conn = UnixHTTPConnection(self.socket_path)
        try:
            headers = {}
            data = None
            if body is not None:
                data = json.dumps(body)
                headers["Content-Type"] = "application/json"
            conn.request(method, "/v1.41" + path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw.strip().startswith((b"{", b"[")) else raw)
        finally:
            conn.close()

    def containers(self, **labels):
        """Containers (all states) carrying every given skerry label, e.g. site='s1'."""
        flt = {"label": [f"skerry.{k.replace('_', '-')}={v}" for k, v in labels.items()]}
        status, items = self.request(
            "GET", "/containers/json?all=1&filters=" + urllib.parse.quote(json.dumps(flt)))
        assert status == 200, items
        return items

    def running(self, **labels):
        return [c for c in self.containers(**labels) if c["State"] == "running"]

    def inspect(self, cid):
        status, body = self.request("GET", f"/containers/{cid}/json")
        assert status == 200, body
        return body

    def kill(self, cid):
        status, body = self.request("POST", f"/containers/{cid}/kill?signal=KILL")
        assert status in (204, 304), body


@pytest.fixture(scope="session")
def podman():
    d = tempfile.mkdtemp(prefix="skerry-e2e-podman-")
    try:
        out = subprocess.run([PODMAN_SERVICE, "start", d], check=True, capture_output=True,
                             text=True, timeout=300)
        sock = out.stdout.strip().splitlines()[-1]
        yield Podman(sock)
    finally:
        subprocess.run([PODMAN_SERVICE, "stop", d], capture_output=True, timeout=300)
        subprocess.run(["rm", "-rf", d])


class Proc:
    """A skerry process whose output goes to a log file in the test folder."""

    def __init__(self, name, args, workdir, env=None):
        self.name = name
        self.args = args
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.env = env
        self.p = None

    def start(self):
        log = open(self.log_path, "ab")
        self.p = subprocess.Popen([SKERRY] + self.args, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=self.env)
        log.close()
        return self

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stops the process; a clean stop must exit 0 (a sanitizer report would not)."""
        if not self.alive():
            return self.p.returncode if self.p else None
        self.p.send_signal(sig)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError(f"{self.name} did not stop within {timeout}s:\n{self.log()}")

    def kill(self):
        if self.alive():
            self.p.kill()
            self.p.wait()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-6000:]
        except OSError:
            return ""


class Tower:
    def __init__(self, workdir):
        self.data = os.path.join(workdir, "tower")
        self.port = free_port()
        self.addr = f"https://127.0.0.1:{self.port}"
        self.proc = Proc("tower", ["tower", "--data", self.data, "--listen",
                                   f"127.0.0.1:{self.port}"], workdir)

    @property
    def ca(self):
        return os.path.join(self.data, "ca.pem")

    @property
    def token(self):
        with open(os.path.join(self.data, "admin.token")) as f:
            return f.read().strip()

    def start(self):
        self.proc.start()

        def ready():
            if not self.proc.alive():
                raise AssertionError("tower exited:\n" + self.proc.log())
            if not os.path.exists(os.path.join(self.data, "admin.token")):
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(ready, 30, what="tower to listen")
        return self

    def stop(self):
        rc = self.proc.stop()
        assert rc == 0, f"tower exited {rc}:\n{self.proc.log()}"


class Env:
    """One test's installation: a tower, agents, and the CLI pointed at them."""

    def __init__(self, workdir, podman):
        self.workdir = workdir
        self.podman = podman
        self.tower = Tower(workdir)
        self.agents = {}

    def cli_env(self, token=None):
        env = dict(os.environ)
        env["HOME"] = self.workdir  # never read or write the real user's config
        env.pop("XDG_CONFIG_HOME", None)
        env["SKERRY_ADDR"] = self.tower.addr
        env["SKERRY_CA"] = self.tower.ca
        env["SKERRY_TOKEN"] = self.tower.token if token is None else token
        return env

    def cli(self, *args, input=None, token=None, check=True, timeout=60):
        r = subprocess.run([SKERRY] + list(args), input=input, capture_output=True, text=True,
                           env=self.cli_env(token), timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"skerry {' '.join(args)} exited {r.returncode}:\n"
                                 f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def apply(self, text, check=True):
        return self.cli("apply", "-f", "-", input=text, check=check)

    def get_json(self, *args):
        return json.loads(self.cli("get", *args, "-o", "json").stdout)

    def site_token(self, site, *extra):
        return self.cli("site", "token", site, *extra).stdout.strip()

    def start_agent(self, site, host, labels=None, token=None):
        data = os.path.join(self.workdir, f"agent-{host}")
        args = ["agent", "--data", data, "--tower", self.tower.addr, "--ca", self.tower.ca,
                "--runtime", self.podman.url, "--name", host,
                "--listen", f"127.0.0.1:{free_port()}"]
        if not os.path.exists(os.path.join(data, "identity.json")):
            args += ["--join", token or self.site_token(site)]
        if labels:
            args += ["--labels", ",".join(f"{k}={v}" for k, v in labels.items())]
        proc = Proc(f"agent-{host}", args, self.workdir).start()
        self.agents[host] = proc
        return proc

    def stop_all(self):
        problems = []
        for host, a in self.agents.items():
            rc = a.stop()
            if rc not in (0, None, -9):
                problems.append(f"agent {host} exited {rc}:\n{a.log()}")
        if self.tower.proc.alive():
            rc = self.tower.proc.stop()
            if rc != 0:
                problems.append(f"tower exited {rc}:\n{self.tower.proc.log()}")
        return problems


@pytest.fixture
def env(podman, tmp_path):
    e = Env(str(tmp_path), podman)
    e.tower.start()
    yield e
    problems = e.stop_all()
    # Remove what this test's agents left running (agents keep containers on purpose).
    for c in podman.containers():
        if any(c.get("Labels", {}).get("skerry.host") == h for h in e.agents):
            podman.request("DELETE", f"/containers/{c['Id']}?force=true")
    assert not problems, "\n".join(problems)
