"""AWS SageMaker endpoints (and the models behind them) through boto3.

Each endpoint becomes a workload of kind ``SageMakerEndpoint`` in cluster ``sagemaker:<region>``
and namespace = the AWS account id. Model metadata is read from tags with the same
``modelgate.dev/*`` keys as annotations (endpoint tags win over the model's tags); the object
handed to the policy looks like a Kubernetes workload with one container per production variant,
so the same extraction and policy apply.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from auditor.discovery.base import (
    DiscoveredWorkload,
    DiscoverySource,
    ImageStatus,
    SourceConfigError,
    SourceUnreachable,
    empty_runtime,
    register_source,
)
from auditor.discovery.runtime import digest_of
from modelgate import ANNOTATION_PREFIX, MODEL_LABEL
from modelgate.workload import extract_workload

KIND = "SageMakerEndpoint"
API_VERSION = "sagemaker.aws.amazon.com/v1"


class SageMakerSource:
    """Endpoints of one AWS account and region."""

    kind = "sagemaker"

    def __init__(
        self,
        *,
        region: str,
        endpoint_url: str | None = None,
        profile: str | None = None,
        session: Any | None = None,
    ) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self.cluster = f"sagemaker:{region}"
        self.name = f"sagemaker:{region}"
        self.notes: list[str] = []
        self.skipped_kinds: set[str] = set()
        self._deployed_models: set[str] = set()
        self._session = session or boto3.session.Session(profile_name=profile, region_name=region)

    def _client(self) -> Any:
        return self._session.client(
            "sagemaker",
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=BotoConfig(retries={"max_attempts": 2}, connect_timeout=10, read_timeout=30),
        )

    def discover(self) -> Iterator[DiscoveredWorkload]:
        try:
            yield from self._discover()
        except (ClientError, BotoCoreError) as e:
            raise SourceUnreachable(f"SageMaker in {self.region} is unreachable: {e}") from e

    def _discover(self) -> Iterator[DiscoveredWorkload]:
        sm = self._client()
        model_cache: dict[str, tuple[list[str], dict[str, str]]] = {}
        self._deployed_models = set()
        for page in sm.get_paginator("list_endpoints").paginate():
            for summary in page.get("Endpoints", []):
                yield self._endpoint(sm, summary["EndpointName"], model_cache)
        idle = 0
        for page in sm.get_paginator("list_models").paginate():
            idle += sum(
                1 for m in page.get("Models", []) if m["ModelName"] not in self._deployed_models
            )
        if idle:
            self.notes.append(
                f"{self.cluster}: {idle} SageMaker model(s) not deployed on any endpoint "
                "(not running, not audited)"
            )

    def _tags(self, sm: Any, arn: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"ResourceArn": arn}
            if token:
                kwargs["NextToken"] = token
            resp = sm.list_tags(**kwargs)
            for t in resp.get("Tags", []):
                tags[str(t["Key"])] = str(t.get("Value", ""))
            token = resp.get("NextToken")
            if not token:
                return tags

    def _model(
        self, sm: Any, name: str, cache: dict[str, tuple[list[str], dict[str, str]]]
    ) -> tuple[list[str], dict[str, str]]:
        if name in cache:
            return cache[name]
        try:
            desc = sm.describe_model(ModelName=name)
        except ClientError as e:
            self.notes.append(f"{self.cluster}: model {name} not readable: {e}")
            cache[name] = ([], {})
            return cache[name]
        containers = [desc.get("PrimaryContainer")] if desc.get("PrimaryContainer") else []
        containers += desc.get("Containers") or []
        images = [str(c["Image"]) for c in containers if isinstance(c, Mapping) and c.get("Image")]
        cache[name] = (images, self._tags(sm, desc["ModelArn"]))
        if len(cache) > 1000:  # bounded: drop the oldest entries
            for key in list(cache)[:500]:
                del cache[key]
        return cache[name]

    def _endpoint(
        self,
        sm: Any,
        name: str,
        model_cache: dict[str, tuple[list[str], dict[str, str]]],
    ) -> DiscoveredWorkload:
        ep = sm.describe_endpoint(EndpointName=name)
        arn = str(ep["EndpointArn"])
        account = arn.split(":")[4] if arn.count(":") >= 5 else ""
        cfg = sm.describe_endpoint_config(EndpointConfigName=ep["EndpointConfigName"])
        deployed = {str(v.get("VariantName")): v for v in ep.get("ProductionVariants") or []}

        metadata: dict[str, str] = {}
        containers: list[dict[str, Any]] = []
        statuses: list[ImageStatus] = []
        desired = 0
        ready = 0
        instances: dict[str, int] = {}
        for variant in cfg.get("ProductionVariants") or []:
            vname = str(variant.get("VariantName") or "")
            self._deployed_models.add(str(variant.get("ModelName") or ""))
            images, model_tags = self._model(sm, str(variant.get("ModelName") or ""), model_cache)
            for k, v in model_tags.items():
                metadata.setdefault(k, v)
            live = deployed.get(vname, {})
            count = int(
                live.get("DesiredInstanceCount") or variant.get("InitialInstanceCount") or 0
            )
            desired += count
            ready += int(live.get("CurrentInstanceCount") or 0)
            itype = str(variant.get("InstanceType") or "serverless")
            instances[itype] = instances.get(itype, 0) + count
            for i, image in enumerate(images):
                containers.append(
                    {"name": f"{vname}-{i}" if i else vname, "image": image, "resources": {}}
                )
            for di in live.get("DeployedImages") or []:
                resolved = str(di.get("ResolvedImage") or "")
                statuses.append(
                    ImageStatus(
                        container=vname,
                        image=str(di.get("SpecifiedImage") or ""),
                        image_id=resolved,
                        digest=digest_of(resolved),
                    )
                )
        tags = self._tags(sm, arn)
        annotations = {**metadata, **tags}
        labels = {MODEL_LABEL: "true"}
        annotations = {k: v for k, v in annotations.items() if k.startswith(ANNOTATION_PREFIX)}
        created = ep.get("CreationTime")
        obj: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "name": name,
                "namespace": account,
                "labels": labels,
                "annotations": annotations,
                "creationTimestamp": _iso(created),
            },
            "spec": {"template": {"metadata": {}, "spec": {"containers": containers}}},
            "status": {"endpointStatus": ep.get("EndpointStatus")},
        }
        workload = extract_workload(obj)
        runtime = empty_runtime()
        runtime["desired_replicas"] = desired
        runtime["ready_replicas"] = ready if ep.get("EndpointStatus") == "InService" else 0
        runtime["images"] = list(workload["images"])
        runtime["image_statuses"] = statuses
        runtime["resources"] = {"instances": {k: str(v) for k, v in sorted(instances.items())}}
        runtime["created"] = _iso(created)
        return DiscoveredWorkload(
            cluster=self.cluster,
            source=self.name,
            obj=obj,
            workload=workload,
            runtime=runtime,
            namespace_labels={},
        )


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if value else None


def _factory(options: Mapping[str, Any]) -> list[DiscoverySource]:
    regions = options.get("regions") or []
    if isinstance(regions, str):
        regions = [regions]
    try:
        return [
            SageMakerSource(
                region=str(r),
                endpoint_url=options.get("endpoint_url"),
                profile=options.get("profile"),
            )
            for r in regions
        ]
    except BotoCoreError as e:
        raise SourceConfigError(f"SageMaker: {e}") from e


register_source("sagemaker", _factory)
