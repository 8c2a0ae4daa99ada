#!/usr/bin/env bash
# kube-apiserver and kubectl of ONE pinned Kubernetes release, built from the Go module proxy into
# .tools/bin through the small build module in scripts/tools/k8s (go.mod + go.sum committed: it
# replaces every k8s.io/* staging module with the published v0.X.Y of the same release).
# etcd comes from Debian (scripts/tools/00-debian.sh: etcd-server, /usr/bin/etcd).
# Cold build on a 2-core machine: see README ("Kubernetes / Helm"); cached re-runs are a no-op.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MOD="$ROOT/scripts/tools/k8s"
BIN="$ROOT/.tools/bin"
# the release pinned by the build module's go.mod (single source of truth)
K8S_VERSION="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v[0-9]/ {print $2; exit}' "$MOD/go.mod")"
[ -n "$K8S_VERSION" ] || { echo "cannot read the k8s.io/kubernetes version from $MOD/go.mod" >&2; exit 1; }
mkdir -p "$BIN"

have_version() {
  [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kubectl" ] || return 1
  # captured first: `grep -q` closing the pipe early would fail the pipeline under pipefail
  local api cli
  api="$("$BIN/kube-apiserver" --version 2>/dev/null)" || return 1
  cli="$("$BIN/kubectl" version --client 2>/dev/null)" || return 1
  grep -qx "Kubernetes ${K8S_VERSION}" <<<"$api" || return 1
  grep -qx "Client Version: ${K8S_VERSION}" <<<"$cli" || return 1
}

if have_version; then
  echo "kubernetes ${K8S_VERSION} (kube-apiserver, kubectl): ok (cached)"
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "go is required to build kubernetes (scripts/tools/00-debian.sh installs it)" >&2; exit 1; }

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
  ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done

start=$(date +%s)
(
  cd "$MOD"
  export GOWORK=off GOFLAGS="${GOFLAGS:-} -trimpath -mod=readonly" CGO_ENABLED=0
  nice go build -ldflags "$ldflags" -o "$BIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
)
echo "kubernetes ${K8S_VERSION}: built in $(( $(date +%s) - start ))s"
have_version || { echo "the built kube-apiserver/kubectl do not report ${K8S_VERSION}" >&2; exit 1; }
"$BIN/kube-apiserver" --version
"$BIN/kubectl" version --client
