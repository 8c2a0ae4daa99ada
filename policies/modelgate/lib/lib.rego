# METADATA
# title: Shared helpers
# description: Annotation keys, metadata access and date/JSON parsing used by every concern.
# custom:
#   rule: false
package modelgate.lib

import data.modelgate.config

# The model metadata: modelgate.dev/* keys without the prefix (annotations win over labels).
md := object.get(input, ["workload", "metadata"], {})

# key("owner") == "modelgate.dev/owner"
key(field) := concat("", [config.annotation_prefix, field])

# trimmed(s): s without leading and trailing blanks. (trim_space aborts the whole rego-cpp
# evaluation on a string holding a backslash that is not a JSON escape, e.g. "C:\models".)
trimmed(s) := regex.replace(s, `^\s+|\s+$`, "")

# The metadata fields the rules read, each trimmed once (a fixed set: its cost does not grow
# with the number of modelgate.dev/* keys a workload carries).
fields := ({f | some f in config.required_fields} | tier_fields) | {
	"model-name", "model-version", "owner", "training-date", "training-data",
	"compliance-status", "risk-tier", "certifications", "model-card", "metrics",
	"training-run", "source", "exempt-reason", "intended-purpose", "restrictions",
	"limitations", "validation-date",
}

# Fields some risk tier requires (config.tier_required_fields).
tier_fields contains f if {
	some tier_fields_of_one in object.get(config, "tier_required_fields", {})
	some f in tier_fields_of_one
}

values := {f: trimmed(md[f]) | some f in fields; is_string(md[f])}

# has(field) is true when the field is set to something other than blanks.
has(field) if values[field] != ""

# present(field): set, or kept out of evaluation by a size limit (then "missing" would be
# wrong: data.modelgate.limits reports it).
present(field) if has(field)

present(field) if over_limit(field)

over_limit(field) if field in limits_exceeded

over_limit(_) if "" in limits_exceeded

limits_exceeded := {entry.field | some entry in object.get(input, "limits_exceeded", [])}

value(field) := values[field]

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

# An ISO 8601 date or date-time; groups: date, hour, minute, UTC offset ("" when absent).
datetime_pattern := `^([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[Tt ]([01][0-9]|2[0-3]):([0-5][0-9])(?::(?:[0-5][0-9]|60)(?:[.,][0-9]+)?)?(Z|z|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)?)?$`

datetime_parts(s) := regex.find_all_string_submatch_n(datetime_pattern, s, 1)[0]

# date_of(parts): the YYYY-MM-DD of the ISO 8601 date or date-time that datetime_parts matched
# (undefined when it is not a real date). The *_of functions take the parts, so a caller
# matches the long pattern once: rego-cpp compiles a pattern at every call.
date_of(parts) := parts[1] if valid_date(parts[1])

# utc_shift_of(parts): days from the written date to the UTC date of a date-time with a UTC
# offset (-1, 0 or 1): "2026-11-27T08:00+09:00" is 2026-11-26 in UTC. 0 for dates, UTC and
# offset-less date-times.
utc_shift_of(parts) := 0 if parts[2] == ""

utc_shift_of(parts) := shift if {
	parts[2] != ""
	utc_minutes := ((to_number(parts[2]) * 60) + to_number(parts[3])) - offset_minutes(parts[4])
	shift := day_shift(utc_minutes)
}

day_shift(minutes) := -1 if minutes < 0

day_shift(minutes) := 0 if {
	minutes >= 0
	minutes < 1440
}

day_shift(minutes) := 1 if minutes >= 1440

# offset_minutes("+05:30") == 330, offset_minutes("-08") == -480; 0 for "", "Z" and "z".
offset_minutes(offset) := 0 if count(offset) < 3

offset_minutes(offset) := m if {
	count(offset) >= 3
	digits := replace(substring(offset, 1, 5), ":", "")
	m := offset_sign(offset) * ((to_number(substring(digits, 0, 2)) * 60) + digits_number(substring(digits, 2, 2)))
}

offset_sign(offset) := 1 if startswith(offset, "+")

offset_sign(offset) := -1 if startswith(offset, "-")

digits_number(s) := 0 if s == ""

digits_number(s) := to_number(s) if s != ""

# days_after_today_of(parts): whole days from input.today to the (UTC) date of the matched
# date(-time); > 0 is the future.
days_after_today_of(parts) := days_between(input.today, date_of(parts)) + utc_shift_of(parts)

# days_between(a, b): whole days from date a to date b (both YYYY-MM-DD).
days_between(a, b) := (time.parse_ns(date_layout, b) - time.parse_ns(date_layout, a)) / 86400000000000

risk_tier := value("risk-tier") if has("risk-tier")

risk_tier := config.default_risk_tier if not has("risk-tier")

status := value("compliance-status") if has("compliance-status")

# parse_json(raw): the JSON document in raw; undefined when raw is not JSON. Both engines must
# agree, and rego-cpp reads fewer numbers than OPA: a number with a 3-digit exponent (1.0e999)
# fails rego-cpp's whole evaluation, so it is refused here; an exponent after an integer (1e6)
# or an upper-case E is not read by rego-cpp (parse_json_numbers rewrites those).
parse_json(raw) := json.unmarshal(raw) if {
	json.is_valid(raw)
	not regex.match(`[0-9][eE][+-]?[0-9]{3}`, raw)
}

# parse_json_numbers(raw): parse_json of a document whose strings are never shown (metrics):
# 1e6 and 1E6 are read as 1.0e6 (a JSON number follows a ':', ',', '[' or a blank; inside
# strings the rewrite may change text, never validity, and \u escapes are left alone).
parse_json_numbers(raw) := parse_json(regex.replace(replace(raw, "E", "e"), `(^|[\s:,\[])(-?[0-9]+)e`, "$1$2.0e")) if {
	json.is_valid(raw)
}

# The certifications annotation, parsed; undefined when absent or not a JSON list.
parsed_certifications := certs if {
	has("certifications")
	certs := parse_json(raw("certifications"))
	is_array(certs)
}

# The most certification entries judged one by one (data.modelgate.config.limits): a longer
# list is a violation of its own, so the per-entry rules stay bounded (linear) in cost.
max_certifications := object.get(config, ["limits", "max_certifications"], 100)

# The certifications the rules judge: the parsed list, undefined when it is over the limit.
certifications := parsed_certifications if count(parsed_certifications) <= max_certifications

# A well-formed certification entry: {"name": non-empty string, "expires": "YYYY-MM-DD"}.
valid_certification(c) if {
	is_object(c)
	is_string(c.name)
	trimmed(c.name) != ""
	valid_date(c.expires)
}
