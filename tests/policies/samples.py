"""Sample manifests (examples/manifests) turned into policy inputs, plus generated variations."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from modelgate.policy_input import PolicyInput, build_input, synthesize_request
from modelgate.workload import SUPPORTED_KINDS, extract_workload
from tests.fixtures.inventory import certs

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
POLICY_DIR = REPO_ROOT / "policies"
EXAMPLES = REPO_ROOT / "examples" / "manifests"
#: every decision in these tests is made "now"
NOW = datetime(2026, 11, 26, 6, 40, tzinfo=UTC)
TODAY = NOW.date()


def sample_objects() -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) for every object in examples/manifests."""
    out: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict):
                out.append((path.name, doc))
    return out


def namespace_labels() -> dict[str, dict[str, str]]:
    labels: dict[str, dict[str, str]] = {}
    for _name, obj in sample_objects():
        if obj.get("kind") == "Namespace":
            meta = obj["metadata"]
            labels[meta["name"]] = {str(k): str(v) for k, v in meta.get("labels", {}).items()}
    return labels


def to_input(
    obj: dict[str, Any],
    labels: dict[str, dict[str, str]] | None = None,
    now: datetime = NOW,
    enforcement: str | None = None,
) -> PolicyInput:
    workload = extract_workload(obj, "default")
    ns = (labels if labels is not None else namespace_labels()).get(workload["namespace"], {})
    return build_input(
        request=synthesize_request(obj, workload),
        workload=workload,
        mode="evaluate",
        namespace_labels=ns,
        enforcement=enforcement,  # type: ignore[arg-type]
        now=now,
    )


def sample_inputs() -> dict[str, PolicyInput]:
    """ "<file>#<kind>/<name>" -> input, for every workload object of the samples."""
    labels = namespace_labels()
    out: dict[str, PolicyInput] = {}
    for file, obj in sample_objects():
        if obj.get("kind") not in SUPPORTED_KINDS:
            continue
        out[f"{file}#{obj['kind']}/{obj['metadata']['name']}"] = to_input(obj, labels)
    return out


def sample(file: str) -> dict[str, Any]:
    objs = [obj for name, obj in sample_objects() if name == file]
    assert len(objs) == 1, file
    return objs[0]


def with_annotations(obj: dict[str, Any], **annotations: str | None) -> dict[str, Any]:
    """A deep copy of obj with modelgate.dev/<key> annotations set (None removes one)."""
    copy: dict[str, Any] = json.loads(json.dumps(obj))
    ann = copy["metadata"].setdefault("annotations", {})
    for key, value in annotations.items():
        full = "modelgate.dev/" + key.replace("_", "-")
        if value is None:
            ann.pop(full, None)
        else:
            ann[full] = value
    return copy


def variations() -> dict[str, PolicyInput]:
    """Generated inputs around the samples: expiry windows relative to today, every status,
    tier, enforcement mode, odd values (Unicode, quotes, blanks, JSON corner cases)."""
    base = sample("05-high-risk-certified-deployment.yaml")
    plain = sample("01-compliant-deployment.yaml")
    out: dict[str, PolicyInput] = {}
    for days in (-400, -1, 0, 1, 14, 29, 30, 31, 90):
        expires = TODAY + timedelta(days=days)
        obj = with_annotations(base, certifications=certs(("EU-AI-Act-conformity", expires)))
        out[f"high-cert-expires-{days:+d}d"] = to_input(obj)
        obj = with_annotations(
            plain, certifications=certs(("ISO-IEC-42001", expires), ("SOC2", "2099-01-01"))
        )
        out[f"limited-cert-expires-{days:+d}d"] = to_input(obj)
    for status in ("approved", "pending-review", "rejected", "exempt", "Approved", ""):
        for mode in ("enforce", "warn", "off", None):
            obj = with_annotations(plain, compliance_status=status)
            out[f"status-{status or 'blank'}-{mode}"] = to_input(obj, enforcement=mode)
    for tier in ("minimal", "limited", "high", "critical"):
        out[f"tier-{tier}"] = to_input(with_annotations(plain, risk_tier=tier))
    odd: dict[str, dict[str, str | None]] = {
        "unicode-owner": {"owner": "Zoë Ångström 田中 <zoë@例え.jp>"},
        "quoted-name": {"model_name": 'say "hi"'},
        "backslash-version": {"model_version": "1.0\\beta"},
        "newline-reason": {"compliance_status": "exempt", "exempt_reason": "line one\nline two"},
        "long-value": {"model_name": "a" * 300},
        "future-datetime": {"training_date": "2030-01-01T00:00:00+02:00"},
        "datetime-today": {"training_date": f"{TODAY}T23:59:59Z"},
        "datetime-tomorrow-east-of-utc": {
            "training_date": f"{TODAY + timedelta(days=1)}T08:00:00+09:00"
        },
        "datetime-today-west-of-utc": {"training_date": f"{TODAY}T20:00:00-08:00"},
        "datetime-offset-without-colon": {"training_date": f"{TODAY}T01:00+0530"},
        "datetime-impossible-time": {"training_date": f"{TODAY}T25:00:00Z"},
        "impossible-date": {"training_date": "2025-02-29"},
        "leap-day": {"training_date": "2024-02-29"},
        "metrics-nested": {"metrics": '{"auc": {"value": 0.9}}'},
        "metrics-bool": {"metrics": '{"passed": true}'},
        "metrics-empty-object": {"metrics": "{}"},
        "metrics-negative-exp": {"metrics": '{"loss": -1.5e-3}'},
        "metrics-exponent-after-integer": {"metrics": '{"samples": 1e6, "lr": 3E-4}'},
        # backslashes and control characters (rego-cpp aborted or misjudged these)
        "backslash-x-owner": {"owner": "team\\x41"},
        "windows-path-training-data": {"training_data": "C:\\data\\train.csv,\\\\nas\\d"},
        "backslash-training-data-with-blank": {"training_data": "a\\e b"},
        "trailing-backslash-version": {"model_version": "1.0\\"},
        "backslash-status": {"compliance_status": "approved\\"},
        "tab-around-status": {"compliance_status": "\tapproved\n"},
        "tab-inside-training-data": {"training_data": "s3://a\tb"},
        "control-char-model-card": {"model_card": "https://x/\x01card"},
        "blank-controls-only-owner": {"owner": "\t\n"},
        "metrics-backslash-x": {"metrics": '{"a": "\\x41"}'},
        "metrics-not-json-backslash": {"metrics": "{\\a\\: 1}"},
        "metrics-tab-only": {"metrics": "\t"},
        "metrics-tab-around-garbage": {"metrics": "\t,Z"},
        "certs-backslash-name": {
            "certifications": json.dumps([{"name": "C:\\x41", "expires": "2099-01-01"}])
        },
        "certs-newline-in-name": {
            "certifications": json.dumps([{"name": ".0$\n", "expires": "2099-01-01"}])
        },
        "certs-blank-controls-name": {
            "certifications": json.dumps([{"name": "\n ", "expires": "2099-01-01"}])
        },
        "metrics-exponents-beside-keys-and-escapes": {
            "metrics": '{"a:1e": 1e2, "b\\u00e4\\u0031e":3E1, "c":\n-2e3}'
        },
        "metrics-exponents-in-a-list": {"metrics": '{"d": [1e2,3E1]}'},
        "metrics-integer-beyond-float": {"metrics": '{"samples": 1' + "0" * 400 + "}"},
        "metrics-three-digit-exponent": {"metrics": '{"auc": 1e999}'},
        "metrics-three-digit-exponent-decimal": {"metrics": '{"auc": 1.0e999}'},
        "certs-three-digit-exponent": {
            "certifications": '[{"name": "SOC2", "expires": "2099-01-01", "score": 1.0e999}]'
        },
        "certs-empty-list": {"certifications": "[]"},
        "certs-number": {"certifications": "42"},
        "certs-missing-name": {"certifications": '[{"expires": "2099-01-01"}]'},
        "certs-blank-name": {"certifications": '[{"name": "  ", "expires": "2099-01-01"}]'},
        "certs-unicode-escapes": {
            "certifications": json.dumps([{"name": "Konformität", "expires": "2099-01-01"}])
        },
        "certs-escaped-quote": {"certifications": '[{"name": "a\\"b", "expires": "2099-01-01"}]'},
        "certs-escaped-newline": {"certifications": '[{"name": "a\\nb", "expires": "2099-01-01"}]'},
        "certs-escaped-slash": {"certifications": '[{"name": "a\\/b", "expires": "2099-01-01"}]'},
        "certs-invalid-with-escape": {"certifications": '[{"name": "\\u00e4"'},
        "certs-control-char-escape": {
            "certifications": '[{"name": "\\u0001", "expires": "2099-01-01"}]'
        },
        "metrics-unicode-key": {"metrics": json.dumps({"präzision": 0.9})},
        "metrics-padded": {"metrics": '  {"auc": 0.9}  '},
        "name-with-unicode-escape-text": {"model_name": "fraud\\u00e4"},
        "card-ftp": {"model_card": "ftp://models.example.com/card"},
        "training-data-trailing-comma": {"training_data": "s3://a/b,"},
        "blank-owner": {"owner": "   "},
        "removed-owner": {"owner": None},
        "validation-date-today": {"validation_date": str(TODAY)},
        "validation-date-tomorrow": {"validation_date": str(TODAY + timedelta(days=1))},
        "validation-date-malformed": {"validation_date": "last spring"},
        "documentation-fields": {
            "intended_purpose": "score card transactions for fraud review",
            "restrictions": "not for credit decisions",
            "limitations": "not validated on business accounts",
        },
    }
    for name, changes in odd.items():
        out[f"odd-{name}"] = to_input(with_annotations(plain, **changes))
    for label in ("warn", "off", "bogus", ""):
        out[f"namespace-label-{label or 'blank'}"] = to_input(
            sample("02-missing-fields-deployment.yaml"),
            labels={"ml-prod": {"modelgate.dev/enforcement": label}},
        )
    for image in ("nvcr.io/nvidia/tritonserver:24.08-py3", "seldonio/seldon-core-operator:1.18.0"):
        obj = json.loads(json.dumps(sample("04-nginx-deployment.yaml")))
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = image
        out[f"image-{image.split('/')[-1]}"] = to_input(obj)
    return out


def copy_policies(dest: Path) -> Path:
    """A private, editable copy of the shipped bundle (Rego and data only)."""
    target = dest / "policies"
    shutil.copytree(
        POLICY_DIR / "modelgate",
        target / "modelgate",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return target


def require_field(policy_dir: Path, field: str) -> None:
    """Edit the copy's data file: make ``field`` a required annotation."""
    data = policy_dir / "modelgate" / "config" / "data.yaml"
    anchor = '  - "compliance-status"\n'
    data.write_text(data.read_text().replace(anchor, f'{anchor}  - "{field}"\n', 1))


def hidden_field_cases() -> dict[str, PolicyInput]:
    """Inputs whose metadata the engines never see whole: values over the size limits of
    data.modelgate.config.limits (kept out before evaluation, policies/limits.py), on the
    object, its labels and its pod template, and certification lists over the entry limit."""
    plain = sample("01-compliant-deployment.yaml")
    high = sample("05-high-risk-certified-deployment.yaml")
    out: dict[str, PolicyInput] = {}
    out["hidden-long-model-card"] = to_input(
        with_annotations(plain, model_card="https://" + "a" * 27_000)
    )
    out["hidden-long-training-data-without-commas"] = to_input(
        with_annotations(plain, training_data="s3://" + 'a"' * 14_000)
    )
    out["hidden-deep-certifications"] = to_input(
        with_annotations(high, certifications="[" * 4_500 + "]" * 4_500)
    )
    out["hidden-deep-metrics-within-size"] = to_input(
        with_annotations(plain, metrics='{"a":' * 40 + "1" + "}" * 40)
    )
    many = json.dumps([{"name": f"c{i}", "expires": "2020-01-01"} for i in range(150)])
    out["hidden-too-many-certifications"] = to_input(with_annotations(high, certifications=many))
    limit = json.dumps([{"name": f"c{i}", "expires": "2099-01-01"} for i in range(100)])
    out["certifications-at-the-entry-limit"] = to_input(
        with_annotations(high, certifications=limit)
    )
    total = {f"note-{i}": "x" * 3_000 for i in range(12)}
    out["hidden-total-over-the-limit"] = to_input(with_annotations(plain, **total))
    # over the limit in a pod-template annotation and in an object label
    templated = json.loads(json.dumps(plain))
    tmeta = templated["spec"]["template"].setdefault("metadata", {})
    tmeta.setdefault("annotations", {})["modelgate.dev/owner"] = "o" * 5_000
    del templated["metadata"]["annotations"]["modelgate.dev/owner"]
    out["hidden-long-owner-in-pod-template"] = to_input(templated)
    labelled = json.loads(json.dumps(plain))
    del labelled["metadata"]["annotations"]["modelgate.dev/model-version"]
    labelled["metadata"].setdefault("labels", {})["modelgate.dev/model-version"] = "v" * 5_000
    out["hidden-long-version-label"] = to_input(labelled)
    warn = with_annotations(plain, model_card="https://" + "a" * 27_000)
    out["hidden-long-model-card-warn"] = to_input(warn, enforcement="warn")
    nginx = json.loads(json.dumps(sample("04-nginx-deployment.yaml")))
    nginx["metadata"].setdefault("annotations", {})["modelgate.dev/owner"] = "o" * 9_000
    out["hidden-long-owner-on-a-non-model"] = to_input(nginx)
    return out
