"""SageMaker discovery against moto's server (real HTTP, fake credentials): endpoints become
workloads with metadata from tags; an unreachable endpoint URL is reported, not fatal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from auditor.discovery import create_sources
from auditor.discovery.sagemaker import KIND, SageMakerSource
from auditor.reconcile import Reconciler
from modelgate.inventory import audit
from modelgate.inventory.db import Database
from policies.engines import PolicyEngine
from tests.fixtures.tools import free_port

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/sagemaker"


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _tags(md: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": f"modelgate.dev/{k}", "Value": v} for k, v in md.items()]


def _endpoint(
    sm: Any, name: str, image: str, tags: dict[str, str], model_tags: dict[str, str]
) -> None:
    sm.create_model(
        ModelName=f"{name}-model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": image, "ModelDataUrl": f"s3://models/{name}/model.tar.gz"},
        Tags=_tags(model_tags),
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": "primary",
                "ModelName": f"{name}-model",
                "InitialInstanceCount": 2,
                "InstanceType": "ml.g4dn.xlarge",
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config", Tags=_tags(tags))


def test_endpoints_become_workloads_with_tag_metadata(
    moto_server: str, sqlite_db: Database, engine: PolicyEngine
) -> None:
    sm = boto3.client("sagemaker", region_name=REGION, endpoint_url=moto_server)
    complete = {
        "model-name": "churn",
        "model-version": "4.1",
        "owner": "growth-ml@example.com",
        "training-date": "2025-06-01",
        "training-data": "s3://data/churn/train.parquet",
        "compliance-status": "approved",
    }
    # metadata split between the model's tags and the endpoint's tags
    _endpoint(
        sm,
        "churn-prod",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/churn:4.1",
        {"owner": "growth-ml@example.com", "compliance-status": "approved"},
        {k: v for k, v in complete.items() if k not in ("owner", "compliance-status")},
    )
    _endpoint(
        sm,
        "fraud-shadow",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/fraud:0.3",
        {"model-name": "fraud-shadow"},
        {},
    )

    sm.create_model(  # defined, never deployed: noted, not a workload
        ModelName="draft-model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/draft:0.1"},
    )
    sources = create_sources("sagemaker", {"regions": [REGION], "endpoint_url": moto_server})
    found = list(sources[0].discover())
    by_name = {d.workload["name"]: d for d in found}
    assert set(by_name) == {"churn-prod", "fraud-shadow"}
    churn = by_name["churn-prod"]
    assert churn.cluster == f"sagemaker:{REGION}"
    assert churn.workload["kind"] == KIND
    assert churn.workload["namespace"] == "123456789012"
    assert churn.workload["metadata"]["model-name"] == "churn"
    assert churn.workload["metadata"]["owner"] == "growth-ml@example.com"
    assert churn.workload["images"] == ["123456789012.dkr.ecr.eu-west-1.amazonaws.com/churn:4.1"]
    assert churn.runtime["desired_replicas"] == 2
    assert churn.runtime["resources"] == {"instances": {"ml.g4dn.xlarge": "2"}}
    assert sources[0].notes == [
        f"sagemaker:{REGION}: 1 SageMaker model(s) not deployed on any endpoint "
        "(not running, not audited)"
    ]

    result = Reconciler(sqlite_db, engine).scan(sources)
    assert result.sources[0].status == "ok"
    findings = {(f["name"], f["type"]) for f in audit.scan_findings_of(sqlite_db, result.scan_id)}
    assert ("churn-prod", "orphan") in findings
    assert ("churn-prod", "violation") not in findings
    assert ("fraud-shadow", "orphan") in findings
    # one finding per problem: the orphan lists its violations and missing fields
    assert set(findings) == {("churn-prod", "orphan"), ("fraud-shadow", "orphan")}
    details = {f["name"]: f["details"] for f in audit.scan_findings_of(sqlite_db, result.scan_id)}
    assert details["fraud-shadow"]["missing"] and details["fraud-shadow"]["violations"]
    assert details["churn-prod"]["violations"] == []


def test_unreachable_sagemaker_is_reported(
    monkeypatch: pytest.MonkeyPatch, sqlite_db: Database, engine: PolicyEngine
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    source = SageMakerSource(region=REGION, endpoint_url=f"http://127.0.0.1:{free_port()}")
    result = Reconciler(sqlite_db, engine).scan([source])
    assert result.sources[0].status == "unreachable"
    assert "SageMaker in eu-west-1 is unreachable" in (result.sources[0].error or "")
