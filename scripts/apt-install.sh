#!/usr/bin/env bash
# Install the Debian packages listed in the given files (one per line, # comments) that are not installed yet.
set -euo pipefail
missing=$(for f in "$@"; do grep -v '^\s*#' "$f"; done | while read -r p; do
  [ -z "$p" ] || dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
[ -n "$missing" ] || exit 0
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -q
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
