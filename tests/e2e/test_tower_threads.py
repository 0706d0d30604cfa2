"""Issue 8 point 1 and issue 9 point 6: no request's work on the thread that serves the
others. With 4,000 sites, the most costly expression the tower accepts in
`GET /v1/sites?match=` takes seconds of matching; meanwhile a user's `whoami`, a site's
long-poll that has news, and a held long-poll woken by a change to its site each answer in
under 1 s. Needs no Podman: the tower alone.
"""

import json
import threading
import time
import urllib.parse

import pytest

from conftest import Env, Tower
from test_hostile import join_host, ok, request

SITES = 4000
NOTE = "a" * 256  # the longest label value the cost bound is stated for
TERM = 'note ~ "(a|aa|.){1,99}.*"'


def most_costly_accepted(tower):
    """As many of the largest regexes joined by `and` as the cost bound takes."""
    expr = TERM
    while True:
        more = expr + " and " + TERM
        status, body = request(tower, "GET", "/v1/sites?match=" + urllib.parse.quote(more),
                               token=tower.token)
        if status != 200:
            assert status == 400 and "too costly" in json.dumps(body), body
            return expr
        expr = more


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """A tower with SITES sites, one of them with a joined host: (tower, expr, cert)."""
    tmp = tmp_path_factory.mktemp("threads")
    tower = Tower(str(tmp)).start()
    try:
        expr = most_costly_accepted(tower)  # found while matching is still cheap
        docs = [f"kind: site\nname: store-{i:04d}\nlabels: {{chain: acme, note: {NOTE}}}\n"
                for i in range(SITES)]
        env = Env(str(tmp), None)
        env.tower = tower
        env.apply("---\n".join(docs))
        cert = join_host(tower, tmp, "store-0000", "h0")
        yield tower, expr, cert
    finally:
        if tower.proc.alive():
            tower.stop()


def timed(fn):
    t0 = time.monotonic()
    out = fn()
    return out, time.monotonic() - t0


def test_costly_match_stalls_no_other_request(crowded):
    tower, expr, cert = crowded
    q = "/v1/sites?match=" + urllib.parse.quote(expr)
    status, doc = request(tower, "GET", "/v1/sync/desired?generation=0&wait=0", cert=cert,
                          source="127.0.0.3")
    assert status == 200, doc
    generation = doc["generation"]

    matches = {}

    def match(i):
        matches[i] = timed(lambda: request(tower, "GET", q, token=tower.token, timeout=120))

    workers = [threading.Thread(target=match, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    # a held long-poll of the joined site, woken below by a change to its site
    held = {}

    def poll():
        held["out"] = request(tower, "GET",
                              f"/v1/sync/desired?generation={generation}&wait=30",
                              cert=cert, source="127.0.0.3", timeout=60)
        held["at"] = time.monotonic()

    poller = threading.Thread(target=poll)
    poller.start()
    slowest = {"whoami": 0.0, "poll": 0.0}
    rounds = 0
    while any(w.is_alive() for w in workers) or rounds == 0:
        out, took = timed(lambda: ok(tower, "GET", "/v1/whoami"))
        assert out["user"] == "admin"
        slowest["whoami"] = max(slowest["whoami"], took)
        (status, doc), took = timed(lambda: request(
            tower, "GET", "/v1/sync/desired?generation=0&wait=0", cert=cert,
            source="127.0.0.3"))
        assert status == 200 and doc["generation"] >= generation, doc
        slowest["poll"] = max(slowest["poll"], took)
        if rounds == 2:  # the change the held poll waits for, while the matches run
            changed_at = time.monotonic()
            ok(tower, "PUT", "/v1/sites/store-0000",
               {"kind": "site", "name": "store-0000", "labels": {"chain": "acme", "note": "b"}})
        rounds += 1
    for w in workers:
        w.join()
    poller.join()
    for i in range(2):
        (status, body), seconds = matches[i]
        assert status == 200, body
        # store-0000 lost its labels when its host joined (join_host puts it bare)
        assert len(body["items"]) == SITES - 1, len(body["items"])
    took = max(seconds for _, seconds in matches.values())
    print(f"two matches over {SITES} sites: {took:.1f} s; {rounds} rounds; slowest {slowest}")
    # the matches ran long enough for the rounds above to mean something
    assert slowest["whoami"] < 1.0, slowest
    assert slowest["poll"] < 1.0, slowest
    assert took > 2.0, f"the matches took only {took:.2f} s"
    assert rounds > 3
    status, doc = held["out"]
    assert status == 200 and doc["generation"] > generation, (status, doc)
    assert held["at"] - changed_at < 1.0, "the woken long-poll answered late"


def test_costly_matches_beyond_the_queue_are_refused_at_once(crowded):
    """Each queued match holds a copy of the sites: only a few wait, the rest get 429."""
    tower, expr, _ = crowded
    q = "/v1/sites?match=" + urllib.parse.quote(expr)
    answers = []

    def match():
        answers.append(timed(lambda: request(tower, "GET", q, token=tower.token,
                                             timeout=120)))

    workers = [threading.Thread(target=match) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    statuses = sorted(status for (status, _), _ in answers)
    assert 200 in statuses and 429 in statuses, statuses
    slowest_match = max(seconds for (status, _), seconds in answers if status == 200)
    for (status, body), seconds in answers:
        if status == 429:
            assert "busy" in json.dumps(body), body
            # not after waiting for the matches (reading the sites before is the cost)
            assert seconds < 3.0 and seconds < slowest_match / 2, (seconds, slowest_match)
        else:
            # store-0000 has labels again only after the test above
            assert status == 200 and len(body["items"]) >= SITES - 1, status
