#!/usr/bin/env bash
# Installs the system programs the project runs, from Debian's packages, when they are missing:
# redis-server (embedded Redis for `make run` and the tests), ffmpeg (live HTTP test streams) and
# GStreamer's RTSP server with the system Python's gi bindings (live RTSP test streams),
# Chromium with its WebDriver (the dashboard's browser tests drive it headless) and docker-compose
# 1.29 (tests/deploy validates every compose file with it; no Docker engine needed) and HAProxy
# (tests/deploy checks the configuration of compose's load balancer in front of several managers),
# and openssl (tests make self-signed certificates for the API's and Redis's TLS).
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v openssl >/dev/null || missing+=(openssl)
command -v dpkg-deb >/dev/null || missing+=(dpkg)
[ -x /usr/bin/docker-compose ] || missing+=(docker-compose)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
if ! /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer" 2>/dev/null \
   || ! command -v gst-inspect-1.0 >/dev/null || ! gst-inspect-1.0 x264enc >/dev/null 2>&1; then
  missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
            gstreamer1.0-plugins-ugly gstreamer1.0-tools)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
