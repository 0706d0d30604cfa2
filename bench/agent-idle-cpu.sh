#!/bin/bash
# The agents' CPU use on an idle site: one site of HOSTS (default 3) agents on this machine
# (each its own data folder, port and certificate), COUNT (default 10) one-container
# instances deployed and running, then SETTLE seconds (default 20) of rest; then each agent's
# utime+stime (/proc/PID/stat) is read at the start and at the end of a WINDOW of seconds
# (default 300) in which nothing is asked of the site. Prints, for each agent (its role from
# `skerry get hosts`), the CPU seconds it would use in an hour and the share of one core;
# the last lines are machine-readable "RESULT key=value".
set -euo pipefail
source "$(dirname "$0")/lib.sh"
HOSTS=${HOSTS:-3}
COUNT=${COUNT:-10}
SETTLE=${SETTLE:-20}
WINDOW=${WINDOW:-300}
SITE=bench-idle
TICKS=$(getconf CLK_TCK)

# cpu_ticks PID: user plus system time in clock ticks (fields 14 and 15 of /proc/PID/stat,
# counted after the command name, which may hold spaces, in parentheses).
cpu_ticks() {
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

NAMES=()
for i in $(seq 1 "$HOSTS"); do NAMES+=("idle-$i"); done
site_setup bench
deploy_sleepers idle "$COUNT"
wait_for 180 "$COUNT running containers" running_at_least skerry.deployment=idle "$COUNT"
sleep "$SETTLE"
lead=$(leader) || die "no leader"
declare -A T0=()
for h in "${NAMES[@]}"; do T0[$h]=$(cpu_ticks "${APID[$h]}"); done
t0=$(now_ms)
sleep "$WINDOW"
t1=$(now_ms)
running=$(running_count skerry.deployment=idle)
[ "$running" -eq "$COUNT" ] || die "$running of $COUNT instances running at the end"
[ "$(leader)" = "$lead" ] || die "the leader changed during the window"
window_s=$(awk -v ms=$((t1 - t0)) 'BEGIN { printf "%.1f", ms / 1000 }')
echo "idle site of $HOSTS hosts, $COUNT running instances, over $window_s s:"
echo "RESULT idle_window_s=$window_s"
echo "RESULT idle_instances=$running"
for h in "${NAMES[@]}"; do
	kill -0 "${APID[$h]}" 2>/dev/null || die "the agent of $h exited"
	d=$(($(cpu_ticks "${APID[$h]}") - ${T0[$h]}))
	role=follower
	[ "$h" != "$lead" ] || role=leader
	# CPU seconds an hour, and the share of one core in percent.
	read -r per_hour pct < <(awk -v d="$d" -v hz="$TICKS" -v ms=$((t1 - t0)) \
		'BEGIN { s = d / hz; printf "%.1f %.3f\n", s * 3600000 / ms, s * 100000 / ms }')
	echo "  $h ($role): $per_hour CPU s/hour, $pct % of a core"
	echo "RESULT $h.role=$role"
	echo "RESULT $h.cpu_s_per_hour=$per_hour"
	echo "RESULT $h.cpu_pct=$pct"
done
