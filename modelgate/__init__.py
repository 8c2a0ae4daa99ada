"""modelgate: policy-as-code admission and audit for ML models on Kubernetes."""

__version__ = "0.1.0"

ANNOTATION_PREFIX = "modelgate.dev/"
MODEL_LABEL = "modelgate.dev/model"
ENFORCEMENT_LABEL = "modelgate.dev/enforcement"
