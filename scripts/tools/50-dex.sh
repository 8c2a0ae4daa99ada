#!/usr/bin/env bash
# Dex (the OIDC provider the identity tests obtain real tokens from), release v2.41.1, built from
# the Go module proxy into .tools/bin through the small build module in scripts/tools/dex
# (go.mod + go.sum committed: Dex cannot be `go install`ed at a version, see its go.mod).
# Cold build on a 2-core machine: a few minutes; cached re-runs are a no-op.
set -euo pipefail
DEX_VERSION="v2.41.1"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MOD="$ROOT/scripts/tools/dex"
BIN="$ROOT/.tools/bin"
mkdir -p "$BIN"
# captured first: `grep -q` closing the pipe early would fail the pipeline under pipefail
installed_version() { [ -x "$BIN/dex" ] && "$BIN/dex" version 2>/dev/null | sed -n 's/^Dex Version: //p' || true; }
if [ "$(installed_version)" = "${DEX_VERSION}" ]; then
  echo "dex ${DEX_VERSION}: ok (cached)"
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "go is required to build dex (scripts/tools/00-debian.sh installs it)" >&2; exit 1; }
start=$(date +%s)
(
  cd "$MOD"
  # cgo: Dex's command refers to its SQLite storage (the tests use the in-memory one)
  export GOWORK=off GOFLAGS="${GOFLAGS:-} -trimpath -mod=readonly" CGO_ENABLED=1
  nice go build -ldflags "-s -w -X main.version=${DEX_VERSION}" -o "$BIN/dex" github.com/dexidp/dex/cmd/dex
)
got="$(installed_version)"
[ "$got" = "${DEX_VERSION}" ] || { echo "dex reports an unexpected version: ${got:-none}" >&2; exit 1; }
echo "dex ${DEX_VERSION}: built in $(( $(date +%s) - start ))s"
