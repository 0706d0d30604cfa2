#!/bin/bash
# Time from `skerry apply` of a one-container busybox application to that container running
# on a connected site, against `podman run -d` of the same image on the same private Podman
# store, in the same go. Prints the median of RUNS runs (default 5) of each and their ratio;
# the last lines are machine-readable "RESULT key=value".
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-5}
[ "$RUNS" -ge 1 ] 2>/dev/null || die "RUNS must be a positive integer"

app_yaml() {
	cat <<YAML
kind: application
name: bench-$1
version: "1.0.0"
services:
  - name: main
    replicas: 1
    containers:
      - name: main
        image: $IMAGE
        cmd: ["sleep", "3600"]
---
kind: deployment
name: bench-$1
application: bench-$1
version: "*"
sites: role = bench
YAML
}

bench_setup
echo "skerry apply -> running ($RUNS runs):" >&2
skerry_ms=()
for i in $(seq 1 "$RUNS"); do
	watch_running "skerry.deployment=bench-$i" >"$BENCH_DIR/seen" &
	watcher=$!
	sleep 0.3 # the watcher is polling
	start=$(now_ms)
	app_yaml "$i" | sk apply -f - >/dev/null
	wait "$watcher" || die "run $i: no running container after 120 s"
	ms=$(($(cat "$BENCH_DIR/seen") - start))
	skerry_ms+=("$ms")
	echo "  run $i: $ms ms" >&2
	sk delete deployment "bench-$i" >/dev/null
	# The next run starts with the agent idle: the container is gone, not just stopping.
	wait_for 120 "bench-$i to be removed" none_left "skerry.deployment=bench-$i"
done

echo "podman run -d ($RUNS runs, same store):" >&2
podman_ms=()
for i in $(seq 1 "$RUNS"); do
	start=$(now_ms)
	podman_store run -d --name "bench-podman-$i" "$IMAGE" sleep 3600 >/dev/null
	ms=$(($(now_ms) - start))
	podman_ms+=("$ms")
	echo "  run $i: $ms ms" >&2
	podman_store rm -f -t 0 "bench-podman-$i" >/dev/null
done

sk_med=$(printf '%s\n' "${skerry_ms[@]}" | median)
pm_med=$(printf '%s\n' "${podman_ms[@]}" | median)
ratio=$(awk -v a="$sk_med" -v b="$pm_med" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }')
echo "apply-to-running median: $sk_med ms; podman run -d median: $pm_med ms; ratio: $ratio"
echo "RESULT apply_runs=$RUNS"
echo "RESULT apply_ms=${skerry_ms[*]}"
echo "RESULT apply_median_ms=$sk_med"
echo "RESULT podman_ms=${podman_ms[*]}"
echo "RESULT podman_median_ms=$pm_med"
echo "RESULT ratio=$ratio"
