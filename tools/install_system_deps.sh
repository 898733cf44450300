#!/usr/bin/env bash
# Installs the system programs the project runs (from Debian's packages) when they are missing:
# redis-server (embedded Redis for `make run` and the tests) and ffmpeg (live test streams).
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v dpkg-deb >/dev/null || missing+=(dpkg)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
