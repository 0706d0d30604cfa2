"""Issue 7 point 8: replicas that stay lumped. A replicated service applied right after the
hosts of a site joined (the tower lists them) used to land on the hosts the leader had
already heard from, and stay there. Now the site spreads them once the hosts report in,
one replica at a time, the new copy running before the old one stops; a service with a
persistent volume stays where its data is (docs/scheduler.md, *Spread*)."""

from conftest import IMAGE, stays, wait_for
from site_harness import app_yaml, instance_ids, site_env  # noqa: F401 (fixture)

WEB = {"name": "web", "replicas": 2, "placement": {"match-host-labels": "tier = web"}}


def test_applied_right_after_join_spreads_over_the_eligible_hosts(site_env):
    s = site_env.site("sp", {"sp-a": {"labels": {"tier": "web"}},
                             "sp-b": {"labels": {"tier": "web"}},
                             "sp-c": {"labels": {"tier": "db"}}})
    s.start()  # returns as soon as the last host joined: no wait for its first heartbeat
    assert sorted(h["name"] for h in s.tower_hosts()) == ["sp-a", "sp-b", "sp-c"]
    site_env.apply(app_yaml("sp", [WEB]))
    want = instance_ids("sp", {"web": 2})
    s.wait_spread(want, ["sp-a", "sp-b"], what="one web replica on each of sp-a and sp-b")
    stays(lambda: s.runs_spread(want, ["sp-a", "sp-b"]), 4, what="the replicas stay spread",
          detail=lambda: f"running: {s.placements()}\n{s.logs()}")

    # `get hosts` shows each host's role and liveness: one leader, every host alive.
    def hosts_table():
        rows = [line.split() for line in
                site_env.cli("get", "hosts", "--site", "sp").stdout.splitlines()]
        assert rows[0] == ["NAME", "SITE", "ROLE", "STATE", "LABELS", "LAST-SEEN"], rows
        body = rows[1:]
        return (sorted(r[0] for r in body) == ["sp-a", "sp-b", "sp-c"] and
                [r[2] for r in body].count("leader") == 1 and
                all(r[2] in ("leader", "voter") and r[3] == "alive" for r in body) and body)
    wait_for(hosts_table, 30, what="get hosts: three voters, one the leader, all alive")


DB = f"""
  - name: db
    replicas: 2
    volumes: [{{name: data, persistent: {{size: 1Gi}}}}]
    containers:
      - name: main
        image: {IMAGE}
        cmd: ["/bin/sh", "-c", "while true; do sleep 1; done"]
"""  # not mounted: the agent does not make volumes yet, but the service is pinned all the same


def test_lumped_replicas_move_one_at_a_time_make_before_break(site_env):
    s = site_env.site("mb", {"mb-a": {}, "mb-b": {}})
    s.start(["mb-a"])
    text = app_yaml("mb", [{"name": "web", "replicas": 2}])
    app, deployment = text.split("---\n")
    site_env.apply(app + DB + "---\n" + deployment)
    web = instance_ids("mb", {"web": 2})
    db = instance_ids("mb", {"db": 2})
    s.wait_exactly_once(web | db, timeout=90, what="every instance on mb-a, the only host")

    s.start(["mb-b"])
    # From now on every instance always runs somewhere: a moving replica's new copy runs
    # before its old one stops. One web replica moves to mb-b; db (persistent) stays.
    def spread():
        pl = s.placements()
        assert set(pl) == web | db, f"an instance stopped running during the move: {pl}"
        return sorted(pl[i][0] for i in web if len(pl[i]) == 1) == ["mb-a", "mb-b"] and all(
            pl[i] == ["mb-a"] for i in db) and pl
    try:
        wait_for(spread, 60, interval=0.05, what="web spread over mb-a and mb-b")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{s.logs()}")
    stays(lambda: s.runs_exactly_once(web | db) and spread(), 4,
          what="web spread, db on mb-a, each instance once",
          detail=lambda: f"running: {s.placements()}\n{s.logs()}")
