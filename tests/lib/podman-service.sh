#!/bin/bash
# A private Podman API service for tests, with all its state under one directory.
#
#   podman-service.sh start DIR   starts it (if not running), imports the test image
#                                 localhost/busybox:latest, prints the socket path
#   podman-service.sh stop DIR    removes every container of that store, stops the
#                                 service, kills what is left, unmounts and removes what
#                                 start made, so that DIR can be deleted
#
# Both are idempotent. Nothing outside DIR is touched: the machine's own container store
# and any other instance of this script keep working.
set -euo pipefail

IMAGE=localhost/busybox:latest

die() {
	echo "podman-service.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: podman-service.sh start|stop DIR" >&2
	exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
[ -n "$2" ] || usage
case "$2" in
/*) DIR=$2 ;;
*) DIR=$PWD/$2 ;;
esac
DIR=${DIR%/}
SOCK=$DIR/podman.sock
PIDFILE=$DIR/podman.pid
CONF=$DIR/containers.conf
LOG=$DIR/podman.log

podman_cmd() {
	CONTAINERS_CONF=$CONF CONTAINERS_STORAGE_CONF=$DIR/storage.conf \
		podman --root "$DIR/root" --runroot "$DIR/runroot" \
		--network-config-dir "$DIR/net" --tmpdir "$DIR/tmp" \
		--volumepath "$DIR/volumes" --cgroup-manager cgroupfs \
		--events-backend file "$@"
}

# crun cannot run on a hybrid cgroup v1/v2 host; runc can. On a pure cgroup v2 host keep
# podman's default (crun when installed).
pick_runtime() {
	local fstype
	fstype=$(stat -fc %T /sys/fs/cgroup 2>/dev/null || echo unknown)
	if [ "$fstype" = cgroup2fs ] && command -v crun >/dev/null; then
		echo crun
	elif command -v runc >/dev/null; then
		echo runc
	elif command -v crun >/dev/null; then
		echo crun
	else
		die "neither runc nor crun is installed (apt-get install runc)"
	fi
}

write_conf() {
	local runtime
	runtime=$(pick_runtime)
	mkdir -p "$DIR/root" "$DIR/runroot" "$DIR/net" "$DIR/tmp" "$DIR/volumes"
	# The hard nofile limit here can be lower than podman's default (1048576), which makes
	# every container fail with "error setting rlimit": ask for less.
	cat >"$CONF" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"

[engine]
runtime = "$runtime"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$DIR/tmp/events.log"
tmp_dir = "$DIR/tmp"
volume_path = "$DIR/volumes"
# The default shm locks (/dev/shm/libpod_lock) are shared by every store on the machine:
# two stores hand out the same lock numbers and deadlock each other. File locks live
# under tmp_dir, private to this store.
lock_type = "file"

[network]
network_config_dir = "$DIR/net"
EOF
	cat >"$DIR/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$DIR/root"
runroot = "$DIR/runroot"
EOF
}

ping_ok() {
	[ -S "$SOCK" ] && curl -sf --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1
}

service_pid() {
	local pid
	[ -f "$PIDFILE" ] || return 1
	pid=$(cat "$PIDFILE")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

build_image() {
	podman_cmd image exists "$IMAGE" && return 0
	local bb rootfs
	bb=$(command -v busybox || true)
	[ -n "$bb" ] || die "busybox is not installed (apt-get install busybox-static)"
	# The image has no libc: only a static busybox works in it.
	if ldd "$bb" >/dev/null 2>&1; then
		[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 && bb=/bin/busybox ||
			die "$bb is dynamically linked (apt-get install busybox-static)"
	fi
	rootfs=$DIR/rootfs
	rm -rf "$rootfs"
	mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc" "$rootfs/dev" "$rootfs/proc" \
		"$rootfs/sys"
	chmod 1777 "$rootfs/tmp"
	cp "$bb" "$rootfs/bin/busybox"
	local applet
	for applet in $("$rootfs/bin/busybox" --list); do
		[ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
		>"$rootfs/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
	tar -C "$rootfs" -c . | podman_cmd import -q --change 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
	rm -rf "$rootfs"
}

start() {
	command -v podman >/dev/null || die "podman is not installed (scripts/install-deps.sh)"
	command -v curl >/dev/null || die "curl is not installed (scripts/install-deps.sh)"
	mkdir -p "$DIR"
	if service_pid >/dev/null && ping_ok; then
		build_image
		echo "$SOCK"
		return 0
	fi
	write_conf
	rm -f "$SOCK"
	# setsid: the service must not die with the caller's terminal or process group, and
	# stop finds it by the recorded PID.
	setsid env CONTAINERS_CONF="$CONF" CONTAINERS_STORAGE_CONF="$DIR/storage.conf" \
		podman --root "$DIR/root" --runroot "$DIR/runroot" \
		--network-config-dir "$DIR/net" --tmpdir "$DIR/tmp" \
		--volumepath "$DIR/volumes" --cgroup-manager cgroupfs --events-backend file \
		system service --time=0 "unix://$SOCK" </dev/null >"$LOG" 2>&1 &
	echo $! >"$PIDFILE"
	local i
	for i in $(seq 1 100); do
		ping_ok && break
		if ! service_pid >/dev/null; then
			cat "$LOG" >&2
			die "podman service exited at start (log above)"
		fi
		sleep 0.1
	done
	ping_ok || {
		cat "$LOG" >&2
		die "podman service did not answer /_ping on $SOCK within 10 s"
	}
	build_image
	echo "$SOCK"
}

# PIDs of this store's helpers (conmon, podman, ...) still alive: their command lines
# name paths under DIR. Only those programs: a caller's shell may mention DIR too.
pids_in_dir() {
	local p comm
	for p in /proc/[0-9]*; do
		[ "${p#/proc/}" = "$$" ] && continue
		comm=$(cat "$p/comm" 2>/dev/null) || continue
		case "$comm" in
		conmon | podman | netavark | aardvark-dns | slirp4netns | runc | crun) ;;
		*) continue ;;
		esac
		if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$DIR/"; then
			echo "${p#/proc/}"
		fi
	done
}

# runc keeps its state in /run/runc for every store: kill and delete the containers whose
# bundle is ours, in case the service died before it could remove them.
reap_runc() {
	command -v runc >/dev/null || return 0
	local id
	for id in $(runc list -q 2>/dev/null); do
		[ -d "$DIR/root/overlay-containers/$id" ] || continue
		runc kill "$id" KILL >/dev/null 2>&1 || true
		runc delete --force "$id" >/dev/null 2>&1 || true
	done
}

# netavark leaves its top-level iptables chains behind when the last network goes away.
# Remove them only when no network of any store uses them any more.
remove_idle_netavark_chains() {
	command -v iptables >/dev/null || return 0
	local ipt="iptables -w"
	$ipt -t filter -S NETAVARK_FORWARD >/dev/null 2>&1 || return 0
	[ "$($ipt -t filter -S NETAVARK_FORWARD | wc -l)" -le 1 ] || return 0
	[ "$($ipt -t nat -S NETAVARK-HOSTPORT-DNAT 2>/dev/null | wc -l)" -le 1 ] || return 0
	$ipt -t nat -S | grep -qE '^-N NETAVARK-[0-9A-F]' && return 0
	ip link show type bridge 2>/dev/null | grep -qE ': podman[0-9]' && return 0
	$ipt -t filter -D FORWARD -m comment --comment "netavark firewall plugin rules" \
		-j NETAVARK_FORWARD 2>/dev/null || true
	$ipt -t filter -X NETAVARK_FORWARD 2>/dev/null || true
	$ipt -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT \
		2>/dev/null || true
	$ipt -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT \
		2>/dev/null || true
	$ipt -t nat -D POSTROUTING -j NETAVARK-HOSTPORT-MASQ 2>/dev/null || true
	local c
	for c in NETAVARK-HOSTPORT-DNAT NETAVARK-HOSTPORT-MASQ NETAVARK-HOSTPORT-SETMARK; do
		$ipt -t nat -F "$c" 2>/dev/null || true
		$ipt -t nat -X "$c" 2>/dev/null || true
	done
}

unmount_all() {
	local m
	# Deepest first.
	for m in $(awk -v d="$DIR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo |
		sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
}

stop() {
	[ -d "$DIR" ] || return 0
	if [ -f "$CONF" ]; then
		podman_cmd rm --all --force --time 0 >/dev/null 2>&1 || true
		podman_cmd pod rm --all --force >/dev/null 2>&1 || true
		podman_cmd network prune --force >/dev/null 2>&1 || true
		podman_cmd volume prune --force >/dev/null 2>&1 || true
	fi
	local pid i
	if pid=$(service_pid); then
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	for pid in $(pids_in_dir); do
		kill -KILL "$pid" 2>/dev/null || true
	done
	reap_runc
	unmount_all
	remove_idle_netavark_chains
	rm -rf "$DIR/root" "$DIR/runroot" "$DIR/net" "$DIR/tmp" "$DIR/volumes" "$DIR/rootfs" \
		"$CONF" "$DIR/storage.conf" "$SOCK" "$PIDFILE" "$LOG"
}

case "$cmd" in
start) start ;;
stop) stop ;;
*) usage ;;
esac
