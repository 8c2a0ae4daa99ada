# METADATA
# title: Shared helpers
# description: Annotation keys, metadata access and date/JSON parsing used by every concern.
package modelgate.lib

import data.modelgate.config

# The model metadata: modelgate.dev/* keys without the prefix (annotations win over labels).
md := object.get(input, ["workload", "metadata"], {})

# key("owner") == "modelgate.dev/owner"
key(field) := concat("", [config.annotation_prefix, field])

# has(field) is true when the field is set to something other than blanks.
has(field) if trim_space(md[field]) != ""

value(field) := trim_space(md[field])

# raw(field): the value as written, for JSON parsing (trim_space would change escaped strings
# in rego-cpp; JSON parsing ignores surrounding blanks anyway)
raw(field) := md[field]

# q("x") == "\"x\"" (messages are built with concat: sprintf differs between engines)
q(s) := concat("", ["\"", s, "\""])

# shown(s): a user-supplied value as it may appear in a message. Values with quotes,
# backslashes or control characters, and very long ones, are not echoed.
shown(s) := q(s) if echoable(s)

shown(s) := "(value not shown)" if not echoable(s)

# (two simple patterns: regopy rejects \x escapes and sees strings in their JSON-escaped form)
echoable(s) if {
	regex.match(`^[^"\\]{0,120}$`, s)
	regex.match(`^[^[:cntrl:]]*$`, s)
}

hint(field) := object.get(config.field_hints, field, "see the modelgate metadata contract")

date_layout := "2006-01-02"

# valid_date(s): s is a real calendar date written YYYY-MM-DD.
valid_date(s) if {
	is_string(s)
	regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`, s)
	time.parse_ns(date_layout, s)
}

# date_part(s): the YYYY-MM-DD of an ISO 8601 date or date-time (undefined when malformed).
date_part(s) := d if {
	regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)?)?$`, s)
	d := substring(s, 0, 10)
	valid_date(d)
}

# days_between(a, b): whole days from date a to date b (both YYYY-MM-DD).
days_between(a, b) := (time.parse_ns(date_layout, b) - time.parse_ns(date_layout, a)) / 86400000000000

risk_tier := value("risk-tier") if has("risk-tier")

risk_tier := config.default_risk_tier if not has("risk-tier")

status := value("compliance-status") if has("compliance-status")

# The certifications annotation, parsed; undefined when absent or not a JSON list.
certifications := certs if {
	has("certifications")
	json.is_valid(raw("certifications"))
	certs := json.unmarshal(raw("certifications"))
	is_array(certs)
}

# A well-formed certification entry: {"name": non-empty string, "expires": "YYYY-MM-DD"}.
valid_certification(c) if {
	is_object(c)
	is_string(c.name)
	trim_space(c.name) != ""
	valid_date(c.expires)
}
