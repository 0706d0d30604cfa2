#!/bin/bash
# The agent's idle resident memory (/proc/PID/status) with running containers.
# HOSTS=1 (default): one site of one agent; HOSTS=3: one site of three agents on this machine
# (each its own data folder, port and certificate), the first the raft leader at the start.
# Deploys COUNT (default 10) one-container instances to the site, waits for them to run, lets
# the agents settle for SETTLE seconds (default 10), then samples each agent 5 times a second
# apart and prints the medians; the last lines are machine-readable "RESULT key=value"
# (with HOSTS>1, one set a host: "RESULT HOST.key=value", and HOST.role).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SETTLE=${SETTLE:-10}
COUNT=${COUNT:-10}
HOSTS=${HOSTS:-1}

status_kb() { # PID FIELD
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# report PID PREFIX: the figures of one agent, from 5 samples a second apart (the samples
# of all agents are taken together by the caller's loop).
report() {
	local pid=$1 p=$2 i
	local -a s
	read -r -a s <<<"${SAMPLES[$pid]}"
	rss=$(printf '%s\n' "${s[@]}" | median)
	echo "RESULT ${p}rss_kb=$rss"
	echo "RESULT ${p}rss_hwm_kb=$(status_kb "$pid" VmHWM)"
	# VmRSS counts every page of the shared libraries the agent has touched (and the kernel's
	# fault-around neighbours); RssAnon is the agent's own memory, Pss shares library pages
	# out among the processes that map them.
	echo "RESULT ${p}rss_anon_kb=$(status_kb "$pid" RssAnon)"
	echo "RESULT ${p}rss_file_kb=$(status_kb "$pid" RssFile)"
	echo "RESULT ${p}pss_kb=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup")"
	echo "RESULT ${p}threads=$(status_kb "$pid" Threads)"
}

declare -A PIDS=() SAMPLES=()
if [ "$HOSTS" -eq 1 ]; then
	bench_setup
	PIDS[$HOST]=$AGENT_PID
else
	SITE=bench-rss
	NAMES=()
	for i in $(seq 1 "$HOSTS"); do NAMES+=("rss-$i"); done
	site_setup bench
	for h in "${NAMES[@]}"; do PIDS[$h]=${APID[$h]}; done
fi
declare -A JOIN_KB=()
for h in "${!PIDS[@]}"; do JOIN_KB[$h]=$(status_kb "${PIDS[$h]}" VmRSS); done
deploy_sleepers rss "$COUNT"
wait_for 180 "$COUNT running containers" running_at_least skerry.deployment=rss "$COUNT"
sleep "$SETTLE"
for h in "${!PIDS[@]}"; do
	kill -0 "${PIDS[$h]}" 2>/dev/null || die "the agent of $h exited"
done
for _ in 1 2 3 4 5; do
	for h in "${!PIDS[@]}"; do
		SAMPLES[${PIDS[$h]}]+=" $(status_kb "${PIDS[$h]}" VmRSS)"
	done
	sleep 1
done
running=$(running_count skerry.deployment=rss)
echo "RESULT rss_containers=$running"
echo "RESULT rss_hosts=$HOSTS"
if [ "$HOSTS" -eq 1 ]; then
	report "$AGENT_PID" ""
	echo "RESULT rss_join_kb=${JOIN_KB[$HOST]}"
	exit 0
fi
lead=$(leader) || die "no leader"
for h in "${NAMES[@]}"; do
	role=follower
	[ "$h" != "$lead" ] || role=leader
	echo "RESULT $h.role=$role"
	echo "RESULT $h.containers=$(running_count "skerry.host=$h")"
	report "${PIDS[$h]}" "$h."
	echo "RESULT $h.rss_join_kb=${JOIN_KB[$h]}"
done
