# METADATA
# title: Compliance status
# description: |
#   Only approved models are admitted; exempt needs an exempt-reason (and is admitted with a
#   warning so the exemption is visible); pending-review is a violation, so it is admitted only
#   where violations are warnings (namespaces in warn mode); rejected is always a violation.
#   These annotation rules apply only without recorded sign-off (MODELGATE_APPROVAL_SOURCE=
#   annotation); with input.registry, signoff.rego decides instead.
package modelgate.compliance

import data.modelgate.config
import data.modelgate.lib

status_key := lib.q(lib.key("compliance-status"))

violations contains msg if {
	not inventory_mode
	lib.status == "rejected"
	msg := concat("", [
		"annotation ", status_key, " is \"rejected\": a rejected model may not be deployed; ",
		"have it reviewed again and set the annotation to \"approved\"",
	])
}

violations contains msg if {
	not inventory_mode
	lib.status == "pending-review"
	msg := concat("", [
		"annotation ", status_key, " is \"pending-review\": the model is not approved yet ",
		"(unapproved models run only in namespaces labelled ",
		lib.q(concat("", [config.enforcement_label, "=warn"])),
		"); complete the review and set the annotation to \"approved\"",
	])
}

violations contains msg if {
	not inventory_mode
	lib.status == "exempt"
	not lib.present("exempt-reason")
	msg := concat("", [
		"annotation ", status_key, " is \"exempt\" but ", lib.q(lib.key("exempt-reason")),
		" is missing: ", lib.hint("exempt-reason"),
	])
}

warnings contains msg if {
	not inventory_mode
	lib.status == "exempt"
	lib.has("exempt-reason")
	msg := concat("", [
		"model admitted under an exemption (", lib.q(lib.key("exempt-reason")), ": ",
		lib.shown(lib.value("exempt-reason")), "); the exemption is recorded and reported",
	])
}
