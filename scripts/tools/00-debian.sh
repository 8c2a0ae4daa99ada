#!/usr/bin/env bash
# Debian packages the test-suite needs (PostgreSQL, etcd, poppler, WeasyPrint's libraries).
set -euo pipefail
pkgs=(postgresql etcd-server poppler-utils libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 golang-go openssl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# the machine's own Go toolchain is used when present; the Debian one is only a fallback
if command -v go >/dev/null 2>&1; then
  missing=("${missing[@]/golang-go}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "debian packages: ok"
