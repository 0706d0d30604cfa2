#!/bin/bash
# Failover time (issue 3): from kill -9 of a host (its agent, then its containers through the
# runtime API) to its instances' replacement containers running on the other hosts of the
# site. One site of three agents on one machine, default site settings but host-lost-after
# LOST_AFTER (default 5s, the site default; e.g. LOST_AFTER=1s), one service of 3 replicas (one a host). RUNS (default 5) runs killing a follower and RUNS
# killing the leader, alternating; after each, the host's agent is started again and waits
# until it is back and every instance runs exactly once; each run starts from a fresh
# deployment (one instance a host). Prints each run and the medians; the last lines are
# machine-readable "RESULT key=value".
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-5}
LOST_AFTER=${LOST_AFTER:-5s}
SITE=bench-failover
NAMES=(fo-a fo-b fo-c)
REPLICAS=3

# Python helpers on the runtime API.
write_helpers() {
	cat >"$BENCH_DIR/fo.py" <<'PYEOF'
import http.client, json, socket, sys, time, urllib.parse

class Conn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("d", timeout=10)
        self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)

def running(conn, site):
    """{instance: [host, ...]} of the site's running containers."""
    q = urllib.parse.quote(json.dumps({"label": [f"skerry.site={site}"], "status": ["running"]}))
    conn.request("GET", "/v1.41/containers/json?filters=" + q)
    out = {}
    for c in json.loads(conn.getresponse().read()):
        out.setdefault(c["Labels"]["skerry.instance"], []).append(c["Labels"]["skerry.host"])
    return out

cmd = sys.argv[1]
if cmd == "once":  # SOCK SITE N: N instances, each running exactly once
    r = running(Conn(sys.argv[2]), sys.argv[3])
    sys.exit(0 if len(r) == int(sys.argv[4]) and all(len(h) == 1 for h in r.values()) else 1)
elif cmd == "on":  # SOCK SITE HOST: the instances running on HOST, one a line
    for i, hs in sorted(running(Conn(sys.argv[2]), sys.argv[3]).items()):
        if sys.argv[4] in hs:
            print(i)
elif cmd == "watch":  # SOCK SITE HOST INSTANCE...: wall clock (ms) when all run off HOST
    conn, site, host, want = Conn(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
    print("ready", flush=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        r = running(conn, site)
        if all(any(h != host for h in r.get(i, [])) for i in want):
            print(time.time_ns() // 1000000, flush=True)
            sys.exit(0)
        time.sleep(0.01)
    sys.exit(1)
elif cmd == "hosts":  # SOCK SITE: how many hosts run the site's instances
    print(len({h for hs in running(Conn(sys.argv[2]), sys.argv[3]).values() for h in hs}))
PYEOF
}

fo() {
	$PY "$BENCH_DIR/fo.py" "$@"
}

settled() { fo once "$SOCK" "$SITE" "$REPLICAS"; }

deploy() {
	sk apply -f - >/dev/null <<YAML
kind: application
name: fo
version: "1.0.0"
services:
  - name: web
    replicas: $REPLICAS
    containers:
      - name: main
        image: $IMAGE
        cmd: ["sleep", "3600"]
---
kind: deployment
name: fo
application: fo
version: "*"
sites: role = failover
YAML
}

# The scheduler never moves a running instance to rebalance, so a host that comes back
# stays empty: every run starts from a fresh deployment, one instance a host.
fresh_placement() {
	if sk get deployment fo -o json >/dev/null 2>&1; then
		sk delete deployment fo >/dev/null
		wait_for 60 "the old containers gone" none_left skerry.site=$SITE
	fi
	deploy
	wait_for 120 "$REPLICAS instances running once each, one a host" spread
}
spread() { settled && [ "$(fo hosts "$SOCK" "$SITE")" -eq "$REPLICAS" ]; }

# one_run ROLE: kills a host of that role (follower or leader), sets RUN_MS to the
# milliseconds until its instances run elsewhere, then brings it back. (Not called in a
# subshell: it restarts an agent and records its pid.)
watch_ready() { grep -qx ready "$BENCH_DIR/watch.out"; }
one_run() {
	local role=$1 lead victim h insts t0 t1 ids id wpid
	fresh_placement
	lead=$(leader) || die "no leader"
	victim=$lead
	if [ "$role" = follower ]; then
		for h in "${NAMES[@]}"; do
			[ "$h" = "$lead" ] || { victim=$h; break; }
		done
	fi
	mapfile -t insts < <(fo on "$SOCK" "$SITE" "$victim")
	[ "${#insts[@]}" -gt 0 ] || die "$victim runs nothing"
	ids=$(runtime "/containers/json?filters=$($PY -c 'import json, sys, urllib.parse as u
print(u.quote(json.dumps({"label": ["skerry.host=" + sys.argv[1]], "status": ["running"]})))' "$victim")" |
		$PY -c 'import json, sys; print(" ".join(c["Id"] for c in json.load(sys.stdin)))')
	# The watcher runs before the kill, so its own start is not counted.
	fo watch "$SOCK" "$SITE" "$victim" "${insts[@]}" >"$BENCH_DIR/watch.out" &
	wpid=$!
	wait_for 10 "the watcher" watch_ready
	t0=$(now_ms)
	kill -KILL "${APID[$victim]}"
	wait "${APID[$victim]}" 2>/dev/null || true
	for id in $ids; do
		curl -sf --max-time 10 --unix-socket "$SOCK" -X POST \
			"http://d/v1.41/containers/$id/kill?signal=KILL" >/dev/null || true
	done
	wait "$wpid" || die "$victim's instances (${insts[*]}) did not run elsewhere within 120 s"
	t1=$(tail -1 "$BENCH_DIR/watch.out")
	RUN_MS=$((t1 - t0))
	echo "$role $victim: ${insts[*]} running elsewhere after $RUN_MS ms" >&2
	start_agent "$victim"
	wait_for 60 "$victim back" all_alive
	wait_for 60 "every instance running exactly once" settled
}

LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)
site_setup failover "$LOST_AFTER"
write_helpers
follower_ms=()
leader_ms=()
for _ in $(seq 1 "$RUNS"); do
	one_run follower
	follower_ms+=("$RUN_MS")
	one_run leader
	leader_ms+=("$RUN_MS")
done
f_med=$(printf '%s\n' "${follower_ms[@]}" | median)
l_med=$(printf '%s\n' "${leader_ms[@]}" | median)
echo "failover (kill -9 of a host to its instances running elsewhere), host-lost-after $LOST_AFTER:"
echo "  follower: ${follower_ms[*]} ms, median $f_med ms"
echo "  leader:   ${leader_ms[*]} ms, median $l_med ms"
echo "RESULT failover_runs=$RUNS"
echo "RESULT failover_lost_after=$LOST_AFTER"
echo "RESULT failover_load=$LOAD_START"
echo "RESULT failover_follower_ms=${follower_ms[*]}"
echo "RESULT failover_follower_median_ms=$f_med"
echo "RESULT failover_leader_ms=${leader_ms[*]}"
echo "RESULT failover_leader_median_ms=$l_med"
