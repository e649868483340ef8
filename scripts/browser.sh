#!/usr/bin/env bash
# The browser the UI tests drive (tests/ui_browser.rs): Debian's chromium and chromedriver,
# installed from Debian's packages when missing. Nothing is downloaded by the tests themselves.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
echo "browser: installing Debian's chromium and chromium-driver (apt-get)" >&2
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y chromium chromium-driver >&2 \
  || { $sudo apt-get update >&2 && $sudo apt-get install -y chromium chromium-driver >&2; }
