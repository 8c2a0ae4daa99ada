# syntax=docker/dockerfile:1
# The modelgate image used by charts/modelgate: webhook (`modelgate serve`), migrations
# (`modelgate db upgrade`), the auditor (`modelgate audit`) and the read-only dashboard
# (`modelgate dashboard`), with libmodelgate_opa.so for the `opa-inprocess` policy engine.
# Multi-stage, runs as non-root.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
# the Go toolchain of the opalib stage: bookworm like the runtime (the cgo library links the
# same glibc), and at least the `go` release policies/engines/opalib/go.mod names
ARG GO_IMAGE=golang:1.26.8-bookworm

# ---- opalib: OPA's evaluator as a C shared library (the `opa-inprocess` engine), built as
# scripts/tools/15-opalib.sh builds it; OPA's release is pinned by the module's go.mod/go.sum
FROM ${GO_IMAGE} AS opalib
ENV CGO_ENABLED=1 GOWORK=off GOFLAGS=-mod=readonly GOTOOLCHAIN=local
WORKDIR /src/opalib
COPY policies/engines/opalib/go.mod policies/engines/opalib/go.sum ./
RUN go mod download
COPY policies/engines/opalib/ ./
RUN go build -buildmode=c-shared -trimpath -ldflags "-s -w" -o /out/libmodelgate_opa.so . \
 && rm -f /out/libmodelgate_opa.h

# ---- build: install modelgate (with the auditor extras) into a self-contained venv
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY modelgate ./modelgate
COPY policies ./policies
COPY webhook ./webhook
COPY auditor ./auditor
COPY dashboard ./dashboard
RUN python -m venv /opt/modelgate \
 && /opt/modelgate/bin/pip install --upgrade pip \
 && /opt/modelgate/bin/pip install '.[auditor]'

# ---- runtime: the venv, the report renderer's shared libraries, an unprivileged user
FROM ${PYTHON_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 modelgate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/modelgate --create-home \
      --shell /usr/sbin/nologin modelgate
COPY --from=build /opt/modelgate /opt/modelgate
# where policies/engines/inprocess.py looks for it (MODELGATE_OPA_LIBRARY unset); root-owned,
# read-only for the unprivileged user
COPY --from=opalib --chown=0:0 --chmod=0644 /out/libmodelgate_opa.so /usr/local/lib/modelgate/libmodelgate_opa.so
# the default bundle; the chart mounts its ConfigMap over this directory
COPY policies/modelgate /etc/modelgate/policies/modelgate
ENV PATH=/opt/modelgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODELGATE_POLICY_DIR=/etc/modelgate/policies
USER 10001:10001
WORKDIR /home/modelgate
EXPOSE 8443
ENTRYPOINT ["modelgate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8443", "--tls-cert", "/etc/modelgate/tls/tls.crt", "--tls-key", "/etc/modelgate/tls/tls.key"]
