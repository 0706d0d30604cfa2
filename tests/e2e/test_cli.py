"""The kubectl habits of the CLI against a real tower: selectors, output formats, --watch,
apply --dry-run (nothing stored), diff, delete -f, rollout status exit codes, completion of
resource names, and the hosts table with a real agent."""

import os
import signal
import subprocess
import time

import pytest

from conftest import IMAGE, SKERRY, Tower, wait_for

SITES = """kind: site
name: north-1
labels: {chain: acme, region: north}
---
kind: site
name: west-1
labels: {chain: acme, region: west}
---
kind: site
name: other-1
labels: {chain: other}
"""

APP = f"""kind: application
name: shop
version: "1.0.0"
services:
  - name: web
    containers:
      - name: httpd
        image: {IMAGE}
---
kind: deployment
name: shop-acme
application: shop
version: "1.0.0"
sites: chain = acme
"""


class Cli:
    """A tower alone (no agents, no Podman) and the CLI pointed at it."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.tower = Tower(workdir).start()

    def env(self):
        env = dict(os.environ)
        env["HOME"] = self.workdir
        env.pop("XDG_CONFIG_HOME", None)
        env.pop("NO_COLOR", None)
        env["SKERRY_ADDR"] = self.tower.addr
        env["SKERRY_CA"] = self.tower.ca
        env["SKERRY_TOKEN"] = self.tower.token
        return env

    def run(self, *args, input=None, rc=0):
        r = subprocess.run([SKERRY, *args], input=input, capture_output=True, text=True,
                           env=self.env(), timeout=60)
        assert r.returncode == rc, (args, r.returncode, r.stdout, r.stderr)
        return r

    def write(self, name, text):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(text)
        return path


@pytest.fixture
def cli(tmp_path):
    c = Cli(str(tmp_path))
    yield c
    c.tower.stop()


def test_dry_run_stores_nothing_and_diff(cli):
    path = cli.write("all.yaml", SITES + "---\n" + APP)
    events = len(cli.run("get", "events", "-o", "json").stdout)
    r = cli.run("apply", "--dry-run", "-f", cli.write("sites.yaml", SITES))
    assert r.stdout.count("created (dry run)") == 3, r.stdout
    # nothing stored, not even an audit event
    assert len(cli.run("get", "events", "-o", "json").stdout) == events
    r = cli.run("apply", "--dry-run", "-f", path, rc=1)
    # the deployment names an application that is not stored: the tower says so
    assert "site/north-1 created (dry run)" in r.stdout
    assert "application/shop 1.0.0 created (dry run)" in r.stdout
    assert "no application named shop" in r.stderr, r.stderr
    assert "1 of 5 documents failed" in r.stderr
    assert cli.run("get", "sites", "-o", "name").stdout == ""
    assert cli.run("get", "apps", "-o", "name").stdout == ""

    # what apply would do, as a diff; then applied, nothing is left to show
    d = cli.run("diff", "-f", cli.write("sites.yaml", SITES), rc=1)
    assert "--- /dev/null\n+++ site/north-1" in d.stdout
    assert "+  region: north\n" in d.stdout
    assert "\033[" not in d.stdout  # not a terminal
    cli.run("apply", "-f", path)
    assert len(cli.run("get", "events", "-o", "json").stdout) > events  # a real one is audited
    cli.run("diff", "-f", path, rc=0)
    r = cli.run("apply", "--dry-run", "-f", path)
    assert r.stdout.count("unchanged (dry run)") == 5, r.stdout

    changed = cli.write("changed.yaml", SITES.replace("region: north", "region: south"))
    d = cli.run("diff", "-f", changed, rc=1)
    assert "-  region: north\n+  region: south\n" in d.stdout, d.stdout
    assert cli.run("apply", "--dry-run", "-f", changed).stdout.startswith(
        "site/north-1 updated (dry run)")
    got = cli.run("get", "site", "north-1", "-o", "jsonpath={.labels.region}").stdout
    assert got == "north\n"

    # every error of an apply is listed, not only the first
    bad = cli.write("bad.yaml", APP.replace("version: \"1.0.0\"\nsites", "version: \"9\"\nsites")
                    + "---\nkind: deployment\nname: d2\napplication: nope\nsites: a\n")
    r = cli.run("apply", "-f", bad, rc=1)
    assert "application shop has no version 9" in r.stderr, r.stderr
    assert "no application named nope" in r.stderr, r.stderr
    assert "2 of 3 documents failed" in r.stderr


def test_get_selectors_outputs_and_delete_file(cli):
    path = cli.write("all.yaml", SITES + "---\n" + APP)
    cli.run("apply", "-f", path)
    assert cli.run("get", "sites", "-l", "chain = acme", "-o", "name").stdout == \
        "site/north-1\nsite/west-1\n"
    assert cli.run("get", "sites", "-l", "region notin (north)", "-o",
                   "jsonpath={.items[*].name}").stdout == "other-1 west-1\n"
    bad = cli.run("get", "sites", "-l", "chain = = acme", rc=1)
    assert "^" in bad.stderr
    # deployments: running/desired, not "-"; short names; -o wide
    t = cli.run("get", "deploy").stdout
    assert "RUNNING/DESIRED" in t and "0/2" in t, t
    w = cli.run("get", "deployments", "-o", "wide").stdout
    assert w.splitlines()[0].split()[-2:] == ["TENANT", "AGE"], w
    assert "did you mean 'sites'" in cli.run("get", "stes", rc=2).stderr
    assert "did you mean 'get'" in cli.run("gt", "sites", rc=2).stderr
    # rollout status: not done while nothing runs; --watch gives up at --timeout
    r = cli.run("rollout", "status", "shop-acme", rc=1)
    assert "0 of 2 instances running" in r.stdout
    r = cli.run("rollout", "status", "shop-acme", "--watch", "--timeout", "2s", rc=1)
    assert "timed out" in r.stderr
    # delete -f: dependents first, everything gone
    r = cli.run("delete", "-f", path)
    assert r.stdout.splitlines()[0] == "deployment/shop-acme deleted", r.stdout
    assert cli.run("get", "sites", "-o", "name").stdout == ""
    assert cli.run("get", "deploy", "-o", "name").stdout == ""


def test_watch_prints_changed_rows(cli):
    cli.run("apply", "-f", "-", input="kind: site\nname: s1\nlabels: {a: b}\n")
    p = subprocess.Popen([SKERRY, "get", "sites", "--watch"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=cli.env())
    try:
        lines = []
        first = p.stdout.readline()
        assert first.split() == ["NAME", "LABELS"], first
        assert p.stdout.readline().split() == ["s1", "a=b"]
        cli.run("apply", "-f", "-", input="kind: site\nname: s2\nlabels: {c: d}\n")
        lines.append(p.stdout.readline())
        assert lines[-1].split() == ["s2", "c=d"], lines
        cli.run("apply", "-f", "-", input="kind: site\nname: s1\nlabels: {a: z}\n")
        lines.append(p.stdout.readline())
        assert lines[-1].split() == ["s1", "a=z"], lines
    finally:
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=10)
    assert rc == 0, p.stderr.read()


def test_completion_completes_names(cli):
    cli.run("apply", "-f", "-", input="kind: site\nname: store-1\n---\nkind: site\nname: shed\n")
    script = cli.write("c.bash", cli.run("completion", "bash").stdout)
    bin_dir = os.path.dirname(SKERRY)
    r = subprocess.run(
        ["bash", "-c", f'PATH="{bin_dir}:$PATH"; source {script}; '
         'COMP_WORDS=(skerry get sites st); COMP_CWORD=3; _skerry; echo "${COMPREPLY[*]}"'],
        capture_output=True, text=True, env=cli.env(), timeout=60)
    assert r.stdout == "store-1\n", (r.stdout, r.stderr)
    z = cli.run("completion", "zsh").stdout
    if subprocess.run(["sh", "-c", "command -v zsh"], capture_output=True).returncode == 0:
        path = cli.write("_skerry", z)
        assert subprocess.run(["zsh", "-n", path]).returncode == 0


def test_hosts_table_shows_role_and_state(env):
    env.apply("kind: site\nname: s1\nlabels: {chain: acme}\n")
    env.start_agent("s1", "h1", labels={"zone": "a"})
    wait_for(lambda: env.get_json("hosts", "--site", "s1")["items"] and
             env.get_json("hosts", "--site", "s1")["items"][0].get("role"),
             60, what="the host's role to be reported")
    out = env.cli("get", "hosts", "--site", "s1").stdout
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "SITE", "ROLE", "STATE", "LABELS", "LAST-SEEN"], out
    cells = row.split()
    assert cells[0] == "h1" and cells[2] == "leader", out
    assert cells[3] != "-" and "zone=a" in cells[4], out
    sel = env.cli("get", "hosts", "--site", "s1", "-l", "zone = b").stderr
    assert "no hosts found" in sel


def test_tower_backup_of_a_running_tower_and_restore(cli, tmp_path):
    cli.run("apply", "-f", cli.write("sites.yaml", SITES))
    backup = str(tmp_path / "backup")
    r = subprocess.run([SKERRY, "tower", "backup", "--data", cli.tower.data, "--to", backup],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # written while it runs: the tower keeps answering and changing
    cli.run("apply", "-f", "-", input="kind: site\nname: after-backup\n")
    again = subprocess.run([SKERRY, "tower", "backup", "--data", cli.tower.data, "--to", backup],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "new folder" in again.stderr
    busy = subprocess.run([SKERRY, "tower", "restore", "--from", backup, "--data",
                           cli.tower.data], capture_output=True, text=True, timeout=60)
    assert busy.returncode == 1 and "not empty" in busy.stderr
    cli.tower.stop()

    restored = Tower(str(tmp_path / "restored-work"))
    os.makedirs(os.path.dirname(restored.data), exist_ok=True)
    r = subprocess.run([SKERRY, "tower", "restore", "--from", backup, "--data", restored.data],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cli.tower = restored.start()
    # the same admin token and CA, the sites as they were at the backup
    names = cli.run("get", "sites", "-o", "name").stdout.split()
    assert sorted(names) == ["site/north-1", "site/other-1", "site/west-1"], names
