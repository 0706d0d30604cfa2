"""The Debian package: built by scripts/package, installed with dpkg into a throwaway root
(never the machine's own), the systemd units' ExecStart command lines run from there (the
tower on loopback, an agent that joins it through its config file), then purged without a
trace."""

import json
import os
import shlex
import subprocess

import pytest

from conftest import REPO, free_port, wait_for

DPKG = ["dpkg", "--force-script-chrootless", "--log=/dev/null"]


def exec_start(root, unit, state):
    """The unit's ExecStart as argv, pointed into root, with ${STATE_DIRECTORY} = state."""
    with open(os.path.join(root, "lib/systemd/system", unit)) as f:
        text = f.read()
    line = next(l for l in text.splitlines() if l.startswith("ExecStart="))
    argv = shlex.split(line[len("ExecStart="):].replace("${STATE_DIRECTORY}", state))
    return [a if not a.startswith(("/usr/", "/etc/")) else root + a for a in argv], text


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    out = tmp_path_factory.mktemp("deb")
    r = subprocess.run([os.path.join(REPO, "scripts", "package"), str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_package_installs_runs_and_purges(deb, podman, tmp_path):
    fields = subprocess.run(["dpkg-deb", "-f", deb], capture_output=True, text=True,
                            check=True).stdout
    assert "Package: skerry" in fields and "libmicrohttpd" in fields, fields
    assert "ldns" not in fields
    # apt resolves its dependencies here (a simulation: nothing is installed)
    sim = subprocess.run(["apt-get", "-s", "install", deb], capture_output=True, text=True)
    assert sim.returncode == 0 and "Inst skerry" in sim.stdout, sim.stdout + sim.stderr

    root = str(tmp_path / "root")
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"):
        os.makedirs(os.path.join(root, d))
    open(os.path.join(root, "var/lib/dpkg/status"), "w").close()
    r = subprocess.run(DPKG + [f"--root={root}", "--force-depends", "-i", deb],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for path in ("usr/bin/skerry", "usr/share/man/man1/skerry.1.gz",
                 "usr/share/bash-completion/completions/skerry", "etc/skerry/tower.conf",
                 "etc/skerry/agent.conf", "lib/systemd/system/skerry-tower.service",
                 "lib/systemd/system/skerry-agent.service"):
        assert os.path.exists(os.path.join(root, path)), path
    conffiles = subprocess.run(["dpkg-deb", "-I", deb, "conffiles"], capture_output=True,
                               text=True, check=True).stdout.split()
    assert conffiles == ["/etc/skerry/tower.conf", "/etc/skerry/agent.conf"]

    # the tower unit's command line; a flag added on the command line beats tower.conf's
    # listen = 0.0.0.0:7443
    state = str(tmp_path / "tower-state")
    argv, unit = exec_start(root, "skerry-tower.service", state)
    for hardening in ("ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=",
                      "DynamicUser=yes"):
        assert hardening in unit
    port = free_port()
    tower_proc = subprocess.Popen(argv + ["--listen", f"127.0.0.1:{port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    agent_proc = None
    try:
        wait_for(lambda: os.path.exists(os.path.join(state, "admin.token")) or
                 tower_proc.poll() is not None, 30, what="the packaged tower to start")
        assert tower_proc.poll() is None, tower_proc.stderr.read()
        env = dict(os.environ, HOME=str(tmp_path), SKERRY_ADDR=f"https://127.0.0.1:{port}",
                   SKERRY_CA=os.path.join(state, "ca.pem"))
        with open(os.path.join(state, "admin.token")) as f:
            env["SKERRY_TOKEN"] = f.read().strip()
        skerry = os.path.join(root, "usr/bin/skerry")

        def cli(*args, **kw):
            return subprocess.run([skerry, *args], capture_output=True, text=True, env=env,
                                  timeout=60, check=True, **kw).stdout

        cli("apply", "-f", "-", input="kind: site\nname: edge\n")
        token = cli("site", "token", "edge").strip()
        # the agent unit's command line, joining through agent.conf
        with open(os.path.join(root, "etc/skerry/agent.conf"), "a") as f:
            f.write(f"tower = https://127.0.0.1:{port}\nca = {state}/ca.pem\njoin = {token}\n"
                    f"runtime = {podman.url}\nname = pkg-host\n"
                    f"listen = 127.0.0.1:{free_port()}\n")
        agent_state = str(tmp_path / "agent-state")
        aargv, aunit = exec_start(root, "skerry-agent.service", agent_state)
        assert "ProtectSystem=strict" in aunit and "ReadWritePaths=" in aunit
        agent_proc = subprocess.Popen(aargv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True)
        wait_for(lambda: json.loads(cli("get", "hosts", "--site", "edge", "-o", "json"))
                 ["items"] or agent_proc.poll() is not None, 60,
                 what="the packaged agent to join")
        assert agent_proc.poll() is None, agent_proc.stderr.read()
        assert cli("get", "hosts", "--site", "edge", "-o", "name") == "host/pkg-host\n"
    finally:
        for p in (agent_proc, tower_proc):
            if p and p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
    assert tower_proc.returncode == 0, tower_proc.stderr.read()

    # purge: nothing of the package stays in the root (the dpkg database aside)
    r = subprocess.run(DPKG + [f"--root={root}", "-P", "skerry"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    left = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
            if not os.path.join(d, f).startswith(os.path.join(root, "var/lib/dpkg"))]
    assert left == [], left
