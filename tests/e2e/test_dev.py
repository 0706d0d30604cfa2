"""`skerry dev`: the whole installation on one machine, as the README's first command runs it."""

import json
import os
import re
import signal
import subprocess

from conftest import SKERRY, free_port, wait_for


def processes_mentioning(path):
    """PIDs whose command line names path (what skerry dev must not leave behind)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if path.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_dev_runs_the_example_and_cleans_up(tmp_path):
    data = str(tmp_path / "dev")
    port = free_port()
    out_path = tmp_path / "dev.out"
    with open(out_path, "w") as out:
        p = subprocess.Popen([SKERRY, "dev", "--data", data, "--listen", f"127.0.0.1:{port}",
                              "--hosts", "2"],
                             stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        def started():
            assert p.poll() is None, out_path.read_text()
            return "skerry dev is running" in out_path.read_text()
        wait_for(started, 180, interval=0.5, what="skerry dev to start")
        text = out_path.read_text()
        m = re.search(r"export SKERRY_ADDR=(\S+) SKERRY_TOKEN=(\S+) SKERRY_CA=(\S+)", text)
        assert m, text
        env = dict(os.environ, HOME=str(tmp_path), SKERRY_ADDR=m[1], SKERRY_TOKEN=m[2],
                   SKERRY_CA=m[3])
        example = os.path.join(data, "example.yaml")
        assert example in text

        def cli(*args):
            r = subprocess.run([SKERRY] + list(args), env=env, capture_output=True, text=True,
                               timeout=60)
            assert r.returncode == 0, (args, r.stdout, r.stderr)
            return r.stdout
        cli("apply", "-f", example)

        def running():
            status = cli("get", "deployment", "example", "-o", "json")
            return '"state": "running"' in status or '"state":"running"' in status
        wait_for(running, 120, interval=1, what="the example running")
        sites = cli("get", "sites")
        assert "dev-site" in sites
        # Two hosts, one site cluster: one leader, both alive.
        def two_hosts():
            hosts = json.loads(cli("get", "hosts", "--site", "dev-site", "-o", "json"))["items"]
            return (len(hosts) == 2 and all(h.get("state") == "alive" for h in hosts)
                    and sorted(h.get("role") for h in hosts).count("leader") == 1)
        wait_for(two_hosts, 60, interval=1, what="two alive hosts, one leader")
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                rc = p.wait(120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise AssertionError("skerry dev did not stop:\n" + out_path.read_text())
        else:
            rc = p.returncode
    assert rc == 0, out_path.read_text()
    # What it started may take a moment to be reaped (conmon after its container); one
    # that is left behind never goes.
    try:
        wait_for(lambda: processes_mentioning(data) == [], 10, interval=0.1,
                 what="no process left behind")
    except AssertionError:
        raise AssertionError(f"processes left behind: {processes_mentioning(data)}") from None
    with open("/proc/mounts") as f:
        mounts = [line for line in f if data in line]
    assert mounts == [], mounts
