#!/usr/bin/env bash
# Checks the Prometheus alert rules under deploy/prometheus with promtool, from
# Debian's `prometheus` package, installed with apt-get when missing (the
# package's service is not started: only its promtool binary is used).
#
#   scripts/promtool.sh    install if missing, then `promtool check rules`
#
# Needs root or password-less sudo to install; does nothing extra when promtool exists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGE=prometheus
RULES=(deploy/prometheus/*.yml)

if ! command -v promtool >/dev/null; then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    sudo -n true 2>/dev/null || {
      echo "[promtool] need to install $PACKAGE: run as root, or install it first" >&2
      exit 1
    }
    sudo=(sudo -n)
  fi
  command -v apt-get >/dev/null || {
    echo "[promtool] need promtool ($PACKAGE) and there is no apt-get on this machine" >&2
    exit 1
  }
  echo "[promtool] installing Debian package: $PACKAGE" >&2
  # policy-rc.d 101: the package's daemon is not started by the install.
  policy=/usr/sbin/policy-rc.d
  restore_policy=false
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    restore_policy=true
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
    install -y -qq --no-install-recommends "$PACKAGE" >/dev/null
  if $restore_policy; then "${sudo[@]}" rm -f "$policy"; fi
  command -v promtool >/dev/null || { echo "[promtool] still missing after apt-get" >&2; exit 1; }
fi
promtool check rules "${RULES[@]}"
promtool test rules deploy/prometheus/tests/*.yml
