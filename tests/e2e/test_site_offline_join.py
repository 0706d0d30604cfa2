"""Issue 3: a host joins its site while the tower is unreachable. Three agents form the
site; the tower stops; a site-local token from `skerry --site-local ... site token`; a
fourth agent joins through a peer with it (a certificate from the site CA, a host id from
the site's own range) and gets its instance of a one-per-host service. When the tower is
back, the leader's reports make it adopt the host: `get hosts --site` lists it, with the
id the site gave it, and the tower accepts its site-CA-signed certificate."""

import http.client
import os
import ssl

from conftest import Proc, wait_for
from site_harness import Host, app_yaml, identity, site_env, tls_probe  # noqa: F401


def tower_get_as_host(tower, data, path):
    """GET path on the tower with the host certificate (chain) of agent folder data."""
    ctx = ssl.create_default_context(cafile=tower.ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(os.path.join(data, "cert.pem"), os.path.join(data, "key.pem"))
    c = http.client.HTTPSConnection("127.0.0.1", tower.port, context=ctx, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def test_join_with_the_tower_down(site_env):
    s = site_env.site("so", {f"so-{x}": {} for x in "abc"}).start()
    s.wait_cluster()
    site_env.apply(app_yaml("so", [{"name": "each", "mode": "one-per-host"}]))
    wait_for(lambda: sorted(h for hs in s.placements().values() for h in hs)
             == ["so-a", "so-b", "so-c"], 90, what="one instance on each of the three hosts")
    # Every host holds the site CA the tower handed out at join.
    for h in s.hosts.values():
        assert os.path.exists(os.path.join(h.data, "site-ca.pem"))
        assert os.stat(os.path.join(h.data, "site-ca.key")).st_mode & 0o777 == 0o600

    site_env.tower.stop()
    assert not site_env.tower.proc.alive()
    # Any host makes the token (a follower forwards to the leader).
    follower = next(n for n in s.hosts if n != s.wait_leader(list(s.hosts)))
    token = s.site_local(follower, "site", "token").stdout.strip()
    secret, _, pin = token.partition(".")
    assert len(secret) == 64 and len(pin) == 64, token

    # Without a certificate, nothing but the join path is open.
    kind, got = tls_probe(s["so-a"].port,
                          send=b"GET /v1/site/instances HTTP/1.1\r\nHost: x\r\n\r\n")
    assert kind == "refused", (kind, got)

    # The token pins the tower CA: a peer whose CA is another one gets nothing.
    x = Host(s, "so-x")
    bad_pin = secret + "." + ("0" * 64)
    r = Proc("agent-so-x", ["agent", "--data", x.data, "--runtime", site_env.podman.url,
                            "--name", x.name, "--listen", x.listen, "--join", bad_pin,
                            "--peer", s["so-a"].listen], site_env.workdir).start()
    assert r.p.wait(30) == 1
    assert "its CA is not the one the token names" in r.log(), r.log()
    assert not os.path.exists(os.path.join(x.data, "cert.pem"))

    d = Host(s, "so-d")
    s.hosts["so-d"] = d
    args = ["agent", "--data", d.data, "--runtime", site_env.podman.url, "--name", d.name,
            "--listen", d.listen, "--dev-dir", d.dev_dir, "--join", token,
            "--peer", s["so-a"].listen]
    d.proc = Proc("agent-so-d", args, site_env.workdir).start()
    site_env.agents[d.name] = d.proc
    wait_for(lambda: d.joined or not d.alive(), 30, what="so-d to join through so-a")
    assert d.alive(), d.log()
    me = identity(d)
    assert me["host-id"] >= 2**62, me
    assert me["site"] == "so" and me["tower"] == site_env.tower.addr, me
    # Its certificate comes from the site CA and is sent with it.
    with open(os.path.join(d.data, "cert.pem")) as f:
        chain = f.read()
    with open(os.path.join(d.data, "site-ca.pem")) as f:
        site_ca = f.read()
    assert chain.count("BEGIN CERTIFICATE") == 2 and chain.endswith(site_ca), chain

    # A one-time token: a second use is refused.
    e = Host(s, "so-e")
    r = Proc("agent-so-e", ["agent", "--data", e.data, "--runtime", site_env.podman.url,
                            "--name", e.name, "--listen", e.listen, "--join", token,
                            "--peer", s["so-b"].listen], site_env.workdir).start()
    assert r.p.wait(30) == 1
    assert "join token already used" in r.log() or "unknown or expired" in r.log(), r.log()

    s.wait_cluster(timeout=60)
    wait_for(lambda: sorted(h for hs in s.placements().values() for h in hs)
             == ["so-a", "so-b", "so-c", "so-d"], 90,
             what="an instance on the host that joined with the tower down")

    # The tower comes back: the leader reports so-d, and the tower adopts it with its id.
    site_env.tower.start()

    def listed():
        hosts = {h["name"]: h for h in s.tower_hosts()}
        return "so-d" in hosts and hosts["so-d"]
    got = wait_for(listed, 60, interval=0.5, what="so-d in get hosts --site so")
    assert got["id"] == me["host-id"], got
    status, body = tower_get_as_host(site_env.tower, d.data, "/v1/sync/desired")
    assert status == 200, (status, body)
    # The tower's own next join still gets an id of its own sequence.
    f = Host(s, "so-f")
    s.hosts["so-f"] = f
    f.start()
    wait_for(lambda: f.joined or not f.alive(), 30, what="so-f to join through the tower")
    assert f.alive(), f.log()
    assert identity(f)["host-id"] < 2**62, identity(f)
