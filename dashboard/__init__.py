"""The read-only governance dashboard: inventory health, documentation gaps and audit
readiness, server-rendered from the inventory's plain-dict query functions."""
