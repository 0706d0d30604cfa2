"""Issue 3: hosts talk mutual TLS bound to their site. A host of another site, a host of
another tower's CA, or a client with no certificate is refused on every --listen port, and
nothing readable crosses the wire."""

import os
import secrets
import socket
import threading

from conftest import Env, wait_for
from site_harness import (LoopbackCapture, app_yaml, identity, raft_hello,  # noqa: F401
                          site_env, tls_probe)

HTTP_GET = b"GET /v1/instances HTTP/1.1\r\nHost: skerry\r\nConnection: close\r\n\r\n"


def test_other_site_and_other_ca_are_refused(site_env):
    a = site_env.site("sa", {f"sa-{x}": {} for x in "abc"}).start()
    a.wait_cluster()
    site_env.apply(app_yaml("sa", [{"name": "web", "replicas": 2}]))
    a.wait_exactly_once({"default/sa/web/0", "default/sa/web/1"}, timeout=90)

    # A host of another site of the same tower (same CA, valid certificate).
    b = site_env.site("sb", {"sb-x": {}}, labels={"role": "other"}).start()
    # A host of a site with the same name on another tower (another CA): its site and
    # host ids may well be the same numbers as sa's.
    env2 = Env(os.path.join(site_env.workdir, "tower2"), site_env.podman)
    os.makedirs(env2.workdir, exist_ok=True)
    env2.tower.start()
    site_env.extra_towers.append(env2.tower)
    z = site_env.site("sa", {"sa-z": {}}, tower=env2.tower, cli=env2.cli).start()
    wait_for(lambda: len(env2.get_json("hosts", "--site", "sa")["items"]) == 1, 30)

    intruders = {"sb-x (other site)": b["sb-x"], "sa-z (other CA)": z["sa-z"]}
    for target in a.hosts.values():
        # Control: a host of the site, with its own id in the hello, is let in (ack byte).
        peer = next(h for h in a.hosts.values() if h is not target)
        pid = identity(peer)["host-id"]
        kind, got = tls_probe(target.port, os.path.join(peer.data, "cert.pem"),
                              os.path.join(peer.data, "key.pem"),
                              send=raft_hello(pid, peer.listen))
        assert kind in ("data", "open"), f"{peer.name} -> {target.name}: {kind} {got!r}"

        kind, got = tls_probe(target.port, send=HTTP_GET)
        assert kind == "refused", f"no certificate -> {target.name}: {kind} {got!r}"
        for what, h in intruders.items():
            cert, key = os.path.join(h.data, "cert.pem"), os.path.join(h.data, "key.pem")
            hid = identity(h)["host-id"]
            for send in (raft_hello(hid, h.listen), HTTP_GET, b""):
                kind, got = tls_probe(target.port, cert, key, send=send, wait=3)
                assert kind == "refused", f"{what} -> {target.name} {send[:20]!r}: {kind} {got!r}"
            # Nor through the CLI with its data folder.
            r = a.site_local(target.name, "get", "instances", "-o", "json", data=h.data,
                             check=False)
            assert r.returncode != 0, f"{what} read {target.name}'s site: {r.stdout}"
            assert "default/sa/web" not in r.stdout, r.stdout
        # The site's own host reads it.
        items = a.site_local_json(target.name, "get", "instances")
        assert {i["instance"] for i in items} >= {"default/sa/web/0", "default/sa/web/1"}

    # Nobody joined: the site still has its three hosts, the other site its one.
    assert sorted(h["name"] for h in a.tower_hosts()) == ["sa-a", "sa-b", "sa-c"]
    assert [h["name"] for h in b.tower_hosts()] == ["sb-x"]
    logs = "".join(h.log() for h in a.hosts.values())
    assert "refused" in logs, "refusals are logged as warnings (docs/site-cluster.md)"


def plain_control(capture, secret):
    """Plain TCP on loopback carrying the secret: the capture must see it (else it proves
    nothing)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    capture.add_port(port)
    got = []
    t = threading.Thread(target=lambda: got.append(srv.accept()[0].recv(100)))
    t.start()
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(b"control " + secret)
    t.join(5)
    srv.close()
    return port


def test_no_plaintext_between_hosts(site_env):
    secret = ("wire-" + secrets.token_hex(12)).encode()
    hosts = {f"wi-{x}": {} for x in "abc"}
    s = site_env.site("wi", hosts)
    ports = {h.port for h in s.hosts.values()} | {site_env.tower.port}
    cap = LoopbackCapture(ports)
    try:
        s.start()
        s.wait_cluster()
        site_env.apply(app_yaml("wi", [{"name": "web", "replicas": 3,
                                        "env": {"WIRE_SECRET": secret.decode()}}]))
        s.wait_exactly_once({f"default/wi/web/{i}" for i in range(3)}, timeout=90)
        # Every host runs one: the desired document reached every host (raft did it).
        for c in site_env.podman.running(site="wi"):
            env = site_env.podman.inspect(c["Id"])["Config"]["Env"]
            assert f"WIRE_SECRET={secret.decode()}" in env
        items = s.site_local_json("wi-a", "get", "instances")
        assert len(items) == 3
        control = plain_control(cap, secret)
        wait_for(lambda: control in {p for k in cap.streams() for p in k}, 5)
    finally:
        cap.stop()

    streams = cap.streams()
    ctl = [b for (sp, dp), b in streams.items() if control in (sp, dp)]
    assert any(secret in b for b in ctl), "the capture misses plaintext: it proves nothing"
    between = {k: b for k, b in streams.items() if control not in k}
    for h in s.hosts.values():
        n = cap.total_bytes(h.port)
        assert n > 2000, f"{h.name}'s port carried only {n} bytes: no site traffic captured"
    leaks = [k for k, b in between.items() if secret in b]
    assert not leaks, f"the secret crossed loopback in clear on {leaks}"
    # Every connection to a host's port starts with a TLS handshake record.
    for (sp, dp), first in cap.first.items():
        if dp in {h.port for h in s.hosts.values()}:
            assert first[:1] == b"\x16", f"{sp}->{dp} does not start with TLS: {first!r}"
