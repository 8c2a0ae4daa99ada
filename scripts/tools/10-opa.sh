#!/usr/bin/env bash
# Open Policy Agent, built from the Go module proxy (pinned) into .tools/bin.
set -euo pipefail
OPA_VERSION="${OPA_VERSION:-1.22.3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/.tools/bin"
mkdir -p "$BIN"
# read the version into a variable first: `opa version | grep -q` under pipefail can fail with SIGPIPE
installed_version() { [ -x "$BIN/opa" ] && "$BIN/opa" version 2>/dev/null | sed -n 's/^Version: //p' || true; }
if [ "$(installed_version)" = "${OPA_VERSION}" ]; then
  echo "opa ${OPA_VERSION}: ok (cached)"
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "go is required to build opa (scripts/tools/00-debian.sh installs it)" >&2; exit 1; }
export GOBIN="$BIN"
export GOFLAGS="${GOFLAGS:-} -trimpath"
# a version-stamped build, so `opa version` reports the pinned release
nice go install -ldflags "-X github.com/open-policy-agent/opa/v1/version.Version=${OPA_VERSION}" \
  "github.com/open-policy-agent/opa@v${OPA_VERSION}"
got="$(installed_version)"
[ "$got" = "${OPA_VERSION}" ] || { echo "opa reports an unexpected version: ${got:-none}" >&2; exit 1; }
echo "opa ${OPA_VERSION}: installed"
