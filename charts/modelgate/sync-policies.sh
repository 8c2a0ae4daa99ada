#!/usr/bin/env bash
# Copy the policy bundle (policies/modelgate, without *_test.rego) into the chart's files/policies.
# `--check` exits 1 when the chart copy differs (tests/charts/test_policy_bundle.py runs the same check).
set -euo pipefail
CHART="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$CHART/../../policies/modelgate"
DST="$CHART/files/policies/modelgate"
stage="$(mktemp -d)"; trap 'rm -rf "$stage"' EXIT
(cd "$SRC" && find . -type f \( -name '*.rego' -o -name '*.json' -o -name '*.yaml' -o -name '*.yml' \) ! -name '*_test.rego' -print0 \
  | xargs -0 -I{} install -D -m 0644 {} "$stage/{}")
if [ "${1:-}" = "--check" ]; then
  diff -r "$stage" "$DST" && { echo "chart policy bundle: in sync"; exit 0; }
  echo "charts/modelgate/files/policies is out of date: run charts/modelgate/sync-policies.sh" >&2
  exit 1
fi
rm -rf "$DST"; mkdir -p "$DST"; cp -a "$stage/." "$DST/"
echo "chart policy bundle: synced from policies/modelgate"
