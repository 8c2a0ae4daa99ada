package modelgate.admission_test

import data.modelgate.admission
import data.modelgate.testing

test_non_model_allowed_untouched if {
	# not a model: even blatantly bad modelgate.dev/* metadata is ignored
	inp := object.union(
		testing.unlabelled("Deployment", ["nginx:1.27"]),
		{"workload": object.union(testing.workload({"compliance-status": "rejected"}), {"model_label": false, "images": ["nginx:1.27"]})},
	)
	not admission.is_model with input as inp
	admission.violations == set() with input as inp
	admission.deny == set() with input as inp
	admission.warn == set() with input as inp
	admission.allowed with input as inp
}

test_compliant_model_allowed if {
	inp := testing.model(testing.compliant)
	admission.is_model with input as inp
	admission.enforcement == "enforce" with input as inp
	admission.deny == set() with input as inp
	admission.warn == set() with input as inp
	admission.allowed with input as inp
}

test_missing_fields_all_denied_at_once if {
	inp := testing.model({})
	count(admission.deny) == 6 with input as inp
	admission.deny == admission.violations with input as inp
	not admission.allowed with input as inp
}

test_violations_from_every_concern_are_combined if {
	inp := testing.model(testing.with_md({
		"training-date": "someday",
		"compliance-status": "rejected",
		"risk-tier": "high",
	}))
	count(admission.violations) == 4 with input as inp
}

test_warn_namespace_turns_violations_into_warnings if {
	inp := testing.in_namespace(testing.without_md({"owner"}), {"modelgate.dev/enforcement": "warn"})
	admission.enforcement == "warn" with input as inp
	admission.deny == set() with input as inp
	admission.warn == {"missing required annotation \"modelgate.dev/owner\": set it to the owning person or team (e-mail)"} with input as inp
	admission.violations == admission.warn with input as inp
}

test_pending_review_allowed_only_in_warn_namespace if {
	md := testing.with_md({"compliance-status": "pending-review"})
	enforce := testing.model(md)
	warn := testing.in_namespace(md, {"modelgate.dev/enforcement": "warn"})
	count(admission.deny) == 1 with input as enforce
	admission.deny == set() with input as warn
	count(admission.warn) == 1 with input as warn
}

test_off_namespace_denies_and_warns_nothing if {
	inp := testing.in_namespace({}, {"modelgate.dev/enforcement": "off"})
	admission.enforcement == "off" with input as inp
	admission.deny == set() with input as inp
	admission.warn == set() with input as inp
	count(admission.violations) == 6 with input as inp
}

test_explicit_enforcement_overrides_namespace_label if {
	inp := object.union(testing.in_namespace({}, {"modelgate.dev/enforcement": "off"}), {"enforcement": "enforce"})
	count(admission.deny) == 6 with input as inp
}

test_advisories_warn_but_never_deny if {
	inp := testing.model(testing.high_risk("[{\"name\": \"EU-AI-Act-conformity\", \"expires\": \"2026-12-10\"}]"))
	admission.deny == set() with input as inp
	admission.warn == {"certification \"EU-AI-Act-conformity\" in \"modelgate.dev/certifications\" expires on 2026-12-10, within 30 days: renew it and update the annotation"} with input as inp
}

test_unknown_enforcement_label_warns_only_for_models if {
	model := testing.in_namespace(testing.compliant, {"modelgate.dev/enforcement": "strict"})
	count(admission.warn) == 1 with input as model
	other := object.union(testing.unlabelled("Deployment", ["nginx:1.27"]), {"namespace": {"name": "ml", "labels": {"modelgate.dev/enforcement": "strict"}}})
	admission.warn == set() with input as other
}

test_inference_service_without_metadata_denied if {
	inp := testing.unlabelled("InferenceService", [])
	admission.is_model with input as inp
	count(admission.deny) == 6 with input as inp
}

test_exempt_with_reason_allowed_with_recorded_warning if {
	inp := testing.model(testing.with_md({"compliance-status": "exempt", "exempt-reason": "research sandbox"}))
	admission.allowed with input as inp
	admission.warn == {"model admitted under an exemption (\"modelgate.dev/exempt-reason\": \"research sandbox\"); the exemption is recorded and reported"} with input as inp
}

test_warn_namespace_keeps_advisories if {
	inp := testing.in_namespace(
		testing.high_risk("[{\"name\": \"c\", \"expires\": \"2026-12-01\"}]"),
		{"modelgate.dev/enforcement": "warn"},
	)
	admission.deny == set() with input as inp
	count(admission.warn) == 1 with input as inp
}

test_answer_carries_the_pushed_bundle_digest if {
	admission.bundle_digest == "abc123" with input as testing.model(testing.compliant) with data.modelgate.bundle.digest as "abc123"
}

test_without_a_pushed_digest_answer_has_none if {
	not admission.bundle_digest with input as testing.model(testing.compliant)
}
