"""The Rego policy bundle (``policies/modelgate/``) and the engines that evaluate it."""

from pathlib import Path

BUNDLE_DIR = Path(__file__).resolve().parent
