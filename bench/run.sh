#!/bin/bash
# Runs every benchmark and rewrites docs/benchmarks.md with the machine, the commands and
# the figures. Needs build/skerry (or SKERRY_BIN) and root for Podman.
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/benchmarks.md
tmp=$(mktemp -d /tmp/skerry-bench-run-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== bench/apply-to-running.sh" >&2
bench/apply-to-running.sh | tee "$tmp/apply.txt"
echo "== bench/agent-rss.sh" >&2
bench/agent-rss.sh | tee "$tmp/rss.txt"
echo "== bench/failover.sh" >&2
bench/failover.sh | tee "$tmp/failover.txt"
echo "== bench/labelexpr.sh" >&2
bench/labelexpr.sh | tee "$tmp/labelexpr.txt"

val() { # val FILE KEY
	sed -n "s/^RESULT $2=//p" "$1" | tail -1
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
cores=$(nproc)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
kernel=$(uname -r)
os=$(. /etc/os-release && echo "$PRETTY_NAME")
podman_v=$(podman --version | awk '{ print $3 }')
case $(stat -fc %T /sys/fs/cgroup) in
cgroup2fs) cgroup="cgroup v2" ;;
*) cgroup="cgroup v1 or hybrid" ;;
esac
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
skerry_bin=$(realpath --relative-to=. "${SKERRY_BIN:-build/skerry}")

cat >"$out" <<MD
# Benchmarks

Written by \`bench/run.sh\` on $(date -u +%Y-%m-%d) (commit $commit); run it again to refresh.
Every benchmark starts its own private Podman store, tower and agent in a temporary
folder (\`bench/lib.sh\`, \`tests/lib/podman-service.sh\`) and removes them at the end.

## Machine

| | |
| --- | --- |
| CPU | $cpu |
| cores | $cores |
| memory | $mem |
| kernel | $kernel ($os, $cgroup) |
| Podman | $podman_v |
| binary | \`$skerry_bin\` (\`make\`: -O2 -g) |
| load average at start | $load (1, 5, 15 min; other work on the machine widens the spread) |

## Apply to running

\`bench/apply-to-running.sh\` (RUNS=$(val "$tmp/apply.txt" apply_runs)): the time from starting
\`skerry apply -f -\` with a new one-container busybox application and a deployment that
selects the one site, until the runtime API lists that container as running (a watcher
polls it every 10 ms); then the deployment is deleted and the next run waits until the
container is gone. The figure includes the CLI's own start, its TLS handshake, the
tower's store write, the agent's long-poll wake-up and the container's create and start.
Against it, in the same go and on the same private Podman store: \`podman run -d\` of the
same image and command (the podman CLI on the store directly, as an operator would), until
it returns; that includes podman's own start-up.

| | each run (ms) | median (ms) |
| --- | --- | --- |
| \`skerry apply\` to running | $(val "$tmp/apply.txt" apply_ms) | **$(val "$tmp/apply.txt" apply_median_ms)** |
| \`podman run -d\` | $(val "$tmp/apply.txt" podman_ms) | **$(val "$tmp/apply.txt" podman_median_ms)** |

Ratio skerry / podman: **$(val "$tmp/apply.txt" ratio)**.

## Agent memory

\`bench/agent-rss.sh\`: the agent's VmRSS (\`/proc/PID/status\`) with
$(val "$tmp/rss.txt" rss_containers) running containers (one deployment, 10 replicas, on one host),
after the containers run and the agent has been idle for 10 s; median of 5 samples a second apart.

| | KiB |
| --- | --- |
| VmRSS, idle, 10 containers | **$(val "$tmp/rss.txt" rss_kb)** |
| VmHWM (peak) | $(val "$tmp/rss.txt" rss_hwm_kb) |
| of which the agent's own memory (RssAnon) | $(val "$tmp/rss.txt" rss_anon_kb) |
| of which shared library pages (RssFile) | $(val "$tmp/rss.txt" rss_file_kb) |
| Pss (library pages shared out among the processes mapping them) | $(val "$tmp/rss.txt" pss_kb) |
| VmRSS just after joining, no containers | $(val "$tmp/rss.txt" rss_join_kb) |

The target is under 8 MiB. The agent's own memory is far below it; VmRSS is dominated by
the pages of the shared libraries one \`skerry\` executable links (libcurl-gnutls alone
brings libcrypto, Kerberos, LDAP and libssh2 with it), which the agent pays for whether
or not it calls them. Getting VmRSS itself under 8 MiB means a leaner HTTP client for
the agent or an agent built without the tower's libraries.

## Failover

\`bench/failover.sh\` (RUNS=$(val "$tmp/failover.txt" failover_runs) for each role): one site of three agents on this
machine (each its own data folder, port and certificate), default site settings
(\`host-lost-after: 5s\`), one service of 3 replicas, one a host. Each run kills a host
with \`kill -9\` of its agent and then of its containers (through the runtime API), and
times from the kill until every instance of that host runs on another host (a watcher
polls the runtime API every 10 ms; it was started before the kill). Then the host's agent
starts again and the next run waits until it is back and every instance runs exactly once.
Every run starts from a fresh deployment, one instance a host (the scheduler never moves a
running instance to rebalance, so a host that returns stays empty). Follower and leader
runs alternate; the leader is the one \`skerry get hosts\` names.

| host killed | each run (ms) | median (ms) |
| --- | --- | --- |
| a follower | $(val "$tmp/failover.txt" failover_follower_ms) | **$(val "$tmp/failover.txt" failover_follower_median_ms)** |
| the leader | $(val "$tmp/failover.txt" failover_leader_ms) | **$(val "$tmp/failover.txt" failover_leader_median_ms)** |

The target is under 5 s. A host counts as lost only after \`host-lost-after\` without
contact (5 s by default), so with the defaults a figure under 5 s can only come from the
time between the host's last contact and the kill; the leader's figure also holds an
election.

## Label expression regexes

\`bench/labelexpr.sh\`: the same regexes through glibc's \`regcomp\`/\`regexec\` (what label
expressions used before) and through the label expressions' own engine
(\`src/model/labelexpr_re.c\`: a DFA when small, else a Thompson NFA), in one process; match
times are the best of 3 to 5 full matches of the value, compile once. The engine's figures
for the issue's regex are what it would cost if the size limit let it through.

| regex, value | glibc compile | glibc match | glibc RSS growth | engine compile | engine match | engine size (instructions), steps |
| --- | --- | --- | --- | --- | --- | --- |
| \`(((.\|..)?){31}){32}\`, \`store-001\` (issue 8) | $(val "$tmp/labelexpr.txt" issue8_glibc_compile_us) us | $(val "$tmp/labelexpr.txt" issue8_glibc_match_us) us | $(val "$tmp/labelexpr.txt" issue8_glibc_rss_kb) KiB | $(val "$tmp/labelexpr.txt" issue8_engine_compile_us) us | $(val "$tmp/labelexpr.txt" issue8_engine_match_us) us | $(val "$tmp/labelexpr.txt" issue8_engine_size), $(val "$tmp/labelexpr.txt" issue8_engine_steps): refused (over 1000) |
| \`(.\|..){60}\`, 256 x \`a\` | $(val "$tmp/labelexpr.txt" alt60_glibc_compile_us) us | $(val "$tmp/labelexpr.txt" alt60_glibc_match_us) us | $(val "$tmp/labelexpr.txt" alt60_glibc_rss_kb) KiB | $(val "$tmp/labelexpr.txt" alt60_engine_compile_us) us | $(val "$tmp/labelexpr.txt" alt60_engine_match_us) us | $(val "$tmp/labelexpr.txt" alt60_engine_size), $(val "$tmp/labelexpr.txt" alt60_engine_steps) |
| \`[a-z0-9-]{1,63}\`, 256 x \`a\` | $(val "$tmp/labelexpr.txt" dns_glibc_compile_us) us | $(val "$tmp/labelexpr.txt" dns_glibc_match_us) us | $(val "$tmp/labelexpr.txt" dns_glibc_rss_kb) KiB | $(val "$tmp/labelexpr.txt" dns_engine_compile_us) us | $(val "$tmp/labelexpr.txt" dns_engine_match_us) us | $(val "$tmp/labelexpr.txt" dns_engine_size), $(val "$tmp/labelexpr.txt" dns_engine_steps) |
| \`store-0[0-9]+\`, \`store-001\` | $(val "$tmp/labelexpr.txt" store_glibc_compile_us) us | $(val "$tmp/labelexpr.txt" store_glibc_match_us) us | $(val "$tmp/labelexpr.txt" store_glibc_rss_kb) KiB | $(val "$tmp/labelexpr.txt" store_engine_compile_us) us | $(val "$tmp/labelexpr.txt" store_engine_match_us) us | $(val "$tmp/labelexpr.txt" store_engine_size), $(val "$tmp/labelexpr.txt" store_engine_steps) |

The issue's whole expression ($(val "$tmp/labelexpr.txt" issue8_expr_bytes) bytes, the regex ANDed
over and over) is refused by the parser in **$(val "$tmp/labelexpr.txt" issue8_expr_refuse_us) us**
(glibc compiled each copy for the time above: 11.2 s on the tower for 20 of them). The costliest
expression the parser accepts, \`note ~ "(a|aa|.){1,99}.*"\` (no DFA within the limits: the NFA
runs), costs $(val "$tmp/labelexpr.txt" worst_expr_cost) steps at most, took
$(val "$tmp/labelexpr.txt" worst_expr_steps) steps and **$(val "$tmp/labelexpr.txt" worst_expr_match_us) us**
to match one 256-byte value: the most one site's match can cost.
MD
echo "wrote $out" >&2
