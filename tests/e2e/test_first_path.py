"""The first whole path: YAML in, real containers out, on the sites whose labels match."""

import json
import os

from conftest import IMAGE, SKERRY, stays, wait_for

APP = f"""
kind: application
name: shop
version: "1.0.0"
services:
  - name: web
    replicas: 2
    containers:
      - name: httpd
        image: {IMAGE}
        cmd: ["/bin/httpd", "-f", "-p", "8080"]
        env: {{GREETING: hello}}
  - name: worker
    containers:
      - name: loop
        image: {IMAGE}
        cmd: ["/bin/sh", "-c", "while true; do sleep 1; done"]
        restart: always
"""

DEPLOYMENT = """
kind: deployment
name: shop-north
application: shop
version: "*"
sites: chain = acme and region in (north, west)
"""


def sites_yaml(prefix):
    return f"""
kind: site
name: {prefix}-a
labels: {{chain: acme, region: north}}
---
kind: site
name: {prefix}-b
labels: {{chain: acme, region: west}}
---
kind: site
name: {prefix}-c
labels: {{chain: acme, region: south}}
"""


def test_deployment_runs_on_matching_sites_only(env):
    p = env.podman
    env.apply(sites_yaml("t1"))
    out = env.apply(APP + "---" + DEPLOYMENT).stdout
    assert "application/shop 1.0.0 created" in out
    assert "deployment/shop-north created" in out
    for s in ("a", "b", "c"):
        env.start_agent(f"t1-{s}", f"t1-host-{s}")

    # Three containers a site: web/0, web/1 and worker/0.
    for site in ("t1-a", "t1-b"):
        wait_for(lambda: len(p.running(site=site)) == 3, 60, what=f"3 containers on {site}")
    c = p.containers(site="t1-c")
    assert c == [], c

    # The tower shows every instance running.
    def all_running():
        st = env.get_json("deployment", "shop-north")["status"]
        states = [i["state"] for s in st["sites"] for i in s["instances"]]
        return st["running"] == 6 and st["desired"] == 6 and states == ["running"] * 6
    wait_for(all_running, 30, what="status running 6/6")
    st = env.get_json("deployment", "shop-north")["status"]
    assert sorted(s["site"] for s in st["sites"]) == ["t1-a", "t1-b"]

    # The containers carry what the spec says.
    web = [x for x in p.running(site="t1-a") if x["Labels"]["skerry.service"] == "web"]
    info = p.inspect(web[0]["Id"])
    assert "GREETING=hello" in info["Config"]["Env"]
    assert info["Config"]["Cmd"] == ["/bin/httpd", "-f", "-p", "8080"]
    assert info["Config"]["Labels"]["skerry.application"] == "shop"
    assert info["Config"]["Labels"]["skerry.version"] == "1.0.0"

    # Relabelling: c joins, a leaves.
    env.apply("""
kind: site
name: t1-c
labels: {chain: acme, region: north}
---
kind: site
name: t1-a
labels: {chain: acme, region: east}
""")
    wait_for(lambda: len(p.running(site="t1-c")) == 3, 60, what="containers on t1-c")
    wait_for(lambda: p.containers(site="t1-a") == [], 60, what="t1-a emptied")
    assert len(p.running(site="t1-b")) == 3

    # Deleting the deployment removes every container.
    env.cli("delete", "deployment", "shop-north")
    for site in ("t1-a", "t1-b", "t1-c"):
        wait_for(lambda: p.containers(site=site) == [], 60, what=f"{site} emptied")


def start_one_site(env, prefix, app=APP):
    env.apply(f"kind: site\nname: {prefix}\nlabels: {{chain: acme, region: north}}\n")
    env.apply(app + "---" + DEPLOYMENT)
    agent = env.start_agent(prefix, f"{prefix}-host")
    wait_for(lambda: len(env.podman.running(site=prefix)) == 3, 60, what="3 containers")
    return agent


def snapshot(podman, site):
    return {c["Id"]: podman.inspect(c["Id"])["State"]["StartedAt"]
            for c in podman.running(site=site)}


def test_agent_restart_adopts_running_containers(env):
    agent = start_one_site(env, "t2")
    before = snapshot(env.podman, "t2")
    assert agent.stop() == 0
    env.start_agent("t2", "t2-host")
    # Through several reconcile rounds of the new agent, nothing may change.
    wait_for(lambda: "running" in json.dumps(env.get_json("deployment", "shop-north")), 30)
    stays(lambda: snapshot(env.podman, "t2") == before, 6, what="the containers untouched")


def test_agent_runs_lean(env):
    """`skerry agent` becomes skerry-agent from beside skerry (docs/architecture.md): the
    same process id, none of the tower's libraries nor libcurl's chain in its memory."""
    agent = start_one_site(env, "t7")
    lean = os.path.join(os.path.dirname(os.path.realpath(SKERRY)), "skerry-agent")
    assert os.readlink(f"/proc/{agent.p.pid}/exe") == lean
    with open(f"/proc/{agent.p.pid}/maps") as f:
        libs = {os.path.basename(line.split()[-1]) for line in f if ".so" in line}
    heavy = [l for l in libs if l.startswith(("libcurl", "libpq", "libsqlite3", "libldns",
                                              "libcrypto", "libkrb5", "libldap", "libssh2"))]
    assert heavy == [], heavy
    assert any(l.startswith("libgnutls") for l in libs)


def test_killed_container_comes_back(env):
    start_one_site(env, "t3")
    worker = [c for c in env.podman.running(site="t3")
              if c["Labels"]["skerry.service"] == "worker"][0]
    started = env.podman.inspect(worker["Id"])["State"]["StartedAt"]
    env.podman.kill(worker["Id"])

    def back():
        now = [c for c in env.podman.running(site="t3")
               if c["Labels"]["skerry.service"] == "worker"]
        return now and (now[0]["Id"] != worker["Id"] or
                        env.podman.inspect(now[0]["Id"])["State"]["StartedAt"] != started)
    wait_for(back, 30, what="worker restarted")
    wait_for(lambda: [i["restarts"] for s in env.get_json("deployment", "shop-north")["status"]
                      ["sites"] for i in s["instances"] if i["service"] == "worker"] == [1],
             20, what="the restart counted in the status")


def test_restart_never_leaves_exited_container(env):
    app = APP.replace("restart: always", "restart: never")
    start_one_site(env, "t4", app)
    worker = [c for c in env.podman.running(site="t4")
              if c["Labels"]["skerry.service"] == "worker"][0]
    env.podman.kill(worker["Id"])

    def worker_states():
        return [c["State"] for c in env.podman.containers(site="t4")
                if c["Labels"]["skerry.service"] == "worker"]
    wait_for(lambda: worker_states() == ["exited"], 30, what="the worker exited")
    # Through several reconcile rounds it is neither restarted nor replaced nor removed.
    stays(lambda: worker_states() == ["exited"], 6, what="the worker left exited")


def test_tower_down_keeps_containers_and_agent_reconnects(env):
    start_one_site(env, "t5")
    before = snapshot(env.podman, "t5")
    env.tower.stop()
    stays(lambda: snapshot(env.podman, "t5") == before, 5, what="the containers untouched")
    env.tower.start()
    # A change made after the tower returns reaches the site.
    env.apply(APP.replace("replicas: 2", "replicas: 3").replace('"1.0.0"', '"1.1.0"'))
    wait_for(lambda: len(env.podman.running(site="t5")) == 4, 60, what="4 containers")
    versions = {c["Labels"]["skerry.version"] for c in env.podman.running(site="t5")}
    assert versions == {"1.1.0"}


def test_changed_spec_replaces_container(env):
    start_one_site(env, "t6")
    old = {c["Id"] for c in env.podman.running(site="t6")}
    env.apply(APP.replace("GREETING: hello", "GREETING: bonjour").replace('"1.0.0"', '"1.0.1"'))

    def replaced():
        web = [c for c in env.podman.running(site="t6") if c["Labels"]["skerry.service"] == "web"]
        return len(web) == 2 and all(
            "GREETING=bonjour" in env.podman.inspect(c["Id"])["Config"]["Env"] for c in web)
    wait_for(replaced, 60, what="web replaced with the new spec")
    web_ids = {c["Id"] for c in env.podman.running(site="t6")
               if c["Labels"]["skerry.service"] == "web"}
    assert not (web_ids & old)
    wait_for(lambda: len(env.podman.running(site="t6")) == 3, 60, what="3 containers")
