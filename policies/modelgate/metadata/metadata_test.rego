package modelgate.metadata_test

import data.modelgate.metadata
import data.modelgate.testing

# violations of the metadata concern for the given model metadata
violations_for(md) := v if {
	inp := testing.model(md)
	v := metadata.violations with input as inp
}

mentions(msgs, fragment) if {
	some msg in msgs
	contains(msg, fragment)
}

test_compliant_metadata_has_no_violation if {
	violations_for(testing.compliant) == set()
}

test_empty_metadata_lists_every_required_field if {
	v := violations_for({})
	count(v) == 6
	every field in ["model-name", "model-version", "owner", "training-date", "training-data", "compliance-status"] {
		mentions(v, concat("", ["missing required annotation \"modelgate.dev/", field, "\": set it to"]))
	}
}

test_missing_owner_names_key_and_fix if {
	violations_for(testing.without_md({"owner"})) == {"missing required annotation \"modelgate.dev/owner\": set it to the owning person or team (e-mail)"}
}

test_blank_value_counts_as_missing if {
	v := violations_for(testing.with_md({"model-version": "   "}))
	mentions(v, "missing required annotation \"modelgate.dev/model-version\"")
}

test_unicode_owner_is_accepted if {
	violations_for(testing.with_md({"owner": "Zoë Ångström <zoë@例え.jp>"})) == set()
}

test_non_dns_model_name_denied if {
	v := violations_for(testing.with_md({"model-name": "Fraud Detector"}))
	v == {"invalid annotation \"modelgate.dev/model-name\" value \"Fraud Detector\": use a DNS-style name (lower-case letters, digits, '-', '.', '_'; at most 253 characters), e.g. \"fraud-detector\""}
}

test_dns_model_name_with_dots_allowed if {
	violations_for(testing.with_md({"model-name": "team.fraud-detector_v2"})) == set()
}

test_malformed_training_date_denied if {
	v := violations_for(testing.with_md({"training-date": "15/01/2026"}))
	mentions(v, "invalid annotation \"modelgate.dev/training-date\" value \"15/01/2026\": use an ISO 8601 date")
}

test_impossible_training_date_denied if {
	v := violations_for(testing.with_md({"training-date": "2025-02-30"}))
	mentions(v, "invalid annotation \"modelgate.dev/training-date\" value \"2025-02-30\"")
}

test_future_training_date_denied if {
	v := violations_for(testing.with_md({"training-date": "2026-11-27"}))
	v == {"invalid annotation \"modelgate.dev/training-date\" value \"2026-11-27\": the training date is in the future (today is 2026-11-26); set the date the model was actually trained"}
}

test_training_date_today_allowed if {
	violations_for(testing.with_md({"training-date": "2026-11-26"})) == set()
}

test_training_datetime_allowed if {
	violations_for(testing.with_md({"training-date": "2026-03-14T09:30:00Z"})) == set()
	violations_for(testing.with_md({"training-date": "2026-03-14T09:30:00.123+02:00"})) == set()
}

test_future_training_datetime_denied if {
	v := violations_for(testing.with_md({"training-date": "2030-01-01T00:00:00Z"}))
	mentions(v, "the training date is in the future")
}

# today is 2026-11-26 (UTC): a date-time with an offset is judged by its UTC date
test_training_datetime_ahead_of_utc_on_its_today_allowed if {
	violations_for(testing.with_md({"training-date": "2026-11-27T08:00:00+09:00"})) == set()
	violations_for(testing.with_md({"training-date": "2026-11-27T02:00+0230"})) == set()
	violations_for(testing.with_md({"training-date": "2026-11-27T01:00+02"})) == set()
}

test_training_datetime_behind_utc_past_midnight_utc_denied if {
	v := violations_for(testing.with_md({"training-date": "2026-11-26T20:00:00-08:00"}))
	v == {"invalid annotation \"modelgate.dev/training-date\" value \"2026-11-26T20:00:00-08:00\": the training date is in the future (today is 2026-11-26); set the date the model was actually trained"}
}

test_training_datetime_after_midnight_utc_denied if {
	v := violations_for(testing.with_md({"training-date": "2026-11-27T00:30:00Z"}))
	mentions(v, "the training date is in the future")
}

test_training_datetime_with_impossible_time_denied if {
	every bad in ["2026-03-14T25:00:00Z", "2026-03-14T09:75Z", "2026-03-14T09:30:00+25:00", "2026-03-14T9:30"] {
		mentions(violations_for(testing.with_md({"training-date": bad})), concat("", ["invalid annotation \"modelgate.dev/training-date\" value \"", bad, "\": use an ISO 8601 date"]))
	}
}

test_training_data_empty_entry_denied if {
	v := violations_for(testing.with_md({"training-data": "s3://a/train.csv,,s3://b/test.csv"}))
	mentions(v, "invalid annotation \"modelgate.dev/training-data\"")
}

test_training_data_blank_inside_uri_denied if {
	v := violations_for(testing.with_md({"training-data": "s3://a/my train.csv"}))
	mentions(v, "invalid annotation \"modelgate.dev/training-data\"")
}

test_training_data_list_with_spaces_after_commas_allowed if {
	violations_for(testing.with_md({"training-data": "s3://a/train.csv, hf://datasets/org/name"})) == set()
}

test_unknown_compliance_status_denied if {
	v := violations_for(testing.with_md({"compliance-status": "approved-ish"}))
	v == {"invalid annotation \"modelgate.dev/compliance-status\" value \"approved-ish\": use one of approved, pending-review, rejected, exempt"}
}

test_unknown_risk_tier_denied if {
	v := violations_for(testing.with_md({"risk-tier": "extreme"}))
	v == {"invalid annotation \"modelgate.dev/risk-tier\" value \"extreme\": use one of minimal, limited, high (or omit it for limited)"}
}

test_known_risk_tiers_allowed if {
	violations_for(testing.with_md({"risk-tier": "minimal"})) == set()
	violations_for(testing.with_md({"risk-tier": "limited"})) == set()
}

test_metrics_object_of_numbers_allowed if {
	violations_for(testing.with_md({"metrics": "{\"auc\": 0.91, \"f1\": 0.84, \"samples\": 120000}"})) == set()
}

test_metrics_in_exponent_notation_allowed if {
	violations_for(testing.with_md({"metrics": "{\"samples\": 1e6, \"lr\": 3E-4, \"loss\": -2.5e+1, \"top1e\": 0.9}"})) == set()
}

test_metrics_with_a_three_digit_exponent_denied if {
	every bad in ["{\"auc\": 1e999}", "{\"auc\": 1.0e999}", "{\"auc\": 2.5E-400}"] {
		violations_for(testing.with_md({"metrics": bad})) == {"invalid annotation \"modelgate.dev/metrics\" value (value not shown): use a JSON object of metric name to number, e.g. {\"auc\": 0.91, \"f1\": 0.84}"}
	}
}

test_metrics_not_json_denied if {
	v := violations_for(testing.with_md({"metrics": "auc=0.91"}))
	v == {"invalid annotation \"modelgate.dev/metrics\" value \"auc=0.91\": use a JSON object of metric name to number, e.g. {\"auc\": 0.91, \"f1\": 0.84}"}
}

test_metrics_with_non_number_denied if {
	v := violations_for(testing.with_md({"metrics": "{\"auc\": \"high\"}"}))
	mentions(v, "invalid annotation \"modelgate.dev/metrics\" value (value not shown): use a JSON object")
}

test_metrics_array_denied if {
	v := violations_for(testing.with_md({"metrics": "[0.91, 0.84]"}))
	mentions(v, "invalid annotation \"modelgate.dev/metrics\"")
}

test_certifications_not_json_denied if {
	v := violations_for(testing.with_md({"certifications": "ISO-42001 until 2027"}))
	mentions(v, "invalid annotation \"modelgate.dev/certifications\": it is not a JSON list; set it to a JSON list such as")
}

test_certifications_with_a_three_digit_exponent_denied if {
	v := violations_for(testing.with_md({"certifications": "[{\"name\": \"ISO-42001\", \"expires\": \"2027-01-01\", \"score\": 1.0e999}]"}))
	mentions(v, "invalid annotation \"modelgate.dev/certifications\": it is not a JSON list")
}

test_certifications_object_instead_of_list_denied if {
	v := violations_for(testing.with_md({"certifications": "{\"name\": \"ISO-42001\", \"expires\": \"2027-01-01\"}"}))
	mentions(v, "invalid annotation \"modelgate.dev/certifications\": it is not a JSON list")
}

test_certification_entry_without_expiry_denied if {
	v := violations_for(testing.with_md({"certifications": "[{\"name\": \"ISO-42001\", \"expires\": \"2027-01-01\"}, {\"name\": \"internal\"}]"}))
	v == {"invalid annotation \"modelgate.dev/certifications\": entry 1 is not {\"name\": \"...\", \"expires\": \"YYYY-MM-DD\"} with a non-empty name and a real date; set it to a JSON list such as [{\"name\": \"EU-AI-Act-conformity\", \"expires\": \"2027-06-30\"}]"}
}

test_certification_entry_with_bad_date_denied if {
	v := violations_for(testing.with_md({"certifications": "[{\"name\": \"ISO-42001\", \"expires\": \"2027-13-01\"}]"}))
	mentions(v, "entry 0 is not")
}

test_valid_certifications_allowed if {
	violations_for(testing.with_md({"certifications": "[{\"name\": \"ISO-42001\", \"expires\": \"2099-01-01\"}]"})) == set()
}

test_model_card_not_url_denied if {
	v := violations_for(testing.with_md({"model-card": "see wiki"}))
	v == {"invalid annotation \"modelgate.dev/model-card\" value \"see wiki\": use the http(s) URL of the model card"}
}

test_value_with_quotes_not_echoed if {
	v := violations_for(testing.with_md({"model-name": "say \"hi\""}))
	mentions(v, "invalid annotation \"modelgate.dev/model-name\" value (value not shown): use a DNS-style name")
}

test_optional_fields_free_text_allowed if {
	violations_for(testing.with_md({
		"training-run": "https://mlflow.example.com/#/experiments/3/runs/9f1c",
		"source": "https://git.example.com/ml/fraud@4e1d2c0",
	})) == set()
}

# --- fields required per risk tier and the optional documentation fields ----------------

high_tier_fields := {"high": ["intended-purpose", "limitations", "validation-date", "owner", "model-card"]}

test_documentation_fields_are_optional_by_default if {
	violations_for(testing.high_risk([{"name": "SR 11-7", "expires": "2027-01-01"}])) == set()
}

test_tier_required_fields_missing_for_the_tier_are_violations if {
	v := violations_for(testing.high_risk([{"name": "SR 11-7", "expires": "2027-01-01"}])) with data.modelgate.config.tier_required_fields as high_tier_fields
	v == {
		"missing annotation \"modelgate.dev/intended-purpose\" required for risk tier \"high\": set it to what the model is for and who uses its output (EU AI Act Annex IV 1(a))",
		"missing annotation \"modelgate.dev/limitations\" required for risk tier \"high\": set it to the known limitations of the model (data it was not trained on, conditions it fails in)",
		"missing annotation \"modelgate.dev/validation-date\" required for risk tier \"high\": set it to the ISO 8601 date the model was last independently validated, e.g. \"2025-04-01\"",
	}
}

test_tier_required_fields_present_are_allowed if {
	md := object.union(testing.high_risk([{"name": "SR 11-7", "expires": "2027-01-01"}]), {
		"intended-purpose": "score card transactions for fraud",
		"limitations": "not validated for business accounts",
		"validation-date": "2026-10-01",
	})
	violations_for(md) == set() with data.modelgate.config.tier_required_fields as high_tier_fields
}

test_tier_required_fields_apply_to_their_tier_only if {
	violations_for(testing.compliant) == set() with data.modelgate.config.tier_required_fields as high_tier_fields
}

test_tier_required_fields_do_not_repeat_required_and_certified_tier_fields if {
	md := object.remove(testing.high_risk([{"name": "SR 11-7", "expires": "2027-01-01"}]), {"owner", "model-card"})
	v := violations_for(md) with data.modelgate.config.tier_required_fields as high_tier_fields
	not mentions(v, "missing annotation \"modelgate.dev/owner\" required for risk tier")
	not mentions(v, "missing annotation \"modelgate.dev/model-card\" required for risk tier")
	mentions(v, "missing required annotation \"modelgate.dev/owner\"")
}

test_malformed_validation_date_denied if {
	v := violations_for(testing.with_md({"validation-date": "last spring"}))
	v == {"invalid annotation \"modelgate.dev/validation-date\" value \"last spring\": use an ISO 8601 date, e.g. \"2025-04-01\""}
}

test_future_validation_date_denied if {
	v := violations_for(testing.with_md({"validation-date": "2026-11-27"}))
	v == {"invalid annotation \"modelgate.dev/validation-date\" value \"2026-11-27\": the validation date is in the future (today is 2026-11-26)"}
}

test_validation_date_today_allowed if {
	violations_for(testing.with_md({"validation-date": "2026-11-26", "intended-purpose": "x", "restrictions": "y", "limitations": "z"})) == set()
}
