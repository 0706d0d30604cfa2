"""Issue 4: two application tenants on one site, each through the CLI as its own user.

The root provider `default` owns two sites: `shared-1` (chain=shared, assigned to both
tenants) and `outside-1` (chain=other, assigned to neither). Each tenant deploys its own
application `kiosk` with an expression that would select every site; the assignment keeps
both off `outside-1`. Then every kind of refused credential, each with its message.
"""

import json
import time

from conftest import IMAGE, stays, wait_for

TENANTS = """
kind: tenant
name: acme
type: application
sites: chain = shared
---
kind: tenant
name: globex
type: application
sites: chain = shared
---
kind: site
name: shared-1
labels: {chain: shared}
---
kind: site
name: outside-1
labels: {chain: other}
"""


def kiosk(greeting, version="1.0.0"):
    return f"""
kind: application
name: kiosk
version: "{version}"
services:
  - name: web
    containers:
      - name: httpd
        image: {IMAGE}
        cmd: ["/bin/httpd", "-f", "-p", "8080"]
        env: {{GREETING: {greeting}}}
---
kind: deployment
name: kiosk
application: kiosk
sites: chain
"""


def user(env, tenant, name, role, password):
    env.apply(f"kind: user\nname: {name}\ntenant: {tenant}\nrole: {role}\n")
    env.cli("user", "password", f"{tenant}/{name}", input=password + "\n")


def login(env, who, password, check=True):
    r = env.cli("login", who, "--print", input=password + "\n", check=check)
    return r.stdout.strip() if check else r


def refused(r, message):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert message in r.stderr, r.stderr
    return r


def test_two_tenants_share_a_site_and_see_only_their_own(env):
    p = env.podman
    env.apply(TENANTS)
    user(env, "acme", "alice", "developer", "alice password")
    user(env, "globex", "bob", "developer", "bob password")
    alice = login(env, "acme/alice", "alice password")
    bob = login(env, "globex/bob", "bob password")
    assert json.loads(env.cli("get", "tenant", "acme", "-o", "json", token=alice).stdout)[
        "name"] == "acme"

    env.cli("apply", "-f", "-", input=kiosk("from-acme"), token=alice)
    env.cli("apply", "-f", "-", input=kiosk("from-globex", "7.0.0"), token=bob)
    env.start_agent("shared-1", "shared-host")
    env.start_agent("outside-1", "outside-host")

    # Both kiosks run side by side on the shared site, apart by tenant.
    wait_for(lambda: len(p.running(site="shared-1")) == 2, 90, what="2 kiosks on shared-1")
    by_tenant = {c["Labels"]["skerry.tenant"]: c for c in p.running(site="shared-1")}
    assert sorted(by_tenant) == ["acme", "globex"]
    env_of = {t: p.inspect(c["Id"])["Config"]["Env"] for t, c in by_tenant.items()}
    assert "GREETING=from-acme" in env_of["acme"]
    assert "GREETING=from-globex" in env_of["globex"]
    assert by_tenant["globex"]["Labels"]["skerry.version"] == "7.0.0"

    # The unassigned site gets nothing, though `sites: chain` selects it.
    for t, tok in (("acme", alice), ("globex", bob)):
        wait_for(lambda: json.loads(env.cli("get", "deployment", "kiosk", "-o", "json",
                                            token=tok).stdout)["status"]["running"] == 1,
                 60, what=f"{t}'s kiosk running")
        st = json.loads(env.cli("get", "deployment", "kiosk", "-o", "json", token=tok).stdout)
        assert [s["site"] for s in st["status"]["sites"]] == ["shared-1"], st
    # Its agent is up and reporting, and for 3 s more runs nothing.
    wait_for(lambda: [h.get("state") for h in env.get_json("hosts", "--site", "outside-1")
                      ["items"]] == ["alive"], 60, what="outside-host reporting")
    stays(lambda: p.containers(site="outside-1") == [], 3, what="outside-1 runs nothing")

    # Each lists and describes its own applications, deployments and instances only.
    for tok, mine, theirs in ((alice, "acme", "globex"), (bob, "globex", "acme")):
        apps = json.loads(env.cli("get", "apps", "-o", "json", token=tok).stdout)["items"]
        assert [(a["tenant"], a["name"]) for a in apps] == [(mine, "kiosk")]
        deps = json.loads(env.cli("get", "deployments", "-o", "json", token=tok).stdout)["items"]
        assert [d["tenant"] for d in deps] == [mine]
        insts = json.loads(env.cli("get", "instances", "-o", "json", token=tok).stdout)["items"]
        assert insts and all(i["tenant"] == mine for i in insts), insts
        assert mine in env.cli("describe", "app", "kiosk", token=tok).stdout
        sites = json.loads(env.cli("get", "sites", "-o", "json", token=tok).stdout)["items"]
        assert [s["name"] for s in sites] == ["shared-1"]
        refused(env.cli("get", "hosts", "--site", "shared-1", token=tok, check=False),
                "application tenant")
        refused(env.cli("get", "site", "outside-1", token=tok, check=False), "no site")
        # Asking in the other tenant: as absent as a tenant that never was.
        for args in (("get", "apps"), ("describe", "deployment", "kiosk"),
                     ("delete", "deployment", "kiosk"), ("get", "instances")):
            refused(env.cli(*args, "--tenant", theirs, token=tok, check=False),
                    f"no tenant named {theirs}")

    # globex's own application is unknown to acme: not listed, described, deleted or
    # deployed over.
    env.cli("apply", "-f", "-", token=bob, input=f"""
kind: application
name: gonly
version: "1.0.0"
services:
  - name: web
    containers: [{{name: c, image: "{IMAGE}", cmd: ["/bin/sleep", "3600"]}}]
""")
    refused(env.cli("get", "app", "gonly", token=alice, check=False), "no application named gonly")
    refused(env.cli("delete", "app", "gonly", token=alice, check=False), "no application")
    refused(env.cli("apply", "-f", "-", token=alice, check=False, input="""
kind: deployment
name: gonly
application: gonly
sites: chain = shared
"""), "no application named gonly in tenant acme")
    assert env.cli("get", "app", "gonly", token=bob).returncode == 0
    # acme changing its kiosk leaves globex's alone.
    env.cli("apply", "-f", "-", input=kiosk("acme-again", "1.1.0"), token=alice)
    wait_for(lambda: {c["Labels"]["skerry.tenant"]: c["Labels"]["skerry.version"]
                      for c in p.running(site="shared-1")} == {"acme": "1.1.0", "globex": "7.0.0"},
             60, what="acme's kiosk at 1.1.0, globex's untouched")

    # The provider's audit trail has both tenants' changes, with who did them.
    events = json.loads(env.cli("get", "events", "--since", "1h", "-o", "json").stdout)["items"]
    actors = {e["actor"] for e in events if e["method"] == "PUT"}
    assert {"acme/alice", "globex/bob"} <= actors, actors
    assert all(e["address"] == "127.0.0.1" for e in events if e["actor"] == "acme/alice")

    env.cli("delete", "deployment", "kiosk", token=alice)
    env.cli("delete", "deployment", "kiosk", token=bob)
    wait_for(lambda: p.containers(site="shared-1") == [], 60, what="shared-1 emptied")


def test_refused_credentials_say_why_without_telling_who_exists(env):
    env.apply("kind: tenant\nname: acme\nsites: chain = shared\n")
    user(env, "acme", "alice", "operator", "alice password")
    user(env, "acme", "carol", "viewer", "carol password")

    # Wrong password, unknown user and unknown tenant: one message.
    msg = "wrong tenant, user or password"
    refused(login(env, "acme/alice", "not it", check=False), msg)
    refused(login(env, "acme/nobody", "whatever", check=False), msg)
    refused(login(env, "nope/alice", "alice password", check=False), msg)

    alice = login(env, "acme/alice", "alice password")
    assert "alice" in env.cli("whoami", token=alice).stdout

    # An API token with its own, lower role; then expired.
    made = time.monotonic()
    r = env.cli("token", "create", "--role", "viewer", "--ttl", "2s", "--name", "ci", token=alice)
    short = r.stdout.strip()
    assert "viewer" in env.cli("whoami", token=short).stdout
    refused(env.cli("apply", "-f", "-", token=short, check=False,
                    input="kind: user\nname: x\nrole: viewer\n"), "may not")
    refused(env.cli("token", "create", "--role", "admin", token=alice, check=False),
            "cannot have more than your role")
    # Refused once its 2 s are over (a few seconds' slack for a loaded machine's CLI runs).
    wait_for(lambda: env.cli("whoami", token=short, check=False).returncode != 0,
             max(0.5, made + 6 - time.monotonic()), interval=0.2, what="the 2s token to expire")
    refused(env.cli("whoami", token=short, check=False), "token expired")

    # Revoked.
    api = env.cli("token", "create", "--role", "viewer", token=alice).stdout.strip()
    listed = json.loads(env.cli("token", "list", "-o", "json", token=alice).stdout)["items"]
    ids = [t["id"] for t in listed if t["kind"] == "api" and t["name"] == ""]
    assert len(ids) == 1, listed
    assert api not in json.dumps(listed)  # ids, never tokens
    env.cli("token", "revoke", ids[0], token=alice)
    refused(env.cli("whoami", token=api, check=False), "token revoked")
    # Someone else's token id is as unknown as a made-up one.
    carol = login(env, "acme/carol", "carol password")
    refused(env.cli("token", "revoke", ids[0], token=carol, check=False), "no token with id")

    # A deleted user's tokens die with it, and stay dead when the name comes back.
    env.cli("delete", "user", "carol", "--tenant", "acme")
    refused(env.cli("whoami", token=carol, check=False), "unknown token")
    env.apply("kind: user\nname: carol\ntenant: acme\nrole: viewer\n")
    refused(env.cli("whoami", token=carol, check=False), "unknown token")

    # Brute force: five failures lock the user; then even the right password is refused.
    for _ in range(5):
        refused(login(env, "acme/alice", "guess", check=False), msg)
    refused(login(env, "acme/alice", "alice password", check=False),
            "too many failed logins; try again later")
    # ... and the lock says the same for a user that does not exist.
    for _ in range(5):
        refused(login(env, "acme/ghost", "guess", check=False), msg)
    refused(login(env, "acme/ghost", "guess", check=False),
            "too many failed logins; try again later")
    # Tokens already given out keep working.
    assert "alice" in env.cli("whoami", token=alice).stdout

    # The failed logins are in the audit trail, attributed to the names tried.
    events = json.loads(env.cli("get", "events", "-o", "json").stdout)["items"]
    failed = [e for e in events if e["path"] == "/v1/login" and e["status"] == 401
              and e["actor"] == "acme/alice"]
    assert len(failed) == 6, failed


def test_quota_exceeded_makes_instances_unplaceable(env):
    """A tenant's quota-per-site holds on the site: what does not fit waits, with the reason."""
    p = env.podman
    env.apply("""
kind: tenant
name: small
type: application
sites: chain = shared
quota-per-site: {cpu: 1, memory: 1Gi, instances: 2}
---
kind: site
name: quota-1
labels: {chain: shared}
""")
    user(env, "small", "carol", "developer", "carol password")
    carol = login(env, "small/carol", "carol password")
    env.cli("apply", "-f", "-", token=carol, input=f"""
kind: application
name: many
version: "1.0.0"
services:
  - name: web
    replicas: 4
    resources: {{cpu: 0.25, memory: 64Mi}}
    containers: [{{name: c, image: "{IMAGE}", cmd: ["/bin/sleep", "3600"]}}]
---
kind: deployment
name: many
application: many
sites: chain = shared
""")
    env.start_agent("quota-1", "quota-host")

    # Two instances run (the instances quota), two are reported unplaceable with the reason.
    wait_for(lambda: len(p.running(site="quota-1")) == 2, 90, what="2 instances running")

    def unplaceable():
        items = json.loads(env.cli("get", "instances", "--site", "quota-1", "-o", "json",
                                   token=carol).stdout)["items"]
        return [i for i in items if i["state"] == "unplaceable"]
    waiting = wait_for(lambda: len(unplaceable()) == 2 and unplaceable(), 60,
                       what="2 instances unplaceable")
    for i in waiting:
        assert "quota of tenant small exceeded" in i["reason"], i
    stays(lambda: len(p.running(site="quota-1")) == 2, 3, what="2 instances running, no more")

    # Within the quota again (2 replicas), nothing is left waiting.
    env.cli("apply", "-f", "-", token=carol, input=f"""
kind: application
name: many
version: "1.0.1"
services:
  - name: web
    replicas: 2
    resources: {{cpu: 0.25, memory: 64Mi}}
    containers: [{{name: c, image: "{IMAGE}", cmd: ["/bin/sleep", "3600"]}}]
""")
    wait_for(lambda: unplaceable() == [], 60, what="no instance left unplaceable")
    wait_for(lambda: len(p.running(site="quota-1")) == 2, 60, what="2 instances running")
