#!/usr/bin/env bash
# Installs the system programs Vernacular needs when they are missing (Debian/Ubuntu).
# Usage: scripts/system_deps.sh run|test
set -euo pipefail

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)  # the demo corpus
if [ "${1:-run}" = "test" ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "Vernacular needs these programs; install them with your package manager: ${need[*]}" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null; then
  sudo="sudo"
else
  echo "Vernacular needs these Debian packages; ask an administrator to install: ${need[*]}" >&2
  exit 1
fi
echo "Installing system packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
