#!/usr/bin/env bash
# libmodelgate_opa.so: OPA's Go evaluator as a C shared library, for the `opa-inprocess` policy
# engine (policies/engines/inprocess.py), built from the module in policies/engines/opalib
# (go.mod + go.sum committed, OPA pinned there) into .tools/lib. Rebuilt only when that
# module's files change (a stamp of their sha256 sits beside the library). Needs cgo (gcc).
# Cold build on a 2-core machine: about a minute with OPA's modules already in the Go cache.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MOD="$ROOT/policies/engines/opalib"
LIB="$ROOT/.tools/lib"
OUT="$LIB/libmodelgate_opa.so"
mkdir -p "$LIB"
stamp="$(cd "$MOD" && cat go.mod go.sum ./*.go | sha256sum | cut -d' ' -f1)"
if [ -f "$OUT" ] && [ "$(cat "$OUT.stamp" 2>/dev/null || true)" = "$stamp" ]; then
  echo "libmodelgate_opa: ok (cached)"
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "go is required to build libmodelgate_opa (scripts/tools/00-debian.sh checks it)" >&2; exit 1; }
command -v gcc >/dev/null 2>&1 || { echo "gcc is required to build libmodelgate_opa (cgo)" >&2; exit 1; }
start=$(date +%s)
build="$(mktemp -d "$LIB/build.XXXXXX")"
trap 'rm -rf "$build"' EXIT
(
  cd "$MOD"
  export GOWORK=off GOFLAGS="${GOFLAGS:-} -trimpath -mod=readonly" CGO_ENABLED=1
  nice go build -buildmode=c-shared -ldflags "-s -w" -o "$build/libmodelgate_opa.so" .
)
# (the C header go writes beside it is not needed: inprocess.py declares the signatures)
mv -f "$build/libmodelgate_opa.so" "$OUT"
echo "$stamp" > "$OUT.stamp"
echo "libmodelgate_opa: built in $(( $(date +%s) - start ))s"
