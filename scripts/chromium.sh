#!/usr/bin/env bash
# Print the path of a headless-capable Chromium for the dashboard test, installing Debian's
# `chromium` package first if it is missing (needs root, as in CI).
set -euo pipefail
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" != 0 ]; then echo "chromium.sh: not installed, and not root to install it" >&2; exit 1; fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
fi
command -v chromium
