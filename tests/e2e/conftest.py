"""Fixtures of the end-to-end tests (defined in tests/e2e/support.py)."""

from tests.e2e.support import inventory, policy_mount, webhook_tls

__all__ = ["inventory", "policy_mount", "webhook_tls"]
