#!/usr/bin/env bash
# The browser of the console's tests (tests/e2e/console): Debian's chromium and
# chromium-driver, installed with apt-get when missing. Playwright (a dev
# dependency in pyproject.toml) drives /usr/bin/chromium; nothing here runs
# `playwright install`, so no browser is ever downloaded.
#
#   scripts/browser.sh    install if missing, then print the versions
#
# Needs root or password-less sudo to install; does nothing when both exist.
set -euo pipefail

# fonts-liberation: chromium only recommends it; screenshots need real fonts.
PACKAGES=(chromium chromium-driver fonts-liberation)
export DEBIAN_FRONTEND=noninteractive

have_all() { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }

if ! have_all; then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    sudo -n true 2>/dev/null || {
      echo "[browser] need to install ${PACKAGES[*]}: run as root, or install them first" >&2
      exit 1
    }
    sudo=(sudo -n)
  fi
  command -v apt-get >/dev/null || {
    echo "[browser] need ${PACKAGES[*]} and there is no apt-get on this machine" >&2
    exit 1
  }
  echo "[browser] installing Debian packages: ${PACKAGES[*]}" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
    install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
  have_all || { echo "[browser] chromium or chromedriver still missing after apt-get" >&2; exit 1; }
fi
echo "[browser] $(chromium --version 2>/dev/null | head -n1); $(chromedriver --version | head -n1)" >&2
