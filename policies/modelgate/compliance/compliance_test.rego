package modelgate.compliance_test

import data.modelgate.compliance
import data.modelgate.testing

test_approved_has_no_violation_or_warning if {
	inp := testing.model(testing.compliant)
	compliance.violations == set() with input as inp
	compliance.warnings == set() with input as inp
}

test_rejected_denied if {
	inp := testing.model(testing.with_md({"compliance-status": "rejected"}))
	compliance.violations == {"annotation \"modelgate.dev/compliance-status\" is \"rejected\": a rejected model may not be deployed; have it reviewed again and set the annotation to \"approved\""} with input as inp
}

test_pending_review_is_violation_naming_warn_label if {
	inp := testing.model(testing.with_md({"compliance-status": "pending-review"}))
	compliance.violations == {"annotation \"modelgate.dev/compliance-status\" is \"pending-review\": the model is not approved yet (unapproved models run only in namespaces labelled \"modelgate.dev/enforcement=warn\"); complete the review and set the annotation to \"approved\""} with input as inp
}

test_exempt_without_reason_denied if {
	inp := testing.model(testing.with_md({"compliance-status": "exempt"}))
	compliance.violations == {"annotation \"modelgate.dev/compliance-status\" is \"exempt\" but \"modelgate.dev/exempt-reason\" is missing: set it to the reason for the exemption (it is recorded and reported)"} with input as inp
}

test_exempt_with_reason_allowed_with_warning if {
	inp := testing.model(testing.with_md({"compliance-status": "exempt", "exempt-reason": "research sandbox, no customer data"}))
	compliance.violations == set() with input as inp
	compliance.warnings == {"model admitted under an exemption (\"modelgate.dev/exempt-reason\": \"research sandbox, no customer data\"); the exemption is recorded and reported"} with input as inp
}

test_exempt_with_blank_reason_denied if {
	inp := testing.model(testing.with_md({"compliance-status": "exempt", "exempt-reason": "  "}))
	count(compliance.violations) == 1 with input as inp
}
