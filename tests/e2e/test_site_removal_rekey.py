"""Issue 8, point 3: host removal that holds. Every joined host holds the site CA key, so a
removed host could sign a fresh leaf for a host id nobody denied. `skerry delete host`
therefore re-keys the site CA (docs/security.md, "Host removal and the site CA"): the
tower and the remaining hosts refuse whatever the retired key signs, the new key reaches
the remaining hosts and never the removed one, and the site keeps working."""

import datetime
import hashlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import SKERRY, wait_for
from site_harness import (app_yaml, identity, instance_ids, print_flush,  # noqa: F401
                          raft_hello, site_env, tls_probe)

SERVICES = [{"name": "web", "replicas": 3}]
LOST_AFTER = "300s"  # nothing in this test waits for a host to be declared lost
HTTP_GET = b"GET /v1/instances HTTP/1.1\r\nHost: skerry\r\nConnection: close\r\n\r\n"


def local_id(site_id, n):
    """The n-th id of the site's own range (docs/site-cluster.md)."""
    return (1 << 62) + site_id * (1 << 24) + n


def read(path):
    with open(path, "rb") as f:
        return f.read()


def fingerprint(pem):
    return hashlib.sha256(x509.load_pem_x509_certificate(pem).public_bytes(
        serialization.Encoding.DER)).hexdigest()


def forge(ca_pem, ca_key_pem, site_id, host_id, out_dir, name):
    """What a host holding the site CA key can do: sign a host certificate for any id of
    its site, as sk_ca_sign_client would. Returns (chain file, key file, chain PEM)."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
                f"skerry://site/{site_id}/host/{host_id}")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_pem
    cpath, kpath = os.path.join(out_dir, f"{name}.pem"), os.path.join(out_dir, f"{name}.key")
    with open(cpath, "wb") as f:
        f.write(chain)
    with open(kpath, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cpath, kpath, chain.decode()


def tower_call(tower, cert, key, method, path, body=None):
    """A request to the tower with a client certificate chain: (status, body text)."""
    ctx = ssl.create_default_context(cafile=tower.ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(cert, key)
    c = http.client.HTTPSConnection("127.0.0.1", tower.port, context=ctx, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, path, body=data,
                  headers={"Content-Type": "application/json"} if data else {})
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def host_files(h):
    return os.path.join(h.data, "cert.pem"), os.path.join(h.data, "key.pem")


def adopt(tower, reporter, name, host_id, chain):
    """The site's leader reporting a host that joined with the tower down."""
    return tower_call(tower, *host_files(reporter), "POST", "/v1/sync/status",
                      {"host": name, "host-id": host_id, "certificate": chain,
                       "instances": []})


def peer_verdicts(s, hosts, cert, key, host_id):
    """What each host's --listen port does with a certificate: raft hello and HTTP."""
    out = {}
    for o in hosts:
        for what, send in (("raft", raft_hello(host_id, "127.0.0.1:1")), ("http", HTTP_GET)):
            out[(o, what)] = tls_probe(s[o].port, cert, key, send=send, wait=3)[0]
    return out


class PosingServer:
    """A TLS server on loopback presenting a forged chain: the removed host posing as a
    host of the site to whoever dials it. Answers any request with a 200."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.served = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(c, server_side=True) as t:
                    t.settimeout(3)
                    if t.recv(4096):
                        self.served += 1
                        t.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                  b"Content-Length: 12\r\nConnection: close\r\n\r\n"
                                  b'{"items":[]}')
            except (OSError, ssl.SSLError):
                pass

    def close(self):
        self.sock.close()


def site_local_cli(env, addr, data, *args):
    e = {k: v for k, v in os.environ.items() if not k.startswith("SKERRY_")}
    e["HOME"] = env.workdir
    return subprocess.run([SKERRY, "--site-local", addr, "--agent-data", data] + list(args),
                          capture_output=True, text=True, env=e, timeout=30)


def test_removed_host_key_is_retired(site_env, tmp_path):
    s = site_env.site("rk", {f"rk-{x}": {} for x in "abc"}, lost_after=LOST_AFTER).start()
    s.wait_cluster()
    site_env.apply(app_yaml("rk", SERVICES))
    want = instance_ids("rk", {"web": 3})
    s.wait_exactly_once(want, timeout=90, what="the first placement")

    tower = site_env.tower
    leader = s.leader()
    victim = sorted(h for h in s.hosts if h != leader)[0]
    others = sorted(h for h in s.hosts if h != victim)
    v = s[victim]
    site_id = identity(v)["site-id"]
    old_ca, old_key = read(os.path.join(v.data, "site-ca.pem")), read(
        os.path.join(v.data, "site-ca.key"))
    old_fp = fingerprint(old_ca)
    reporter = s[others[0]]
    work = str(tmp_path)

    # Controls, before the removal: what the key signs is the site's own.
    id1, id2 = local_id(site_id, 1001), local_id(site_id, 1002)
    g1_cert, g1_key, g1_chain = forge(old_ca, old_key, site_id, id1, work, "rk-ghost1")
    st, body = adopt(tower, reporter, "rk-ghost1", id1, g1_chain)
    assert st == 200, (st, body)
    st, body = tower_call(tower, g1_cert, g1_key, "GET", "/v1/sync/desired")
    assert st == 200, (st, body)
    g2_cert, g2_key, _ = forge(old_ca, old_key, site_id, id2, work, "rk-ghost2")
    before = peer_verdicts(s, others, g2_cert, g2_key, id2)
    assert all(k != "refused" for k in before.values()), before

    # The operator removes a running host.
    r = site_env.cli("delete", "host", victim, "--site", "rk")
    assert "deleted" in r.stdout, r.stdout

    # A new generation reaches every remaining host, never the removed one.
    def rekeyed():
        fps = {o: fingerprint(read(os.path.join(s[o].data, "site-ca.pem"))) for o in others}
        return len(set(fps.values())) == 1 and old_fp not in fps.values() and fps
    try:
        new_fps = wait_for(rekeyed, 60, interval=0.3, what="the new site CA on every host")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{s.logs()}")
    new_fp = next(iter(new_fps.values()))
    print_flush(f"site CA re-keyed: {old_fp[:16]}... -> {new_fp[:16]}...")
    assert read(os.path.join(v.data, "site-ca.pem")) == old_ca
    assert read(os.path.join(v.data, "site-ca.key")) == old_key
    new_ca = read(os.path.join(reporter.data, "site-ca.pem"))
    new_key = read(os.path.join(reporter.data, "site-ca.key"))
    assert new_key != old_key

    # The tower: the very certificate it adopted before stays good (the removed host lacks
    # its private key), but the retired key cannot make another for that host...
    st, body = tower_call(tower, g1_cert, g1_key, "GET", "/v1/sync/desired")
    assert st == 200, (st, body)
    r1_cert, r1_key, _ = forge(old_ca, old_key, site_id, id1, work, "rk-ghost1-again")
    st, body = tower_call(tower, r1_cert, r1_key, "GET", "/v1/sync/desired")
    assert st == 401 and "retired site CA" in body, (st, body)
    # ...a host the removed one invents with it is not adopted...
    id3 = local_id(site_id, 1003)
    _, _, g3_chain = forge(old_ca, old_key, site_id, id3, work, "rk-ghost3")
    st, body = adopt(tower, reporter, "rk-ghost3", id3, g3_chain)
    assert st == 401 and "retired site CA" in body, (st, body)
    assert "rk-ghost3" not in [h["name"] for h in s.tower_hosts()]
    # ...nor without a certificate...
    st, body = tower_call(tower, *host_files(reporter), "POST", "/v1/sync/status",
                          {"host": "rk-ghost3", "host-id": id3, "instances": []})
    assert st == 400 and "certificate" in body, (st, body)
    # ...and the key cannot speak for a host the tower signed (the leader, say).
    lid = identity(s[leader])["host-id"]
    i_cert, i_key, _ = forge(old_ca, old_key, site_id, lid, work, "rk-impostor")
    st, body = tower_call(tower, i_cert, i_key, "GET", "/v1/sync/desired")
    assert st == 401, (st, body)

    # The site: raft and the site-local API refuse what the retired key signs.
    after = peer_verdicts(s, others, g2_cert, g2_key, id2)
    assert all(k == "refused" for k in after.values()), after
    after = peer_verdicts(s, others, r1_cert, r1_key, id1)
    assert all(k == "refused" for k in after.values()), after
    # The adopted certificate is still let in (the document lists it).
    after = peer_verdicts(s, others, g1_cert, g1_key, id1)
    assert all(k != "refused" for k in after.values()), after
    logs = "\n".join(s[o].log() for o in others)
    assert "retired site CA" in logs, s.logs()
    # A host's site client refuses a server the retired key signed (the removed host posing
    # as a host of the site); the control: the tower-signed victim's own data still trusts
    # the retired generation, as it holds it.
    pose = PosingServer(g2_cert, g2_key)
    try:
        r = site_local_cli(site_env, f"127.0.0.1:{pose.port}", reporter.data, "get", "hosts")
        assert r.returncode != 0 and "retired site CA" in r.stderr, (r.returncode, r.stderr)
        assert pose.served == 0
        r = site_local_cli(site_env, f"127.0.0.1:{pose.port}", v.data, "get", "hosts",
                           "-o", "json")
        assert r.returncode == 0 and pose.served == 1, (r.returncode, r.stderr)
    finally:
        pose.close()

    # The remaining hosts keep working: placement, the site-local API, the uplink. (What
    # the removed agent still runs is the operator's to stop: docs/site-cluster.md.)
    v.kill9()
    s.wait_exactly_once(want, avoid={victim}, what=f"every instance on {others}")
    for o in others:
        items = s.site_local_json(o, "get", "instances")
        assert {i["instance"] for i in items} >= set(want), items
    wait_for(lambda: {h["name"]: h.get("state") for h in s.tower_hosts()
                      if h["name"] in others} == {o: "alive" for o in others}, 30,
             what="the remaining hosts reported alive to the tower")

    # What the current generation signs is adopted and accepted.
    id4 = local_id(site_id, 1004)
    g4_cert, g4_key, g4_chain = forge(new_ca, new_key, site_id, id4, work, "rk-ghost4")
    st, body = adopt(tower, reporter, "rk-ghost4", id4, g4_chain)
    assert st == 200, (st, body)
    st, body = tower_call(tower, g4_cert, g4_key, "GET", "/v1/sync/desired")
    assert st == 200, (st, body)
    ann = json.loads(body)["site-ca"]
    assert (ann["generation"], ann["sha256"]) == (2, new_fp), body
    assert fingerprint(g1_chain.encode()) in ann["leaves"], body
    now = peer_verdicts(s, others, g4_cert, g4_key, id4)
    assert all(k != "refused" for k in now.values()), now
