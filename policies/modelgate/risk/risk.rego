# METADATA
# title: Risk tier requirements and certification expiry
# description: |
#   Tiers in data.modelgate.config.certified_tiers (default: high) need a model card and at
#   least one certification that has not expired. A certification expiring within
#   certification_warning_days is a warning; an expired one is a warning unless it leaves a
#   certified tier without any valid certification (then it is a violation).
package modelgate.risk

import data.modelgate.config
import data.modelgate.lib

certified_tier if lib.risk_tier in config.certified_tiers

# Well-formed certifications that are still valid today (valid through their expiry date).
# Arrays, not sets: a set of objects costs rego-cpp time quadratic in its size, and the
# entries are bounded by data.modelgate.config.limits.max_certifications anyway.
current := [cert |
	some cert in lib.certifications
	lib.valid_certification(cert)
	cert.expires >= input.today
]

expired := [cert |
	some cert in lib.certifications
	lib.valid_certification(cert)
	cert.expires < input.today
]

expiring := [cert |
	some cert in current
	lib.days_between(input.today, cert.expires) <= config.certification_warning_days
]

violations contains msg if {
	certified_tier
	not lib.present("model-card")
	msg := concat("", [
		"missing annotation ", lib.q(lib.key("model-card")), " required for risk tier ",
		lib.q(lib.risk_tier), ": ", lib.hint("model-card"),
	])
}

violations contains msg if {
	certified_tier
	not lib.present("certifications")
	msg := concat("", [
		"missing annotation ", lib.q(lib.key("certifications")), " required for risk tier ",
		lib.q(lib.risk_tier), ": ", lib.hint("certifications"),
	])
}

# Present and parseable, but nothing valid today (malformed JSON is reported by metadata).
violations contains msg if {
	certified_tier
	is_array(lib.certifications)
	count(current) == 0
	msg := concat("", [
		"annotation ", lib.q(lib.key("certifications")), " has no unexpired certification (today is ",
		input.today, "), which risk tier ", lib.q(lib.risk_tier),
		" requires: renew the certification and update the annotation",
	])
}

warnings contains msg if {
	some cert in expiring
	msg := concat("", [
		"certification ", lib.shown(cert.name), " in ", lib.q(lib.key("certifications")), " expires on ",
		cert.expires, ", within ", format_int(config.certification_warning_days, 10),
		" days: renew it and update the annotation",
	])
}

warnings contains msg if {
	some cert in expired
	msg := concat("", [
		"certification ", lib.shown(cert.name), " in ", lib.q(lib.key("certifications")), " expired on ",
		cert.expires, ": renew it or remove it from the annotation",
	])
}
