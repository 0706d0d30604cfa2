#!/bin/bash
# False host losses (issue 7): a site of three agents on this machine with host-lost-after
# LOST_AFTER (default 1s) and INSTANCES (default 10) idle one-container instances, left
# alone for DURATION (default 30m; a number of seconds, or Ns, Nm, Nh) while LOAD_PROCS
# (default: one a core) busy-looping processes, at the niceness of the agents (the
# script's own), keep every core busy. Nothing
# dies, so every host declared lost is a false loss. Counted three ways: the agents' logs
# ("host X is lost", written by whichever host leads before it proposes the loss), the
# alive-to-lost changes `skerry get hosts` shows (polled every POLL seconds, default 2),
# and leadership changes (a new "leads site" line). Prints the counts and the load
# average (sampled every POLL seconds); the last lines are machine-readable
# "RESULT key=value".
set -euo pipefail
source "$(dirname "$0")/lib.sh"
LOST_AFTER=${LOST_AFTER:-1s}
INSTANCES=${INSTANCES:-10}
DURATION=${DURATION:-30m}
LOAD_PROCS=${LOAD_PROCS:-$(nproc)}
POLL=${POLL:-2}
SITE=bench-false-loss
NAMES=(fl-a fl-b fl-c)
LOAD_PIDS=()

seconds() { # 90, 90s, 30m, 1h
	case $1 in
	*h) echo $((${1%h} * 3600)) ;;
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) echo "$1" ;;
	esac
}

stop_load() {
	local p
	for p in "${LOAD_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	LOAD_PIDS=()
}

# The load goes first (it would slow the rest of the cleanup), then the site.
cleanup() {
	local rc=$?
	stop_load
	(exit "$rc")
	site_cleanup
}

start_load() {
	local _
	for _ in $(seq 1 "$LOAD_PROCS"); do
		bash -c 'while :; do :; done' &
		LOAD_PIDS+=($!)
	done
}

deploy() {
	sk apply -f - >/dev/null <<YAML
kind: application
name: idle
version: "1.0.0"
services:
  - name: main
    replicas: $INSTANCES
    containers:
      - name: main
        image: $IMAGE
        cmd: ["sleep", "86400"]
---
kind: deployment
name: idle
application: idle
version: "*"
sites: role = false-loss
YAML
}

# "NAME=STATE NAME=STATE ... leader=NAME" from get hosts, one line.
hosts_line() {
	hosts_json | $PY -c 'import json, sys
items = json.load(sys.stdin)["items"]
out = ["%s=%s" % (h["name"], h.get("state")) for h in sorted(items, key=lambda h: h["name"])]
out += ["leader=" + ",".join(h["name"] for h in items if h.get("role") == "leader")]
print(" ".join(out))'
}

log_count() { # PATTERN: matching lines in every agent's log
	cat "$BENCH_DIR"/logs/agent-*.log | grep -c "$1" || true
}

secs=$(seconds "$DURATION")
[ "$secs" -gt 0 ] 2>/dev/null || die "DURATION must be seconds, Ns, Nm or Nh (got $DURATION)"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
site_setup false-loss "$LOST_AFTER"
trap cleanup EXIT
deploy
wait_for 180 "$INSTANCES instances running" running_at_least skerry.site=$SITE "$INSTANCES"
wait_for 60 "every host alive with one leader" all_alive

lost0=$(log_count "is lost (nothing heard")
leads0=$(log_count "leads site")
start_load
echo "false-loss: $LOAD_PROCS busy loops, ${secs}s, host-lost-after $LOST_AFTER, $INSTANCES instances" >&2
end=$(($(date +%s) + secs))
prev="" changes=0 polls=0 failed=0 load_sum=0 load_max=0
while [ "$(date +%s)" -lt "$end" ]; do
	l1=$(cut -d' ' -f1 /proc/loadavg)
	load_sum=$(echo "$load_sum + $l1" | bc)
	[ "$(echo "$l1 > $load_max" | bc)" -eq 0 ] || load_max=$l1
	polls=$((polls + 1))
	if line=$(hosts_line 2>/dev/null); then
		# a host that was alive and is now lost, in get hosts
		if [ -n "$prev" ]; then
			for h in "${NAMES[@]}"; do
				if [[ " $prev " == *" $h=alive "* && " $line " == *" $h=lost "* ]]; then
					changes=$((changes + 1))
					echo "$(date -u +%T) get hosts: $h lost ($line)" >&2
				fi
			done
		fi
		prev=$line
	else
		failed=$((failed + 1))
	fi
	sleep "$POLL"
done
stop_load
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
lost=$(($(log_count "is lost (nothing heard") - lost0))
leads=$(($(log_count "leads site") - leads0))
running=$(running_count skerry.site=$SITE)
load_mean=$(echo "scale=2; $load_sum / $polls" | bc)
if [ "$lost" -gt 0 ]; then
	grep -h "is lost (nothing heard\|leads site\|is back" "$BENCH_DIR"/logs/agent-*.log >&2 || true
fi
echo "false host losses over ${secs}s under $LOAD_PROCS busy loops (host-lost-after $LOST_AFTER):"
echo "  declared lost (leader logs): $lost; alive-to-lost in get hosts: $changes;" \
	"new leaders: $leads; instances running at the end: $running of $INSTANCES"
echo "  load average: at start $load_start, during mean $load_mean max $load_max, at end $load_end"
echo "RESULT falseloss_duration_s=$secs"
echo "RESULT falseloss_lost_after=$LOST_AFTER"
echo "RESULT falseloss_load_procs=$LOAD_PROCS"
echo "RESULT falseloss_declared_lost=$lost"
echo "RESULT falseloss_get_hosts_lost=$changes"
echo "RESULT falseloss_new_leaders=$leads"
echo "RESULT falseloss_get_hosts_failed=$failed"
echo "RESULT falseloss_running=$running"
echo "RESULT falseloss_load_start=$load_start"
echo "RESULT falseloss_load_mean=$load_mean"
echo "RESULT falseloss_load_max=$load_max"
