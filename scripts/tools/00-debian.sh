#!/usr/bin/env bash
# Debian packages the test-suite needs (PostgreSQL, etcd, poppler, WeasyPrint's libraries, Chromium
# for the dashboard's browser tests), and a check that the Go toolchain on PATH can build the
# pinned tools (10-opa.sh, 20-helm.sh, 30-kubernetes.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# gcc + libc6-dev: cgo, for Dex and libmodelgate_opa.so (50-dex.sh, 15-opalib.sh)
pkgs=(postgresql etcd-server poppler-utils libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 openssl chromium gcc libc6-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "debian packages: ok"

# Go: the pinned Kubernetes (and OPA) releases need the toolchain their go.mod names; Debian
# bookworm's golang-go (1.19) is too old, so it is not installed as a fallback. A go >= 1.21 with
# GOTOOLCHAIN=auto (its default) fetches the required toolchain from the module proxy by itself.
GO_MIN="$(awk '$1 == "go" {print $2; exit}' "$ROOT/scripts/tools/k8s/go.mod")"
# true when version $1 >= $2 (sort -V; captured first, no early-closing pipe under pipefail)
version_ge() { local lowest; lowest="$(printf '%s\n%s\n' "$1" "$2" | sort -V)"; [ "${lowest%%$'\n'*}" = "$2" ]; }
no_go() {
  echo "go >= ${GO_MIN} is required to build the pinned tools ($1)." >&2
  echo "Install an official Go release of that version or newer and put its bin directory on PATH" \
    "(Debian bookworm's golang-go 1.19 is too old)." >&2
  exit 1
}
command -v go >/dev/null 2>&1 || no_go "no go on PATH"
have="$(go env GOVERSION 2>/dev/null || true)"; have="${have#go}"
[ -n "$have" ] || no_go "go env GOVERSION failed"
if version_ge "$have" "$GO_MIN"; then
  echo "go ${have}: ok"
elif version_ge "$have" 1.21 && [ "$(go env GOTOOLCHAIN)" != local ]; then
  echo "go ${have}: ok (the go command switches to go ${GO_MIN} itself, GOTOOLCHAIN=auto)"
else
  no_go "found go ${have}$(version_ge "$have" 1.21 && echo ' with GOTOOLCHAIN=local')"
fi
