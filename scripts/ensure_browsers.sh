#!/usr/bin/env bash
# The console's browser tests (tests/ui) drive Debian's headless Chromium with its chromedriver.
# Installs both from Debian's packages when either is missing; does nothing when both are there.
# Needs root (or sudo) only to install.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    echo "browsers: chromium and chromedriver are installed"
    exit 0
fi
echo "browsers: installing chromium and chromium-driver (Debian packages) for tests/ui"
as_root apt-get update -q
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
