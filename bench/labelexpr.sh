#!/bin/bash
# Worst-case label regex matching, glibc regex (before) against the label expressions'
# own engine (after): builds bench/labelexpr.c against build/libskerry.a and runs it. No
# tower, no Podman. The last lines are machine-readable "RESULT key=value".
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
[ -f "$BUILD/libskerry.a" ] || { echo "$0: build $BUILD/libskerry.a first (make)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/skerry-bench-labelexpr-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# only the label expression objects come out of the archive: they need jansson alone
# shellcheck disable=SC2046
cc -O2 -std=gnu11 -D_GNU_SOURCE -Isrc $(pkg-config --cflags jansson) -o "$tmp/labelexpr" \
	bench/labelexpr.c "$BUILD/libskerry.a" $(pkg-config --libs jansson) -lpthread
"$tmp/labelexpr"
