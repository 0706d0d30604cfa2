#!/bin/bash
# The agent's idle resident memory (VmRSS from /proc/PID/status) with 10 running containers.
# Starts a private installation, deploys 10 one-container instances, waits for them to
# run, lets the agent settle for SETTLE seconds (default 10), then samples VmRSS 5 times a
# second apart and prints the median; the last lines are machine-readable "RESULT key=value".
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SETTLE=${SETTLE:-10}
COUNT=10

bench_setup
base_kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$AGENT_PID/status")
sk apply -f - >/dev/null <<YAML
kind: application
name: rss
version: "1.0.0"
services:
  - name: main
    replicas: $COUNT
    containers:
      - name: main
        image: $IMAGE
        cmd: ["sleep", "3600"]
---
kind: deployment
name: rss
application: rss
version: "*"
sites: role = bench
YAML
wait_for 180 "$COUNT running containers" running_at_least skerry.deployment=rss "$COUNT"
sleep "$SETTLE"
kill -0 "$AGENT_PID" 2>/dev/null || die "the agent exited"
samples=()
for _ in 1 2 3 4 5; do
	samples+=("$(awk '/^VmRSS:/ { print $2 }' "/proc/$AGENT_PID/status")")
	sleep 1
done
rss_kb=$(printf '%s\n' "${samples[@]}" | median)
hwm_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$AGENT_PID/status")
# VmRSS counts every page of the shared libraries the agent has touched (and the kernel's
# fault-around neighbours); RssAnon is the agent's own memory, Pss shares library pages
# out among the processes that map them.
anon_kb=$(awk '/^RssAnon:/ { print $2 }' "/proc/$AGENT_PID/status")
file_kb=$(awk '/^RssFile:/ { print $2 }' "/proc/$AGENT_PID/status")
pss_kb=$(awk '/^Pss:/ { print $2 }' "/proc/$AGENT_PID/smaps_rollup")
running=$(running_count skerry.deployment=rss)
echo "agent VmRSS with $running running containers: $rss_kb KiB (peak $hwm_kb KiB; just after join: $base_kb KiB)"
echo "RESULT rss_containers=$running"
echo "RESULT rss_kb=$rss_kb"
echo "RESULT rss_hwm_kb=$hwm_kb"
echo "RESULT rss_join_kb=$base_kb"
echo "RESULT rss_anon_kb=$anon_kb"
echo "RESULT rss_file_kb=$file_kb"
echo "RESULT pss_kb=$pss_kb"
