"""The Dockerfile the chart's image is built from (no Docker engine here: checked statically)."""

from __future__ import annotations

import fnmatch
import re

from tests.charts.helm import CHART
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
