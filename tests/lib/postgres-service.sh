#!/bin/bash
# A private PostgreSQL server for tests, with all its state under one directory.
#
#   postgres-service.sh start DIR   starts it (if not running) and prints a libpq conninfo
#                                   string for its database "skerry" on stdout once the
#                                   server accepts connections
#   postgres-service.sh stop DIR    stops it (pg_ctl stop -m immediate), kills what is
#                                   left and removes what start made, so DIR can be deleted
#
# Both are idempotent. The server listens on 127.0.0.1 on a free port, its unix socket is
# inside DIR, and it trusts every connection: it is for tests on loopback only, never for
# data that matters. initdb refuses to run as root, so as root the server runs as the
# `postgres` user on DIR/pg, which that user owns (DIR itself gets o+x so it can get there).
# PG_BINDIR overrides where initdb and pg_ctl are looked for.
set -euo pipefail

die() {
	echo "postgres-service.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: postgres-service.sh start|stop DIR" >&2
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
PG=$DIR/pg
DATA=$PG/data
SOCKDIR=$PG/sock
LOG=$PG/postgres.log
PORTFILE=$PG/port
DBNAME=skerry
DBUSER=postgres

find_bindir() {
	local d
	if [ -n "${PG_BINDIR:-}" ]; then
		[ -x "$PG_BINDIR/pg_ctl" ] || die "PG_BINDIR=$PG_BINDIR has no pg_ctl"
		echo "$PG_BINDIR"
		return
	fi
	# Debian keeps the server binaries out of PATH; prefer 15, the version we test with.
	for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
		if [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ]; then
			echo "$d"
			return
		fi
	done
	if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
		dirname "$(command -v pg_ctl)"
		return
	fi
	die "PostgreSQL server is not installed: no initdb/pg_ctl found (apt-get install postgresql, or scripts/install-deps.sh)"
}

# Runs a command as the server's owner: the postgres user when we are root.
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

port_in_use() {
	local hex
	hex=$(printf '%04X' "$1")
	# Any socket on that port in /proc/net/tcp{,6} (local address column): taken.
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p=":$hex" \
		'NR > 1 && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }'
}

pick_port() {
	local i port
	for i in $(seq 1 50); do
		port=$((20000 + RANDOM % 40000))
		port_in_use "$port" || {
			echo "$port"
			return
		}
	done
	die "no free TCP port found on 127.0.0.1"
}

conninfo() {
	echo "host=127.0.0.1 port=$(cat "$PORTFILE") dbname=$DBNAME user=$DBUSER"
}

running() {
	[ -f "$DATA/postmaster.pid" ] && [ -f "$PORTFILE" ] &&
		as_owner "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

accepting() {
	as_owner "$BIN/pg_isready" -q -h "$SOCKDIR" -p "$(cat "$PORTFILE")" >/dev/null 2>&1
}

psql_cmd() {
	as_owner "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKDIR" -p "$(cat "$PORTFILE")" \
		-U "$DBUSER" "$@"
}

ensure_database() {
	local have
	have=$(psql_cmd -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DBNAME'")
	[ "$have" = 1 ] || psql_cmd -d postgres -c "CREATE DATABASE $DBNAME" >/dev/null
}

init_cluster() {
	mkdir -p "$PG"
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || die "there is no postgres user (apt-get install postgresql)"
		chown postgres: "$PG"
		chmod o+x "$DIR"
		as_owner test -x "$PG" || die "the postgres user cannot reach $PG (a parent folder is private)"
	fi
	chmod 700 "$PG"
	[ -f "$DATA/PG_VERSION" ] && return 0
	rm -rf "$DATA"
	# C.UTF-8: the store must not depend on the server's collation (its text columns
	# compare bytes by themselves), and every Debian has this locale.
	as_owner "$BIN/initdb" -D "$DATA" -U "$DBUSER" --auth=trust --encoding=UTF8 \
		--locale=C.UTF-8 --no-sync >"$PG/initdb.log" 2>&1 || {
		cat "$PG/initdb.log" >&2
		die "initdb failed (log above)"
	}
	as_owner mkdir -p "$SOCKDIR"
}

start_server() {
	local i port
	for i in 1 2 3 4 5; do
		port=$(pick_port)
		echo "$port" >"$PORTFILE"
		# fsync off: a test server's data does not outlive the test.
		if as_owner "$BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 30 -s \
			-o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$SOCKDIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50" \
			>/dev/null 2>&1; then
			return 0
		fi
		# Another process may have taken the port between the check and the start.
		grep -q "could not bind\|could not create listen socket" "$LOG" 2>/dev/null || break
	done
	rm -f "$PORTFILE"
	cat "$LOG" >&2 2>/dev/null || true
	die "PostgreSQL did not start (log above)"
}

start() {
	BIN=$(find_bindir)
	mkdir -p "$DIR"
	if ! running; then
		init_cluster
		start_server
	fi
	local i
	for i in $(seq 1 100); do
		accepting && break
		sleep 0.1
	done
	accepting || die "PostgreSQL does not accept connections on $SOCKDIR port $(cat "$PORTFILE")"
	ensure_database
	conninfo
}

# PIDs of processes whose command line mentions DIR (a postmaster that lost its pid file).
pids_in_dir() {
	local p
	for p in /proc/[0-9]*; do
		[ "${p#/proc/}" = "$$" ] && continue
		if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$PG/"; then
			echo "${p#/proc/}"
		fi
	done
}

stop() {
	[ -d "$PG" ] || return 0
	if [ -f "$DATA/postmaster.pid" ]; then
		BIN=$(find_bindir)
		as_owner "$BIN/pg_ctl" stop -D "$DATA" -m immediate -w -t 30 -s >/dev/null 2>&1 || true
	fi
	local pid
	for pid in $(pids_in_dir); do
		kill -KILL "$pid" 2>/dev/null || true
	done
	rm -rf "$PG"
}

case "$cmd" in
start) start ;;
stop) stop ;;
*) usage ;;
esac
