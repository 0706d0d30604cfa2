"""Issue 3: host and site status, from the tower and from the site itself with the tower down."""

import json

from conftest import wait_for
from site_harness import app_yaml, instance_ids, site_env  # noqa: F401 (fixture)

HOSTS = {
    "st-a": {"labels": {"role": "till"}},
    "st-b": {"labels": {"role": "till", "floor": "2"}, "camera": True},
    "st-c": {"labels": {"role": "office"}},
}


def test_get_hosts_shows_roles_labels_devices_capacity(site_env):
    s = site_env.site("st", HOSTS).start()
    s.wait_cluster()
    # Device rules come with the site's desired state: give discovery a moment.
    try:
        wait_for(lambda: any((h.get("labels") or {}).get("device/camera") for h in
                             s.tower_hosts()), 30, interval=0.5, what="device/camera on a host")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{json.dumps(s.tower_hosts(), indent=1)}\n{s.logs()}")
    view = s.tower_hosts()
    print("hosts:", json.dumps(view, indent=1, sort_keys=True))
    by_name = {h["name"]: h for h in view}
    assert sorted(by_name) == sorted(HOSTS), view

    roles = sorted(h.get("role") for h in view)
    assert roles == ["leader", "voter", "voter"], f"3 hosts: one leader, two voters: {roles}"
    for name, spec in HOSTS.items():
        h = by_name[name]
        assert h.get("state") == "alive", h
        labels = h.get("labels") or {}
        for k, v in spec["labels"].items():
            assert labels.get(k) == v, f"{name}: label {k}={v} missing: {labels}"
        assert h.get("last-seen"), f"{name}: no last-seen: {h}"
        cap = h.get("capacity") or {}
        assert isinstance(cap.get("cpu"), (int, float)) and cap["cpu"] > 0, f"{name}: {cap}"
        assert isinstance(cap.get("memory"), (int, float)) and cap["memory"] > 0, f"{name}: {cap}"
        devs = json.dumps(h.get("devices") or {})
        if spec.get("camera"):
            assert labels.get("device/camera") == "1", f"{name}: {labels}"
            assert "/dev/video0" in devs, f"{name}: devices {devs}"
        else:
            assert "device/camera" not in labels, f"{name}: {labels}"
            assert "video0" not in devs, f"{name}: devices {devs}"

    # Instances run, then the site answers for itself with the tower down.
    site_env.apply(app_yaml("st", [{"name": "web", "replicas": 3}]))
    want = instance_ids("st", {"web": 3})
    running = s.wait_exactly_once(want, timeout=90)
    site_env.tower.stop()
    for host in HOSTS:
        items = s.site_local_json(host, "get", "instances")
        got = {i["instance"]: i for i in items}
        assert set(got) == want, f"site-local via {host}: {sorted(got)}"
        for inst, i in got.items():
            assert i.get("state") == "running", i
            assert [i.get("host")] == running[inst], f"{inst}: {i} vs podman {running[inst]}"

    # A new host label appears with the device that a host gains.
    site_env.tower.start()
    s["st-c"].add_device("video3", 81, 3)
    wait_for(lambda: {h["name"]: h for h in s.tower_hosts()}["st-c"].get("labels", {}).get(
        "device/camera") == "1", 30, interval=0.5, what="st-c to report device/camera")
