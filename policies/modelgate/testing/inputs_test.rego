# METADATA
# title: Test inputs shared by the *_test.rego files (not part of the served bundle)
package modelgate.testing

today := "2026-11-26"

compliant := {
	"model-name": "fraud-detector",
	"model-version": "1.4.2",
	"owner": "ml-risk@example.com",
	"training-date": "2026-01-15",
	"training-data": "s3://datasets/fraud/train.parquet,s3://datasets/fraud/labels.csv",
	"compliance-status": "approved",
}

# compliant metadata with some fields replaced or added
with_md(fields) := object.union(compliant, fields)

# compliant metadata without the given fields
without_md(keys) := object.remove(compliant, keys)

workload(md) := {
	"api_version": "apps/v1",
	"kind": "Deployment",
	"name": "fraud-detector",
	"namespace": "ml",
	"images": ["registry.example.com/fraud-detector:1.4.2"],
	"model_label": true,
	"metadata": md,
	"controlled": false,
}

# an admission input for a labelled model Deployment with the given metadata
model(md) := {
	"mode": "admission",
	"now": "2026-11-26T06:40:00Z",
	"today": today,
	"request": {"operation": "CREATE"},
	"workload": workload(md),
	"namespace": {"name": "ml", "labels": {}},
	"enforcement": null,
}

# the same in a namespace with the given labels
in_namespace(md, labels) := object.union(model(md), {"namespace": {"name": "ml", "labels": labels}})

# a workload that is not labelled as a model, with the given kind and images
unlabelled(kind, images) := object.union(model({}), {"workload": object.union(
	workload({}),
	{"kind": kind, "images": images, "model_label": false},
)})

high_risk(certs) := with_md({
	"risk-tier": "high",
	"model-card": "https://models.example.com/fraud-detector/card",
	"certifications": certs,
})
