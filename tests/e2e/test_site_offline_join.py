"""Issue 3: a host joins its site while the tower is unreachable. Three agents form the
site; the tower stops; a site-local token from `skerry --site-local ... site token`; a
fourth agent joins through a peer with it (a certificate from the site CA, a host id from
the site's own range) and gets its instance of a one-per-host service."""

import os

from conftest import Proc, wait_for
from site_harness import Host, app_yaml, identity, site_env, tls_probe  # noqa: F401


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
