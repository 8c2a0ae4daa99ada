"""modelgate: policy-as-code admission and audit for ML models on Kubernetes."""

__version__ = "0.1.0"

ANNOTATION_PREFIX = "modelgate.dev/"
MODEL_LABEL = "modelgate.dev/model"
ENFORCEMENT_LABEL = "modelgate.dev/enforcement"

# Must stay the first import of any native extension: see policies/_preload.py (a rego-cpp leak
# when greenlet, imported by SQLAlchemy, is loaded before it).
import policies._preload  # noqa: E402, F401
