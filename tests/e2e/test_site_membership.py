"""Issue 3: a site's membership changes. `skerry delete host NAME --site S` removes a host:
its instances run on the others at once (long before host-lost-after), and its certificate
is refused by the tower and by every host of the site, even when its agent runs again."""

import http.client
import json
import os
import shutil
import ssl
import time

from conftest import stays, wait_for
from site_harness import (app_yaml, identity, instance_ids, print_flush,  # noqa: F401
                          site_env, tls_probe)

SERVICES = [{"name": "web", "replicas": 3}, {"name": "worker", "replicas": 2}]
# Far longer than the test waits for anything: work that moves did not move because the
# host was declared lost.
LOST_AFTER = "300s"


def tower_get_as_host(tower, host, path):
    """GET path on the tower with the host's client certificate: (status, body)."""
    ctx = ssl.create_default_context(cafile=tower.ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(os.path.join(host.data, "cert.pem"), os.path.join(host.data, "key.pem"))
    c = http.client.HTTPSConnection("127.0.0.1", tower.port, context=ctx, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def test_remove_host(site_env):
    s = site_env.site("rm", {f"rm-{x}": {"labels": {"n": x}} for x in "abc"},
                      lost_after=LOST_AFTER).start()
    s.wait_cluster()
    site_env.apply(app_yaml("rm", SERVICES))
    want = instance_ids("rm", {"web": 3, "worker": 2})
    s.wait_exactly_once(want, timeout=90, what="the first placement")

    leader = s.leader()
    placed = s.placements()
    victim = next(h for h in sorted(s.hosts) if h != leader and
                  any(hs == [h] for hs in placed.values()))
    others = sorted(h for h in s.hosts if h != victim)
    v = s[victim]
    status, body = tower_get_as_host(site_env.tower, v, "/v1/sync/desired")
    assert status == 200, (status, body)

    # Unknown hosts are named in the error.
    r = site_env.cli("delete", "host", "rm-nope", "--site", "rm", check=False)
    assert r.returncode != 0 and "rm-nope" in r.stderr, (r.returncode, r.stderr)

    # The host dies (agent and containers) and the operator removes it.
    v.kill9()
    t0 = time.monotonic()
    r = site_env.cli("delete", "host", victim, "--site", "rm")
    assert "deleted" in r.stdout, r.stdout
    s.wait_exactly_once(want, avoid={victim}, what=f"{victim}'s instances on {others}")
    took = time.monotonic() - t0
    print_flush(f"host {victim} removed: its instances ran elsewhere after {took:.2f} s")

    # The tower forgets it and refuses its certificate.
    assert victim not in [h["name"] for h in s.tower_hosts()], s.tower_hosts()
    status, body = tower_get_as_host(site_env.tower, v, "/v1/sync/desired")
    assert status == 401, (status, body)
    assert "not known" in body, body
    # The site forgets it too, and refuses its certificate: raft and the site-local API.
    site_view = s.site_hosts(others[0])
    assert site_view is not None, s.last_site_error
    assert victim not in [h["name"] for h in site_view], site_view
    for o in others:
        r = s.site_local(o, "get", "instances", "-o", "json", data=v.data, check=False)
        assert r.returncode != 0, f"{victim}'s certificate was accepted by {o}: {r.stdout}"
        kind, got = tls_probe(s[o].port, os.path.join(v.data, "cert.pem"),
                              os.path.join(v.data, "key.pem"),
                              send=b"GET /v1/hosts HTTP/1.1\r\nHost: s\r\n\r\n", wait=3)
        assert kind == "refused", f"{victim} -> {o}: {kind} {got!r}"

    # Its agent starts again with its old data: it is not let back in and runs nothing.
    v.start()
    stays(lambda: s.runs_exactly_once(want, avoid={victim}), 6,
          what=f"nothing runs on the removed {victim}, nothing runs twice",
          detail=lambda: f"running: {s.placements()}\n{s.logs()}")
    view = s.site_hosts(others[0]) or []
    assert victim not in [h["name"] for h in view], view
    assert victim not in [h["name"] for h in s.tower_hosts()]
    assert "removed from the site" in "\n".join(s[o].log() for o in others), s.logs()
    v.stop()

    # Its name is free again: a new host of that name joins with a new id.
    old_id = identity(v)["host-id"]
    v.proc = None
    shutil.rmtree(v.data)
    v.start()
    s.wait_alive(victim, via=others[0], timeout=60)
    assert identity(v)["host-id"] != old_id
    hosts = json.loads(site_env.cli("get", "hosts", "--site", "rm", "-o", "json").stdout)
    assert victim in [h["name"] for h in hosts["items"]], hosts


def test_remove_the_leader(site_env):
    """The leader itself is removed while it runs: it hands leadership over, the new leader
    takes it out of the raft configuration, and its work runs on the others."""
    s = site_env.site("rl", {f"rl-{x}": {} for x in "abc"}, lost_after=LOST_AFTER).start()
    s.wait_cluster()
    site_env.apply(app_yaml("rl", SERVICES))
    want = instance_ids("rl", {"web": 3, "worker": 2})
    s.wait_exactly_once(want, timeout=90, what="the first placement")
    victim = s.leader()
    others = sorted(h for h in s.hosts if h != victim)
    t0 = time.monotonic()
    site_env.cli("delete", "host", victim, "--site", "rl")

    def elsewhere():
        pl = s.placements()
        return set(want) <= set(pl) and all(
            any(h != victim for h in pl[i]) for i in want) and pl
    s.wait_leader(others)
    try:
        wait_for(elsewhere, 40, interval=0.2, what=f"every instance on {others}")
    except AssertionError as e:
        raise AssertionError(f"{e}\nrunning: {s.placements()}\n{s.logs()}")
    print_flush(f"leader {victim} removed: new leader {s.leader(others[0])}, its instances "
                f"ran elsewhere after {time.monotonic() - t0:.2f} s")
    view = s.site_hosts(others[0]) or []
    assert sorted(h["name"] for h in view) == others, view
    # Whatever the removed agent still runs is its own business; once it is gone, every
    # instance runs exactly once on the others.
    s[victim].kill9()
    s.wait_exactly_once(want, avoid={victim}, what="every instance exactly once on the others")
