#!/bin/bash
# Shared by the benchmarks: a throw-away installation (private Podman store, a tower, one
# site with one agent) under a temporary folder, and its cleanup. Source it; call
# bench_setup, then bench_cleanup (bench_setup installs it as the EXIT trap).
set -euo pipefail

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SKERRY=${SKERRY_BIN:-$BENCH_ROOT/build/skerry}
PODMAN_SERVICE=$BENCH_ROOT/tests/lib/podman-service.sh
PY=/usr/bin/python3
export IMAGE=localhost/busybox:latest
SITE=bench-site
HOST=bench-host

die() {
	echo "$(basename "$0"): $*" >&2
	exit 1
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for SECONDS WHAT CMD...: runs CMD until it succeeds.
wait_for() {
	local secs=$1 what=$2 deadline
	shift 2
	deadline=$(($(now_ms) + secs * 1000))
	until "$@" >/dev/null 2>&1; do
		[ "$(now_ms)" -lt "$deadline" ] || die "timed out after ${secs}s waiting for $what"
		sleep 0.1
	done
}

sk() {
	HOME=$BENCH_DIR SKERRY_ADDR=$TOWER_ADDR SKERRY_CA=$BENCH_DIR/tower/ca.pem \
		SKERRY_TOKEN=$(cat "$BENCH_DIR/tower/admin.token") "$SKERRY" "$@"
}

# The Docker Engine API of the private Podman service.
runtime() {
	curl -sf --max-time 10 --unix-socket "$SOCK" "http://d/v1.41$1"
}

# running_count LABEL=VALUE: containers with that label in state running.
running_count() {
	local f
	f=$($PY -c 'import json, sys, urllib.parse as u
print(u.quote(json.dumps({"label": [sys.argv[1]], "status": ["running"]})))' "$1")
	runtime "/containers/json?filters=$f" | $PY -c 'import json, sys; print(len(json.load(sys.stdin)))'
}

# container_count LABEL=VALUE: containers with that label in any state.
container_count() {
	local f
	f=$($PY -c 'import json, sys, urllib.parse as u
print(u.quote(json.dumps({"label": [sys.argv[1]]})))' "$1")
	runtime "/containers/json?all=true&filters=$f" | $PY -c 'import json, sys; print(len(json.load(sys.stdin)))'
}

# watch_running LABEL=VALUE: in the background, polls the runtime API every 10 ms over one
# kept-alive connection and prints the wall clock (ms) when a container with that label runs.
# Started before the action it times, so its own start-up is not counted.
watch_running() {
	$PY - "$SOCK" "$1" <<'PYEOF'
import http.client, json, socket, sys, time, urllib.parse
class Conn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("d", timeout=10)
        self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)
c = Conn(sys.argv[1])
q = urllib.parse.quote(json.dumps({"label": [sys.argv[2]], "status": ["running"]}))
deadline = time.time() + 120
while time.time() < deadline:
    c.request("GET", "/v1.41/containers/json?filters=" + q)
    if json.loads(c.getresponse().read()):
        print(time.time_ns() // 1000000)
        sys.exit(0)
    time.sleep(0.01)
sys.exit(1)
PYEOF
}

running_at_least() { # LABEL=VALUE N
	[ "$(running_count "$1")" -ge "$2" ]
}

none_left() { # LABEL=VALUE
	[ "$(container_count "$1")" -eq 0 ]
}

# Runs podman on the private store, as the service does (same containers.conf).
podman_store() {
	local d=$BENCH_DIR/podman
	CONTAINERS_CONF=$d/containers.conf CONTAINERS_STORAGE_CONF=$d/storage.conf \
		podman --root "$d/root" --runroot "$d/runroot" --network-config-dir "$d/net" \
		--tmpdir "$d/tmp" --volumepath "$d/volumes" --cgroup-manager cgroupfs \
		--events-backend file "$@"
}

tower_ready() {
	[ -s "$BENCH_DIR/tower/admin.token" ] && sk get sites -o json
}

host_connected() {
	sk get hosts --site "$SITE" -o json | $PY -c 'import json, sys
items = json.load(sys.stdin)["items"]
sys.exit(0 if any(h.get("name") == sys.argv[1] or h.get("host") == sys.argv[1] for h in items) else 1)' "$HOST"
}

# The private Podman service and a tower, under BENCH_DIR, with the cleanup trap.
tower_setup() {
	[ -x "$SKERRY" ] || die "$SKERRY is not built (make build/skerry, or set SKERRY_BIN)"
	BENCH_DIR=$(mktemp -d /tmp/skerry-bench-XXXXXX)
	TOWER_PID=""
	AGENT_PID=""
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	mkdir -p "$BENCH_DIR/logs"
	SOCK=$("$PODMAN_SERVICE" start "$BENCH_DIR/podman")
	local port
	port=$(free_port)
	TOWER_ADDR=https://127.0.0.1:$port
	"$SKERRY" tower --data "$BENCH_DIR/tower" --listen "127.0.0.1:$port" \
		>"$BENCH_DIR/logs/tower.log" 2>&1 &
	TOWER_PID=$!
	wait_for 30 "the tower" tower_ready
}

bench_setup() {
	tower_setup
	printf 'kind: site\nname: %s\nlabels: {role: bench}\n' "$SITE" | sk apply -f - >/dev/null
	local token
	token=$(sk site token "$SITE")
	"$SKERRY" agent --data "$BENCH_DIR/agent" --tower "$TOWER_ADDR" \
		--ca "$BENCH_DIR/tower/ca.pem" --join "$token" --runtime "unix://$SOCK" \
		--name "$HOST" --listen "127.0.0.1:$(free_port)" >"$BENCH_DIR/logs/agent.log" 2>&1 &
	AGENT_PID=$!
	wait_for 30 "the agent to connect" host_connected
}

# A site of several agents on this machine (SITE, its hosts in NAMES), each with its own
# data folder, port and device folder; APID[name] is each agent's process id.
declare -A APID=() PORT=()
start_agent() { # NAME
	local h=$1 join=()
	if [ ! -f "$BENCH_DIR/agent-$h/identity.json" ]; then
		join=(--join "$(sk site token "$SITE")")
	fi
	mkdir -p "$BENCH_DIR/dev-$h"
	[ -n "${PORT[$h]:-}" ] || PORT[$h]=$(free_port)
	"$SKERRY" agent --data "$BENCH_DIR/agent-$h" --tower "$TOWER_ADDR" \
		--ca "$BENCH_DIR/tower/ca.pem" --runtime "unix://$SOCK" --name "$h" \
		--listen "127.0.0.1:${PORT[$h]}" --dev-dir "$BENCH_DIR/dev-$h" "${join[@]}" \
		>>"$BENCH_DIR/logs/agent-$h.log" 2>&1 &
	APID[$h]=$!
}

joined() { [ -f "$BENCH_DIR/agent-$1/identity.json" ]; }
hosts_json() { sk get hosts --site "$SITE" -o json; }
# The leader's name, from get hosts.
leader() {
	hosts_json | $PY -c 'import json, sys
items = json.load(sys.stdin)["items"]
leaders = [h["name"] for h in items if h.get("role") == "leader" and h.get("state") == "alive"]
sys.exit(1) if len(leaders) != 1 else print(leaders[0])'
}
is_leader() { [ "$(leader)" = "$1" ]; }
# Every host of NAMES alive, and one leader.
all_alive() {
	hosts_json | $PY -c 'import json, sys
items = {h["name"]: h for h in json.load(sys.stdin)["items"]}
ok = all(items.get(n, {}).get("state") == "alive" for n in sys.argv[1:])
ok = ok and sum(h.get("role") == "leader" for h in items.values()) == 1
sys.exit(0 if ok else 1)' "${NAMES[@]}"
}

# site_setup LABEL [HOST_LOST_AFTER]: the tower, the site SITE (labels {role: LABEL}) with
# default settings or that host-lost-after (e.g. 1s), and an agent for each of NAMES; the
# first bootstraps the site, the others join it.
site_setup() {
	tower_setup
	trap site_cleanup EXIT
	{
		printf 'kind: site\nname: %s\nlabels: {role: %s}\n' "$SITE" "$1"
		[ -z "${2:-}" ] || printf 'host-lost-after: %s\n' "$2"
	} | sk apply -f - >/dev/null
	local h
	for h in "${NAMES[@]}"; do
		start_agent "$h"
		wait_for 30 "$h to join" joined "$h"
		[ "$h" != "${NAMES[0]}" ] || wait_for 30 "$h to lead" is_leader "$h"
	done
	wait_for 60 "${#NAMES[@]} hosts alive with one leader" all_alive
}

site_cleanup() {
	local rc=$? h
	set +e # cleanup goes on whatever fails; bench_cleanup reads the exit code from $?
	for h in "${!APID[@]}"; do
		stop_pid "${APID[$h]}"
	done
	(exit "$rc")
	bench_cleanup
}

stop_pid() {
	local pid=$1 _
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
	local rc=$?
	trap - EXIT
	if [ "$rc" -ne 0 ] && [ -n "${BENCH_DIR:-}" ]; then
		for f in "$BENCH_DIR"/logs/*.log; do
			[ -f "$f" ] || continue
			echo "--- last lines of $(basename "$f")" >&2
			tail -20 "$f" >&2
		done
	fi
	stop_pid "${AGENT_PID:-}"
	if [ -n "${BENCH_DIR:-}" ]; then
		"$PODMAN_SERVICE" stop "$BENCH_DIR/podman" || true
	fi
	stop_pid "${TOWER_PID:-}"
	if [ -n "${BENCH_DIR:-}" ]; then
		if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
			cp -r "$BENCH_DIR/logs" "$BENCH_KEEP_LOGS"
		fi
		rm -rf "$BENCH_DIR"
	fi
	exit "$rc"
}

# deploy_sleepers NAME COUNT: an application and deployment NAME of COUNT one-container
# instances (busybox sleeping a day) for every site labelled role = bench.
deploy_sleepers() {
	sk apply -f - >/dev/null <<YAML
kind: application
name: $1
version: "1.0.0"
services:
  - name: main
    replicas: $2
    containers:
      - name: main
        image: $IMAGE
        cmd: ["sleep", "86400"]
---
kind: deployment
name: $1
application: $1
version: "*"
sites: role = bench
YAML
}

# median of the numbers on stdin (one a line).
median() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print v[(NR + 1) / 2];
		else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
