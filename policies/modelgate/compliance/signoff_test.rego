package modelgate.compliance_test

import data.modelgate.admission
import data.modelgate.compliance
import data.modelgate.testing

approval(id, approver, expires, scope) := {
	"id": id,
	"approver": approver,
	"time": "2026-11-20T10:00:00+00:00",
	"expires": expires,
	"scope": scope,
}

everywhere := {"clusters": [], "namespaces": []}

registry(approvals, rejections, exemptions) := {
	"source": "inventory",
	"cluster": "prod-eu",
	"model": "fraud-detector",
	"version": "1.4.2",
	"registered": true,
	"approvals": approvals,
	"rejections": rejections,
	"exemptions": exemptions,
	"certifications": [],
}

# an admission input (testing.model) with the given metadata and registry
with_registry(md, reg) := object.union(testing.model(md), {"registry": reg})

approved_once := registry([approval(1, "risk-officer@example.com", null, everywhere)], [], [])

test_registry_without_approval_denied_naming_version_and_command if {
	inp := with_registry(testing.compliant, registry([], [], []))
	admission.deny == {"model \"fraud-detector\" version \"1.4.2\" has no recorded approval (the \"modelgate.dev/compliance-status\" annotation is not trusted): get it approved by an approver who is not its owner or deployer (modelgate approve fraud-detector 1.4.2, or the version's page on the modelgate dashboard)"} with input as inp
}

test_registry_approved_annotation_without_record_denied if {
	inp := with_registry(testing.with_md({"compliance-status": "approved"}), registry([], [], []))
	count(admission.deny) == 1 with input as inp
	not admission.allowed with input as inp
}

test_registry_approval_admits_whatever_the_annotation_says if {
	pending := with_registry(testing.with_md({"compliance-status": "pending-review"}), approved_once)
	admission.allowed with input as pending
	admission.warn == set() with input as pending
	rejected := with_registry(testing.with_md({"compliance-status": "rejected"}), approved_once)
	admission.allowed with input as rejected
}

test_registry_exempt_annotation_needs_recorded_exemption if {
	md := testing.with_md({"compliance-status": "exempt", "exempt-reason": "sandbox"})
	inp := with_registry(md, registry([], [], []))
	count(admission.deny) == 1 with input as inp
}

test_registry_recorded_exemption_admits_with_warning if {
	exemption := {"id": 7, "granted_by": "risk-officer@example.com", "time": "2026-11-20T10:00:00+00:00", "expires": "2027-01-31", "reason": "research sandbox"}
	inp := with_registry(testing.with_md({"compliance-status": "exempt"}), registry([], [], [exemption]))
	admission.allowed with input as inp
	admission.warn == {"model admitted under the exemption granted by \"risk-officer@example.com\" until 2027-01-31 (\"research sandbox\"); the exemption is recorded and reported"} with input as inp
}

test_registry_expired_exemption_denied if {
	exemption := {"id": 7, "granted_by": "risk-officer@example.com", "time": "2026-01-20T10:00:00+00:00", "expires": "2026-11-25", "reason": "sandbox"}
	inp := with_registry(testing.compliant, registry([], [], [exemption]))
	count(admission.deny) == 1 with input as inp
}

test_registry_expired_approval_denied if {
	reg := registry([approval(1, "risk-officer@example.com", "2026-11-25", everywhere)], [], [])
	inp := with_registry(testing.compliant, reg)
	admission.deny == {"model \"fraud-detector\" version \"1.4.2\" has no approval that holds today for cluster \"prod-eu\" and namespace \"ml\" (expired or out of scope): get it approved by an approver who is not its owner or deployer (modelgate approve fraud-detector 1.4.2, or the version's page on the modelgate dashboard)"} with input as inp
}

test_registry_approval_valid_through_its_expiry_day if {
	reg := registry([approval(1, "risk-officer@example.com", "2026-11-26", everywhere)], [], [])
	admission.allowed with input as with_registry(testing.compliant, reg)
}

test_registry_approval_out_of_scope_denied if {
	other_ns := registry([approval(1, "a@example.com", null, {"clusters": [], "namespaces": ["staging"]})], [], [])
	count(admission.deny) == 1 with input as with_registry(testing.compliant, other_ns)
	other_cluster := registry([approval(1, "a@example.com", null, {"clusters": ["prod-us"], "namespaces": []})], [], [])
	count(admission.deny) == 1 with input as with_registry(testing.compliant, other_cluster)
}

test_registry_approval_in_scope_admitted if {
	scoped := registry([approval(1, "a@example.com", null, {"clusters": ["prod-eu"], "namespaces": ["ml"]})], [], [])
	admission.allowed with input as with_registry(testing.compliant, scoped)
}

test_registry_two_approver_tier_needs_two_distinct_approvers if {
	md := testing.high_risk("[{\"name\": \"c\", \"expires\": \"2027-06-30\"}]")
	one := registry([approval(1, "a@example.com", null, everywhere)], [], [])
	admission.deny == {"model \"fraud-detector\" version \"1.4.2\" has 1 of the 2 approvals from distinct approvers that risk tier \"high\" needs: get it approved by another approver who is not its owner or deployer (modelgate approve fraud-detector 1.4.2, or the version's page on the modelgate dashboard)"} with input as with_registry(md, one)
	same_twice := registry([approval(1, "a@example.com", null, everywhere), approval(2, "A@example.com", null, everywhere)], [], [])
	count(admission.deny) == 1 with input as with_registry(md, same_twice)
	two := registry([approval(1, "a@example.com", null, everywhere), approval(2, "b@example.com", null, everywhere)], [], [])
	admission.allowed with input as with_registry(md, two)
}

test_registry_rejection_denied_naming_the_approver if {
	rejection := {"id": 3, "approver": "risk-officer@example.com", "time": "2026-11-21T09:00:00+00:00", "reason": "bias"}
	inp := with_registry(testing.compliant, registry([], [rejection], []))
	admission.deny == {"model \"fraud-detector\" version \"1.4.2\" was rejected by \"risk-officer@example.com\" on 2026-11-21: it needs a new approval; get it approved by an approver who is not its owner or deployer (modelgate approve fraud-detector 1.4.2, or the version's page on the modelgate dashboard)"} with input as inp
}

test_registry_approval_expiring_within_window_warns if {
	reg := registry([approval(1, "a@example.com", "2026-12-10", everywhere)], [], [])
	inp := with_registry(testing.compliant, reg)
	admission.allowed with input as inp
	admission.warn == {"the approval by \"a@example.com\" expires on 2026-12-10: have the model version reviewed again before then"} with input as inp
}

test_registry_unapproved_admitted_with_warning_in_warn_namespace if {
	inp := object.union(
		testing.in_namespace(testing.compliant, {"modelgate.dev/enforcement": "warn"}),
		{"registry": registry([], [], [])},
	)
	admission.deny == set() with input as inp
	count(admission.warn) == 1 with input as inp
}

test_registry_version_with_unshowable_name_gets_generic_command if {
	md := testing.with_md({"model-version": "1.4.2 beta"})
	inp := with_registry(md, registry([], [], []))
	some msg in admission.deny with input as inp
	contains(msg, "modelgate approve NAME VERSION")
}

test_no_registry_keeps_annotation_rules if {
	inp := testing.model(testing.with_md({"compliance-status": "pending-review"}))
	not compliance.from_registry with input as inp
	count(admission.deny) == 1 with input as inp
	admission.allowed with input as testing.model(testing.compliant)
}
