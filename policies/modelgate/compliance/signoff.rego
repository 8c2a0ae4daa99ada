# Recorded sign-off (input.registry), part of package modelgate.compliance.
#
# With MODELGATE_APPROVAL_SOURCE=inventory the input carries input.registry: the recorded
# approvals (not revoked or superseded), standing rejections, exemptions and recorded
# certifications of the model version being admitted. The compliance-status annotation is
# then not trusted: a version is admitted when enough current approvals in scope come from
# distinct approvers (two for config.two_approver_tiers, else one), or a recorded exemption
# has not expired. Without input.registry (MODELGATE_APPROVAL_SOURCE=annotation) the
# annotation rules of compliance.rego apply.
package modelgate.compliance

import data.modelgate.config
import data.modelgate.lib

# The recorded sign-off is the source (the annotation rules of compliance.rego are off).
inventory_mode if is_object(input.registry)

# Admission decides from the recorded sign-off (a model with a name and a version).
from_registry if {
	inventory_mode
	lib.has("model-name")
	lib.has("model-version")
}

approvals_needed := 2 if lib.risk_tier in config.two_approver_tiers

approvals_needed := 1 if not lib.risk_tier in config.two_approver_tiers

# Approvals that hold today, for this cluster and namespace.
current_approvals contains a if {
	some a in input.registry.approvals
	not expired(a.expires)
	in_scope(a.scope)
}

expired(day) if {
	is_string(day)
	day < input.today
}

in_scope(scope) if {
	listed_or_all(scope, "clusters", input.registry.cluster)
	listed_or_all(scope, "namespaces", input.namespace.name)
}

listed_or_all(scope, key, _) if count(object.get(scope, key, [])) == 0

listed_or_all(scope, key, value) if value in object.get(scope, key, [])

approvers contains lower(a.approver) if some a in current_approvals

approved if count(approvers) >= approvals_needed

current_exemptions contains e if {
	some e in input.registry.exemptions
	not expired(e.expires)
}

exempted if count(current_exemptions) > 0

signed_off if approved

signed_off if exempted

# --- messages ---------------------------------------------------------------------------

version_named := concat("", ["model ", lib.shown(lib.value("model-name")), " version ", lib.shown(lib.value("model-version"))])

# the command is shown only for names a shell takes as they are
showable_command if {
	lib.echoable(lib.value("model-name"))
	lib.echoable(lib.value("model-version"))
	not regex.match(`\s`, lib.value("model-version"))
}

approve_command := concat(" ", ["modelgate approve", lib.value("model-name"), lib.value("model-version")]) if showable_command

approve_command := "modelgate approve NAME VERSION" if not showable_command

# approval_hint("an") / approval_hint("another"): how to get the version approved
approval_hint(who) := concat("", [
	"get it approved by ", who, " approver who is not its owner or deployer (", approve_command,
	", or the version's page on the modelgate dashboard)",
])

violations contains msg if {
	from_registry
	not signed_off
	count(input.registry.rejections) > 0
	some r in input.registry.rejections
	msg := concat("", [
		version_named, " was rejected by ", lib.shown(r.approver), " on ", substring(r.time, 0, 10),
		": it needs a new approval; ", approval_hint("an"),
	])
}

violations contains msg if {
	from_registry
	not signed_off
	count(input.registry.rejections) == 0
	count(input.registry.approvals) == 0
	msg := concat("", [
		version_named, " has no recorded approval (the ", lib.q(lib.key("compliance-status")),
		" annotation is not trusted): ", approval_hint("an"),
	])
}

violations contains msg if {
	from_registry
	not signed_off
	count(input.registry.rejections) == 0
	count(input.registry.approvals) > 0
	count(current_approvals) == 0
	msg := concat("", [
		version_named, " has no approval that holds today for cluster ", lib.shown(input.registry.cluster),
		" and namespace ", lib.shown(input.namespace.name), " (expired or out of scope): ", approval_hint("an"),
	])
}

violations contains msg if {
	from_registry
	not signed_off
	count(input.registry.rejections) == 0
	count(current_approvals) > 0
	msg := concat("", [
		version_named, " has ", format_int(count(approvers), 10), " of the ", format_int(approvals_needed, 10),
		" approvals from distinct approvers that risk tier ", lib.q(lib.risk_tier), " needs: ", approval_hint("another"),
	])
}

warnings contains msg if {
	from_registry
	not approved
	some e in current_exemptions
	msg := concat("", [
		"model admitted under the exemption granted by ", lib.shown(e.granted_by), " until ", e.expires,
		" (", lib.shown(e.reason), "); the exemption is recorded and reported",
	])
}

warnings contains msg if {
	from_registry
	approved
	some a in current_approvals
	is_string(a.expires)
	lib.days_between(input.today, a.expires) <= config.certification_warning_days
	msg := concat("", [
		"the approval by ", lib.shown(a.approver), " expires on ", a.expires,
		": have the model version reviewed again before then",
	])
}
