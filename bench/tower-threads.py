#!/usr/bin/python3
"""The tower's request threads (docs/architecture.md, "The tower"): its CPU per site
request, on one kept connection and on a fresh connection each, and the slowest `whoami`
while the costliest accepted `?match=` runs over SITES sites. No Podman: a private tower
in a temporary folder. The last lines are machine-readable "RESULT key=value".

Usage: bench/tower-threads.py [SKERRY_BIN] (default build/skerry; SITES, REQUESTS env).
"""

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKERRY = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "skerry")
SITES = int(os.environ.get("SITES", "4000"))
REQUESTS = int(os.environ.get("REQUESTS", "2000"))
TERM = 'note ~ "(a|aa|.){1,99}.*"'  # the costliest expression accepted (bench/labelexpr.sh)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Tower:
    def __init__(self, d):
        self.d, self.port = d, free_port()
        self.data = os.path.join(d, "tower")
        self.log = open(os.path.join(d, "tower.log"), "wb")
        self.p = subprocess.Popen([SKERRY, "tower", "--data", self.data, "--listen",
                                   f"127.0.0.1:{self.port}"], stdout=self.log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=dict(os.environ, HOME=d))
        deadline = time.time() + 30
        while not os.path.exists(os.path.join(self.data, "admin.token")):
            if time.time() > deadline or self.p.poll() is not None:
                sys.exit("the tower did not start")
            time.sleep(0.05)
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        with open(os.path.join(self.data, "admin.token")) as f:
            self.token = f.read().strip()
        self.ca = os.path.join(self.data, "ca.pem")

    def conn(self, cert=None):
        ctx = ssl.create_default_context(cafile=self.ca)
        if cert:
            ctx.load_cert_chain(*cert)
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=300)

    def ask(self, c, method, path, body=None, token=True):
        h = {"Content-Type": "application/json"}
        if token:
            h["Authorization"] = "Bearer " + self.token
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        r = c.getresponse()
        raw = r.read()
        return r.status, json.loads(raw) if raw else None

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(30)


def join(t, d):
    c = t.conn()
    note = "a" * 256
    for i in range(SITES):
        s, out = t.ask(c, "PUT", f"/v1/sites/store-{i:05d}",
                       {"kind": "site", "name": f"store-{i:05d}",
                        "labels": {"chain": "acme", "note": note}})
        assert s == 200, out
    s, out = t.ask(c, "POST", "/v1/sites/store-00000/tokens")
    key, csr = os.path.join(d, "h.key"), os.path.join(d, "h.csr")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
                    "-subj", "/CN=h0"], check=True, capture_output=True)
    with open(csr) as f:
        s, joined = t.ask(c, "POST", "/v1/join",
                          {"token": out["token"], "csr": f.read(), "name": "h0"}, token=False)
    assert s == 200, joined
    crt = os.path.join(d, "h.crt")
    with open(crt, "w") as f:
        f.write(joined["certificate"])
    c.close()
    return crt, key


def site_cpu(t, cert, fresh):
    poll = "/v1/sync/desired?generation=0&wait=0"
    before = cpu_s(t.p.pid)
    c = t.conn(cert)
    for _ in range(REQUESTS):
        if fresh:
            c.close()
            c = t.conn(cert)
        s, _ = t.ask(c, "GET", poll, token=False)
        assert s == 200
    c.close()
    return (cpu_s(t.p.pid) - before) / REQUESTS * 1e6


def whoami_during_match(t):
    q = "/v1/sites?match=" + urllib.parse.quote(TERM)
    took = {}

    def match():
        t0 = time.monotonic()
        c = t.conn()
        s, out = t.ask(c, "GET", q)
        assert s == 200 and len(out["items"]) == SITES, s
        took["match"] = time.monotonic() - t0

    th = threading.Thread(target=match)
    th.start()
    slowest, n = 0.0, 0
    while th.is_alive() or n == 0:
        t0 = time.monotonic()
        c = t.conn()
        s, _ = t.ask(c, "GET", "/v1/whoami")
        c.close()
        assert s == 200
        slowest, n = max(slowest, time.monotonic() - t0), n + 1
    th.join()
    return took["match"], slowest, n


def main():
    d = tempfile.mkdtemp(prefix="skerry-bench-threads-")
    t = None
    try:
        t = Tower(d)
        cert = join(t, d)
        kept = site_cpu(t, cert, False)
        fresh = site_cpu(t, cert, True)
        match_s, slowest, n = whoami_during_match(t)
        print(f"{SITES} sites; tower CPU per site request: {kept:.0f} us on a kept "
              f"connection, {fresh:.0f} us on a fresh one; a ?match= over all took "
              f"{match_s:.2f} s, the slowest of {n} whoami meanwhile {slowest * 1000:.0f} ms")
        print(f"RESULT sites={SITES}")
        print(f"RESULT site_cpu_kept_us={kept:.0f}")
        print(f"RESULT site_cpu_fresh_us={fresh:.0f}")
        print(f"RESULT match_s={match_s:.2f}")
        print(f"RESULT whoami_slowest_ms={slowest * 1000:.0f}")
        print(f"RESULT whoami_count={n}")
    finally:
        if t:
            t.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
