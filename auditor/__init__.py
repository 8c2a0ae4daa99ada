"""The auditor: discovery (Kubernetes clusters, manifest snapshots, cloud ML services),
reconciliation against the inventory, and regulator-ready reports."""
