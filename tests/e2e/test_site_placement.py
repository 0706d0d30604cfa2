"""Issue 3: where the site's scheduler places instances, with three real agents.

pl-a: role=till, zone=front; pl-b: role=till, zone=back, with a camera (/dev/video0);
pl-c: role=office.
"""

import json

from conftest import wait_for
from site_harness import app_yaml, exec_exit_code, site_env  # noqa: F401 (fixture)

HOSTS = {
    "pl-a": {"labels": {"role": "till", "zone": "front"}},
    "pl-b": {"labels": {"role": "till", "zone": "back"}, "camera": True},
    "pl-c": {"labels": {"role": "office"}},
}

SERVICES = [
    # Needs the camera: only pl-b has one; its node is passed into the container.
    {"name": "cam", "replicas": 1, "placement": {"devices": ["camera"]}, "devices": ["camera"]},
    # Only the tills, spread: one each.
    {"name": "till", "replicas": 2, "placement": {"match-host-labels": "role = till"}},
    {"name": "front", "replicas": 1, "placement": {"match-host-labels": "zone = front"}},
    # Anywhere, spread over two different hosts.
    {"name": "spread", "replicas": 2},
    # One on every till.
    {"name": "every", "mode": "one-per-host",
     "placement": {"match-host-labels": "role = till"}},
    # Larger than any host.
    {"name": "huge", "replicas": 1, "resources": {"cpu": 4096, "memory": "64Ti"}},
]


def by_service(placements):
    out = {}
    for inst, hosts in placements.items():
        out.setdefault(inst.split("/")[2], []).extend(hosts)
    return {k: sorted(v) for k, v in out.items()}


def test_placement_devices_labels_spread_and_unplaceable(site_env):
    s = site_env.site("pl", HOSTS).start()
    s.wait_cluster()
    site_env.apply(app_yaml("pl", SERVICES))

    expected_running = {"cam": 1, "till": 2, "front": 1, "spread": 2, "every": 2}

    def placed():
        svc = by_service(s.placements())
        counts = {k: len(v) for k, v in svc.items()}
        return counts == expected_running and svc
    try:
        svc = wait_for(placed, 90, what="cam 1, till 2, front 1, spread 2, every 2 running")
    except AssertionError as e:
        raise AssertionError(f"{e}\nrunning: {s.placements()}\n{s.logs()}")
    print("placements:", json.dumps(s.placements(), sort_keys=True))

    assert svc["cam"] == ["pl-b"], f"the camera service must run on the camera host: {svc}"
    assert svc["till"] == ["pl-a", "pl-b"], f"role = till, spread: {svc}"
    assert svc["front"] == ["pl-a"], f"zone = front: {svc}"
    assert len(set(svc["spread"])) == 2, f"2 replicas on 3 hosts go to 2 hosts: {svc}"
    assert svc["every"] == ["pl-a", "pl-b"], f"one-per-host on the tills: {svc}"
    assert "huge" not in svc, svc
    assert all(len(h) == 1 for h in s.placements().values()), s.placements()

    # The resource request no host can meet is reported, naming the hosts.
    def huge_reported():
        items = [i for i in s.tower_instances() if i.get("service") == "huge" or
                 "/huge/" in i.get("instance", "")]
        return items and items[0].get("state") == "unplaceable" and items[0]
    try:
        huge = wait_for(huge_reported, 30, what="huge reported unplaceable to the tower")
    except AssertionError as e:
        raise AssertionError(f"{e}\ninstances: {json.dumps(s.tower_instances(), indent=1)}")
    reason = huge.get("reason", "")
    print("huge:", reason)
    assert "cpu" in reason or "memory" in reason, reason
    for h in HOSTS:
        assert h in reason, f"the reason must name {h}: {reason!r}"

    # The camera's node is in the container, as a character device at the same path.
    cam = [c for c in site_env.podman.running(site="pl") if c["Labels"]["skerry.service"] ==
           "cam"][0]
    info = site_env.podman.inspect(cam["Id"])
    rc = exec_exit_code(site_env.podman, cam["Id"], ["test", "-c", "/dev/video0"])
    if rc != 0:
        # Diagnosis: is it there under the host's path (--dev-dir) instead?
        host_path = s["pl-b"].dev_dir + "/video0"
        there = exec_exit_code(site_env.podman, cam["Id"], ["test", "-c", host_path]) == 0
        raise AssertionError(
            f"no character device /dev/video0 in the cam container (at the host path "
            f"{host_path} instead: {there}); container labels: {info['Config']['Labels']}")
