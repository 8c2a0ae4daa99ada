#!/usr/bin/env bash
# Helm 3, built from the Go module proxy (pinned) into .tools/bin.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.19.0}"
# Kubernetes minor that helm's client-go matches (v0.34 for helm v3.19): the default
# .Capabilities.KubeVersion of `helm template` and the API deprecation checks of `helm lint`.
HELM_K8S_MINOR="${HELM_K8S_MINOR:-34}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/.tools/bin"
mkdir -p "$BIN"
STAMP="$BIN/.helm.stamp"
want="${HELM_VERSION} k8s-1.${HELM_K8S_MINOR}"
if [ -x "$BIN/helm" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] \
  && [ "$("$BIN/helm" version --template '{{.Version}}' 2>/dev/null)" = "${HELM_VERSION}" ]; then
  echo "helm ${HELM_VERSION}: ok (cached)"
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "go is required to build helm (scripts/tools/00-debian.sh installs it)" >&2; exit 1; }
export GOBIN="$BIN"
export GOFLAGS="${GOFLAGS:-} -trimpath"
# stamp the version the way helm's own Makefile does, so `helm version` reports the pin
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${HELM_K8S_MINOR}"
done
nice go install -ldflags "$ldflags" \
  "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
got="$("$BIN/helm" version --template '{{.Version}}')"
[ "$got" = "${HELM_VERSION}" ] || { echo "helm reports ${got}, expected ${HELM_VERSION}" >&2; exit 1; }
echo "$want" > "$STAMP"
echo "helm ${HELM_VERSION}: installed"
