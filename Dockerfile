# syntax=docker/dockerfile:1
# The modelgate image used by charts/modelgate: webhook (`modelgate serve`), migrations
# (`modelgate db upgrade`), the auditor (`modelgate audit`) and the read-only dashboard
# (`modelgate dashboard`). Multi-stage, runs as non-root.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

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
