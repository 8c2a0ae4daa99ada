"""The Dockerfile the chart's image is built from (no Docker engine here: checked statically)."""

from __future__ import annotations

import fnmatch
import re

import yaml

from tests.charts.helm import CHART, one, render
from tests.fixtures.tools import REPO_ROOT

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
INSTRUCTIONS = [
    ln.strip() for ln in DOCKERFILE.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
]


def test_multi_stage_with_pinned_base_images() -> None:
    froms = [ln for ln in INSTRUCTIONS if ln.startswith("FROM ")]
    assert len(froms) >= 2
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert base is not None
    image = base.group(1)
    assert ":" in image and not image.endswith(":latest")
    assert re.search(r":\d+\.\d+\.\d+", image), f"base image not pinned to a release: {image}"


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    users = [ln for ln in INSTRUCTIONS if ln.startswith("USER ")]
    assert users, "no USER instruction"
    uid = users[-1].split()[1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    # the chart's securityContext runs as the same user
    assert f"runAsUser: {uid}" in (CHART / "values.yaml").read_text(encoding="utf-8")


def test_entrypoint_serves_the_webhook() -> None:
    assert 'ENTRYPOINT ["modelgate"]' in INSTRUCTIONS
    cmd = next(ln for ln in INSTRUCTIONS if ln.startswith("CMD "))
    assert '"serve"' in cmd and '"--tls-cert"' in cmd


def test_copied_sources_exist_and_are_not_docker_ignored() -> None:
    ignored = [
        ln.strip()
        for ln in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for ln in INSTRUCTIONS:
        if not ln.startswith("COPY ") or "--from=" in ln:
            continue
        for src in ln.split()[1:-1]:
            assert (REPO_ROOT / src).exists(), f"COPY source {src} missing"
            assert not any(fnmatch.fnmatch(src, pat) for pat in ignored), f"{src} is ignored"


def test_every_packaged_python_package_is_copied_into_the_build() -> None:
    """A package listed in pyproject's setuptools include but not copied would be silently
    missing from the image (e.g. `modelgate dashboard` would not exist)."""
    import tomllib

    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = {
        ln.split()[1].rstrip("/")
        for ln in INSTRUCTIONS
        if ln.startswith("COPY ") and "--from=" not in ln and len(ln.split()) == 3
    }
    assert "dashboard" in packages
    assert packages <= copied, f"not copied: {sorted(packages - copied)}"


def _pip_extras() -> set[str]:
    m = re.search(r"pip install '\.\[([\w,]+)\]'", DOCKERFILE)
    assert m, "the build stage does not pip install the project with extras"
    return set(m.group(1).split(","))


def test_image_holds_what_every_chart_command_needs() -> None:
    """The chart runs `serve` (webhook), `db upgrade` (hook) and `audit` (CronJob) from this
    image: the auditor extra (kubernetes client, WeasyPrint) and WeasyPrint's shared libraries
    (the same Debian packages `make tools` installs for the tests) must be in it."""
    objs = render()
    commands = {one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"][0]}
    commands.add(one(objs, "Job")["spec"]["template"]["spec"]["containers"][0]["args"][0])
    cron = one(objs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    commands.add(cron["containers"][0]["args"][0])
    assert commands == {"serve", "db", "audit"}
    assert "auditor" in _pip_extras()
    debian = (REPO_ROOT / "scripts" / "tools" / "00-debian.sh").read_text(encoding="utf-8")
    for lib in ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz-subset0"):
        assert lib in debian
        assert re.search(rf"apt-get install[^\n]*\b{re.escape(lib)}\b", DOCKERFILE), lib
    # the baked-in default bundle sits where the chart mounts its ConfigMap
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert f"MODELGATE_POLICY_DIR={values['policies']['mountPath']}" in DOCKERFILE
    assert f"EXPOSE {values['containerPort']}" in INSTRUCTIONS
    # Apache-2.0 travels with the image (setuptools puts it in the installed dist-info)
    assert re.search(r"^COPY [^\n]*\bLICENSE\b", DOCKERFILE, re.M)


def _stages() -> dict[str, list[str]]:
    """The instructions of each named stage (``FROM ... AS name``), in order."""
    stages: dict[str, list[str]] = {}
    current: list[str] | None = None
    for ln in INSTRUCTIONS:
        m = re.match(r"^FROM\s+\S+\s+AS\s+(\S+)$", ln, re.I)
        if m:
            current = stages.setdefault(m.group(1), [])
        elif current is not None:
            current.append(ln)
    return stages


def test_opalib_stage_builds_the_in_process_opa_library_like_make_tools() -> None:
    """The `opa-inprocess` engine loads libmodelgate_opa.so: the image builds it from
    policies/engines/opalib with the official Go image, as scripts/tools/15-opalib.sh does."""
    go = re.search(r"^ARG GO_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert go is not None, "no ARG GO_IMAGE"
    m = re.fullmatch(r"golang:(\d+)\.(\d+)\.(\d+)-(\w+)", go.group(1))
    assert m, f"Go image not pinned to a release of the official image: {go.group(1)}"
    # cgo links glibc: the same Debian release as the runtime's Python image
    python = re.search(r"^ARG PYTHON_IMAGE=\S+-(\w+)$", DOCKERFILE, re.M)
    assert python is not None and m.group(4) == python.group(1) == "bookworm"
    # at least the toolchain the module names (GOTOOLCHAIN=local: no download of another)
    gomod = (REPO_ROOT / "policies" / "engines" / "opalib" / "go.mod").read_text(encoding="utf-8")
    need = re.search(r"^go (\d+)\.(\d+)(?:\.(\d+))?$", gomod, re.M)
    assert need is not None
    have = tuple(int(g) for g in m.groups()[:3])
    assert have >= tuple(int(g or 0) for g in need.groups())

    assert "FROM ${GO_IMAGE} AS opalib" in INSTRUCTIONS
    stage = _stages()["opalib"]
    env = " ".join(ln for ln in stage if ln.startswith("ENV "))
    for setting in ("CGO_ENABLED=1", "GOWORK=off", "GOFLAGS=-mod=readonly", "GOTOOLCHAIN=local"):
        assert setting in env.split(), setting
    copies = [ln.split()[1:-1] for ln in stage if ln.startswith("COPY ")]
    assert ["policies/engines/opalib/"] in copies, copies
    build = next(ln for ln in stage if ln.startswith("RUN go build"))
    for flag in ("-buildmode=c-shared", "-trimpath", '-ldflags "-s -w"'):
        assert flag in build, flag
    assert "-o /out/libmodelgate_opa.so ." in build


def test_runtime_stage_holds_the_library_where_the_engine_looks() -> None:
    from policies.engines.inprocess import LIBRARY_CANDIDATES

    runtime = _stages()["runtime"]
    copy = next(ln for ln in runtime if ln.startswith("COPY --from=opalib "))
    parts = copy.split()
    assert "--chown=0:0" in parts and "--chmod=0644" in parts
    assert parts[-2:] == [
        "/out/libmodelgate_opa.so",
        "/usr/local/lib/modelgate/libmodelgate_opa.so",
    ]
    assert str(LIBRARY_CANDIDATES[-1]) == parts[-1]
    # the runtime stage is the last one: it is the image
    assert [ln for ln in INSTRUCTIONS if ln.startswith("FROM ")][-1].endswith(" AS runtime")
