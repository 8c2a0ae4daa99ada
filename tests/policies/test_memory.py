"""The embedded engine must not leak per evaluation in a process that also uses the inventory.

rego-cpp leaks ~200 KB per evaluation when greenlet (imported by SQLAlchemy) is loaded before
it; ``modelgate/__init__.py`` preloads regopy (policies/_preload.py), and the evaluator
processes import no SQLAlchemy at all. This runs the real order of a webhook or auditor process
in a fresh interpreter and bounds the growth of the process and of its evaluators.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import resource
import modelgate.inventory.recorder  # SQLAlchemy, and with it greenlet, first
from modelgate.settings import Settings
from modelgate.workload import extract_workload
from modelgate.policy_input import build_input, synthesize_request
from modelgate.engine import engine_for

engine = engine_for(Settings())

def rss_mib():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    evaluators = 0.0
    for pid in engine.evaluator_pids:
        with open(f"/proc/{pid}/status") as f:
            evaluators += next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
    return own + evaluators

def obj(i):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"m{i}", "namespace": "ml",
                         "labels": {"modelgate.dev/model": "true"},
                         "annotations": {"modelgate.dev/model-name": f"m{i}"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "vllm/vllm-openai:v0.6"}]}}}}

for i in range(50):  # warm up allocator pools
    o = obj(i); w = extract_workload(o)
    engine.evaluate(build_input(request=synthesize_request(o, w), workload=w, mode="audit"))
before = rss_mib()
for i in range(500):
    o = obj(i); w = extract_workload(o)
    r = engine.evaluate(build_input(request=synthesize_request(o, w), workload=w, mode="audit"))
    assert r.is_model and r.deny
print(round(rss_mib() - before, 1))
"""


def test_embedded_evaluations_do_not_leak_after_sqlalchemy_import() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=True
    )
    growth_mib = float(out.stdout.strip().splitlines()[-1])
    # the leak this guards against grows ~100 MiB over 500 evaluations
    assert growth_mib < 25, f"RSS grew {growth_mib} MiB over 500 evaluations"
