"""Two tower replicas on one PostgreSQL store: a change applied through replica A reaches
an agent long-polling replica B; with A stopped, everything keeps working through B; the
admin token and the CA are the same on both."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import IMAGE, REPO, Env, Proc, free_port, wait_for

PG_SERVICE = os.path.join(REPO, "tests", "lib", "postgres-service.sh")


def app(version, greeting):
    return f"""
kind: application
name: till
version: "{version}"
services:
  - name: loop
    containers:
      - name: main
        image: {IMAGE}
        cmd: ["/bin/sh", "-c", "while true; do sleep 1; done"]
        env: {{GREETING: {greeting}}}
"""


SITE = """
kind: site
name: r1
labels: {chain: acme}
---
kind: deployment
name: till-acme
application: till
version: "*"
sites: chain = acme
"""


class Replica:
    """`skerry tower --store CONNINFO` with a data folder of its own."""

    def __init__(self, workdir, name, conninfo, token_from=None):
        self.data = os.path.join(workdir, name)
        self.port = free_port()
        self.addr = f"https://127.0.0.1:{self.port}"
        self.token_from = token_from or self
        self.proc = Proc(name, ["tower", "--data", self.data, "--listen",
                                f"127.0.0.1:{self.port}", "--store", conninfo], workdir)

    @property
    def ca(self):
        return os.path.join(self.data, "ca.pem")

    @property
    def token(self):
        with open(os.path.join(self.token_from.data, "admin.token")) as f:
            return f.read().strip()

    def start(self):
        self.proc.start()

        def ready():
            if not self.proc.alive():
                raise AssertionError(f"{self.proc.name} exited:\n" + self.proc.log())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(ready, 30, what=f"{self.proc.name} to listen")
        return self


@pytest.fixture
def pg():
    # Under /tmp itself: the server runs as the postgres user, who cannot enter pytest's
    # private folders.
    d = tempfile.mkdtemp(prefix="skerry-e2e-pg-")
    try:
        out = subprocess.run([PG_SERVICE, "start", d], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        yield out.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([PG_SERVICE, "stop", d], capture_output=True, timeout=120)
        shutil.rmtree(d, ignore_errors=True)


def containers(podman, version=None):
    running = podman.running(site="r1")
    if version is None:
        return running
    return [c for c in running if c["Labels"].get("skerry.version") == version]


def test_replicas_share_one_store(podman, pg, tmp_path):
    work = str(tmp_path)
    a = Replica(work, "tower-a", pg).start()
    wait_for(lambda: os.path.exists(os.path.join(a.data, "admin.token")), 10,
             what="replica A's admin token")

    # Replica B without A's store key cannot open the shared CA, and says what to copy.
    b = Replica(work, "tower-b", pg, token_from=a)
    b.proc.start()
    assert b.proc.p.wait(30) == 1
    assert "store.key" in b.proc.log()
    shutil.copy(os.path.join(a.data, "store.key"), os.path.join(b.data, "store.key"))
    b.start()
    assert not os.path.exists(os.path.join(b.data, "admin.token"))
    with open(a.ca) as fa, open(b.ca) as fb:
        assert fa.read() == fb.read()

    ea, eb = Env(work, podman), Env(work, podman)
    ea.tower, eb.tower = a, b
    try:
        # The admin token works on both.
        for e in (ea, eb):
            assert e.get_json("sites") == {"items": []}

        # Applied through A, joined and long-polling through B.
        ea.apply(SITE + "---" + app("1.0.0", "one"))
        eb.start_agent("r1", "r1-h1")
        wait_for(lambda: len(containers(podman, "1.0.0")) == 1, 60,
                 what="version 1.0.0 running through replica B")

        # A change through A reaches the agent on B at once (the long-poll is woken by
        # LISTEN/NOTIFY, not by its 30 s timeout).
        t0 = time.monotonic()
        ea.apply(app("1.0.1", "two"))
        wait_for(lambda: len(containers(podman, "1.0.1")) == 1, 25,
                 what="version 1.0.1 through replica B")
        assert time.monotonic() - t0 < 25
        info = podman.inspect(containers(podman, "1.0.1")[0]["Id"])
        assert "GREETING=two" in info["Config"]["Env"]

        # Without A, everything goes on through B.
        assert a.proc.stop() == 0
        eb.apply(app("1.0.2", "three"))
        wait_for(lambda: len(containers(podman, "1.0.2")) == 1, 30,
                 what="version 1.0.2 applied through B alone")
        status = eb.get_json("deployment", "till-acme")["status"]
        assert [s["site"] for s in status["sites"]] == ["r1"]
        hosts = eb.get_json("hosts", "--site", "r1")
        assert [h["name"] for h in hosts["items"]] == ["r1-h1"]

        # A comes back: the same CA, no new admin token, and it serves what B wrote.
        with open(os.path.join(a.data, "admin.token")) as f:
            token_before = f.read()
        a.proc = Proc("tower-a2", a.proc.args, work)
        a.start()
        with open(os.path.join(a.data, "admin.token")) as f:
            assert f.read() == token_before
        apps = ea.get_json("applications", "till")
        assert "1.0.2" in str(apps)
    finally:
        problems = eb.stop_all()
        for r in (a, b):
            if r.proc.alive():
                rc = r.proc.stop()
                if rc != 0:
                    problems.append(f"{r.proc.name} exited {rc}:\n{r.proc.log()}")
        for c in podman.containers():
            if c.get("Labels", {}).get("skerry.host") in eb.agents:
                podman.request("DELETE", f"/containers/{c['Id']}?force=true")
    assert not problems, "\n".join(problems)
