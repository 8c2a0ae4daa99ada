# METADATA
# title: modelgate admission decision
# description: |
#   The entry point every engine queries: data.modelgate.admission.
#   is_model, violations (independent of enforcement), enforcement, deny and warn.
#   Non-model workloads are allowed untouched.
# entrypoint: true
package modelgate.admission

import data.modelgate.compliance
import data.modelgate.detection
import data.modelgate.limits
import data.modelgate.metadata
import data.modelgate.risk

is_model := detection.is_model

enforcement := data.modelgate.enforcement.mode

# Everything wrong with a model workload, whatever the enforcement mode (the auditor reports it).
violations contains msg if {
	is_model
	some msg in limits.violations
}

violations contains msg if {
	is_model
	some msg in metadata.violations
}

violations contains msg if {
	is_model
	some msg in compliance.violations
}

violations contains msg if {
	is_model
	some msg in risk.violations
}

# Advice that never blocks (expiring certifications, exemptions, odd namespace labels).
advisories contains msg if {
	is_model
	some msg in compliance.warnings
}

advisories contains msg if {
	is_model
	some msg in risk.warnings
}

advisories contains msg if {
	is_model
	some msg in data.modelgate.enforcement.warnings
}

deny contains msg if {
	enforcement == "enforce"
	some msg in violations
}

warn contains msg if {
	enforcement == "warn"
	some msg in violations
}

warn contains msg if {
	enforcement != "off"
	some msg in advisories
}

# Whether the decision admits the workload.
allowed if count(deny) == 0

# The digest of the bundle this answer comes from: the engine pushes it with the policy data
# (data.modelgate.bundle.digest, last of all) and trusts an answer only when it matches the
# bundle it loaded, so an engine that serves an incomplete or older bundle (OPA restarted
# empty, a push in progress) is "could not evaluate", never an unchecked allow.
bundle_digest := data.modelgate.bundle.digest
