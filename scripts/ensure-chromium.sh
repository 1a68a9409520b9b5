#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (Playwright drives it).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then echo "ensure-chromium: $(/usr/bin/chromium --version 2>/dev/null)"; exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: installing chromium from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  exit 0
fi
echo "ensure-chromium: /usr/bin/chromium is missing and cannot be installed (need root and apt-get)" >&2
exit 1
