# METADATA
# title: Required and well-formed metadata
# description: |
#   Every required modelgate.dev/* field must be present, and every present field must be
#   well formed (DNS-style model name, ISO 8601 training date not in the future, dataset URIs,
#   known status and tier, metrics as a JSON object of numbers, certifications as a JSON list
#   of {"name", "expires"}, model card as a URL, validation date an ISO 8601 date not in the
#   future). Fields listed for the workload's risk tier in tier_required_fields are required
#   too.
package modelgate.metadata

import data.modelgate.config
import data.modelgate.lib

violations contains msg if {
	some field in config.required_fields
	not lib.present(field)
	msg := concat("", ["missing required annotation ", lib.q(lib.key(field)), ": ", lib.hint(field)])
}

# --- fields required per risk tier -----------------------------------------------------

# Fields the data's tier_required_fields adds for the workload's tier (those already required
# for every workload, or by the certified-tier rules, are reported there).
tier_required contains field if {
	some field in object.get(config, ["tier_required_fields", lib.risk_tier], [])
	not field in config.required_fields
	not certified_tier_field(field)
}

certified_tier_field(field) if {
	lib.risk_tier in config.certified_tiers
	field in {"model-card", "certifications"}
}

violations contains msg if {
	some field in tier_required
	not lib.has(field)
	msg := concat("", [
		"missing annotation ", lib.q(lib.key(field)), " required for risk tier ",
		lib.q(lib.risk_tier), ": ", lib.hint(field),
	])
}

# --- model-name -------------------------------------------------------------------------

violations contains msg if {
	lib.has("model-name")
	name := lib.value("model-name")
	not regex.match(`^[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?$`, name)
	msg := concat("", [
		"invalid annotation ", lib.q(lib.key("model-name")), " value ", lib.shown(name),
		": use a DNS-style name (lower-case letters, digits, '-', '.', '_'; at most 253 characters), e.g. \"fraud-detector\"",
	])
}

# --- training-date ----------------------------------------------------------------------

# the training date matched against the date-time pattern once
training_date_parts := lib.datetime_parts(lib.value("training-date"))

training_date_valid if lib.date_of(training_date_parts)

violations contains msg if {
	lib.has("training-date")
	not training_date_valid
	msg := concat("", [
		"invalid annotation ", lib.q(lib.key("training-date")), " value ", lib.shown(lib.value("training-date")),
		": use an ISO 8601 date or date-time, e.g. \"2025-03-14\" or \"2025-03-14T09:30:00Z\"",
	])
}

violations contains msg if {
	lib.has("training-date")
	lib.days_after_today_of(training_date_parts) > 0
	msg := concat("", [
		"invalid annotation ", lib.q(lib.key("training-date")), " value ", lib.shown(lib.value("training-date")),
		": the training date is in the future (today is ", input.today, "); set the date the model was actually trained",
	])
}

# --- validation-date --------------------------------------------------------------------

# the validation date matched against the date-time pattern once
validation_date_parts := lib.datetime_parts(lib.value("validation-date"))

validation_date_valid if lib.date_of(validation_date_parts)

violations contains msg if {
	lib.has("validation-date")
	not validation_date_valid
	msg := concat("", [
		"invalid annotation ", lib.q(lib.key("validation-date")), " value ", lib.shown(lib.value("validation-date")),
		": use an ISO 8601 date, e.g. \"2025-04-01\"",
	])
}

violations contains msg if {
	lib.has("validation-date")
	lib.days_after_today_of(validation_date_parts) > 0
	msg := concat("", [
		"invalid annotation ", lib.q(lib.key("validation-date")), " value ", lib.shown(lib.value("validation-date")),
		": the validation date is in the future (today is ", input.today, ")",
	])
}

# --- training-data ----------------------------------------------------------------------

violations contains msg if {
	lib.has("training-data")
	not valid_dataset_uris(lib.value("training-data"))
	msg := concat("", [
		"invalid annotation ", lib.q(lib.key("training-data")), " value ", lib.shown(lib.value("training-data")),
		": list dataset URIs separated by commas, with no blanks inside a URI and no empty entries, e.g. \"s3://bucket/train.parquet,hf://datasets/org/name\"",
	])
}

# Comma-separated URIs, blanks allowed only around the commas: one match for the whole list
# (the same as splitting at the commas and checking each trimmed entry).
valid_dataset_uris(value) if regex.match(`^\s*[^\s,]+\s*(?:,\s*[^\s,]+\s*)*$`, value)

# --- compliance-status and risk-tier ----------------------------------------------------

violations contains msg if {
	lib.has("compliance-status")
	not lib.status in config.compliance_statuses
	msg := concat("", [
		"invalid annotation ", lib.q(lib.key("compliance-status")), " value ", lib.shown(lib.status),
		": use one of ", concat(", ", config.compliance_statuses),
	])
}

violations contains msg if {
	lib.has("risk-tier")
	not lib.risk_tier in config.risk_tiers
	msg := concat("", [
		"invalid annotation ", lib.q(lib.key("risk-tier")), " value ", lib.shown(lib.risk_tier),
		": use one of ", concat(", ", config.risk_tiers), " (or omit it for ", config.default_risk_tier, ")",
	])
}

# --- metrics ----------------------------------------------------------------------------

violations contains msg if {
	lib.has("metrics")
	not valid_metrics(lib.raw("metrics"))
	msg := concat("", [
		"invalid annotation ", lib.q(lib.key("metrics")), " value ", lib.shown(lib.value("metrics")),
		": use a JSON object of metric name to number, e.g. {\"auc\": 0.91, \"f1\": 0.84}",
	])
}

valid_metrics(raw) if {
	metrics := lib.parse_json_numbers(raw)
	is_object(metrics)
	every _, v in metrics {
		is_number(v)
	}
}

# --- certifications ---------------------------------------------------------------------

violations contains msg if {
	lib.has("certifications")
	not lib.parsed_certifications
	msg := concat("", [
		"invalid annotation ", lib.q(lib.key("certifications")), ": it is not a JSON list; ",
		lib.hint("certifications"),
	])
}

violations contains msg if {
	some i, cert in lib.certifications
	not lib.valid_certification(cert)
	msg := concat("", [
		"invalid annotation ", lib.q(lib.key("certifications")), ": entry ", format_int(i, 10),
		" is not {\"name\": \"...\", \"expires\": \"YYYY-MM-DD\"} with a non-empty name and a real date; ",
		lib.hint("certifications"),
	])
}

# --- model-card -------------------------------------------------------------------------

violations contains msg if {
	lib.has("model-card")
	not regex.match(`^https?://[^\s]+$`, lib.value("model-card"))
	msg := concat("", [
		"invalid annotation ", lib.q(lib.key("model-card")), " value ", lib.shown(lib.value("model-card")),
		": use the http(s) URL of the model card",
	])
}
