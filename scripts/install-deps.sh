#!/bin/sh
# Installs what skerry needs to build and test, from Debian's archive, when it is missing.
# Idempotent and quiet when everything is there; needs root (or sudo) to install.
set -eu

PACKAGES="build-essential pkg-config clang libclang-rt-14-dev clang-format
libuv1-dev libraft-dev libmicrohttpd-dev libgnutls28-dev
libjansson-dev libyaml-dev libsodium-dev libsqlite3-dev libpq-dev libcmocka-dev
python3-pytest python3-cryptography podman runc busybox-static uidmap iproute2 sqlite3 curl openssl postgresql"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
