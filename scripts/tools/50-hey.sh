#!/usr/bin/env bash
# hey, the HTTP load generator `make bench` drives the webhook and a bare OPA with, built from
# the Go module proxy (pinned) into .tools/bin.
set -euo pipefail
HEY_VERSION="${HEY_VERSION:-v0.1.4}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/.tools/bin"
mkdir -p "$BIN"
# hey has no version flag: a stamp beside it records the pinned release it was built from
STAMP="$BIN/.hey.stamp"
if [ -x "$BIN/hey" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "${HEY_VERSION}" ]; then
  echo "hey ${HEY_VERSION}: ok (cached)"
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "go is required to build hey (scripts/tools/00-debian.sh installs it)" >&2; exit 1; }
export GOBIN="$BIN"
export GOFLAGS="${GOFLAGS:-} -trimpath"
nice go install "github.com/rakyll/hey@${HEY_VERSION}"
# without a URL hey prints its usage and exits 1: read it into a variable (no pipe under pipefail)
usage="$("$BIN/hey" 2>&1 || true)"
case "$usage" in *"Usage: hey"*) ;; *) echo "hey did not build" >&2; exit 1 ;; esac
echo "${HEY_VERSION}" > "$STAMP"
echo "hey ${HEY_VERSION}: installed"
