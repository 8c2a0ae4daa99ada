package modelgate.risk_test

import data.modelgate.risk
import data.modelgate.testing

# today is 2026-11-26 in every test input

test_limited_tier_needs_no_certification if {
	inp := testing.model(testing.compliant)
	risk.violations == set() with input as inp
	risk.warnings == set() with input as inp
}

test_high_tier_without_card_and_certifications_denied if {
	inp := testing.model(testing.with_md({"risk-tier": "high"}))
	risk.violations == {
		"missing annotation \"modelgate.dev/model-card\" required for risk tier \"high\": set it to the URL of the model card",
		"missing annotation \"modelgate.dev/certifications\" required for risk tier \"high\": set it to a JSON list such as [{\"name\": \"EU-AI-Act-conformity\", \"expires\": \"2027-06-30\"}]",
	} with input as inp
}

test_high_tier_with_card_and_valid_certification_allowed if {
	inp := testing.model(testing.high_risk("[{\"name\": \"EU-AI-Act-conformity\", \"expires\": \"2099-12-31\"}]"))
	risk.violations == set() with input as inp
	risk.warnings == set() with input as inp
}

test_high_tier_with_only_expired_certification_denied if {
	inp := testing.model(testing.high_risk("[{\"name\": \"EU-AI-Act-conformity\", \"expires\": \"2026-11-25\"}]"))
	risk.violations == {"annotation \"modelgate.dev/certifications\" has no unexpired certification (today is 2026-11-26), which risk tier \"high\" requires: renew the certification and update the annotation"} with input as inp
	risk.warnings == {"certification \"EU-AI-Act-conformity\" in \"modelgate.dev/certifications\" expired on 2026-11-25: renew it or remove it from the annotation"} with input as inp
}

test_high_tier_with_empty_certification_list_denied if {
	inp := testing.model(testing.high_risk("[]"))
	count(risk.violations) == 1 with input as inp
}

test_high_tier_expired_plus_valid_certification_allowed_with_warning if {
	inp := testing.model(testing.high_risk("[{\"name\": \"old\", \"expires\": \"2020-01-01\"}, {\"name\": \"new\", \"expires\": \"2099-01-01\"}]"))
	risk.violations == set() with input as inp
	count(risk.warnings) == 1 with input as inp
}

test_certification_expiring_within_window_warns_not_denies if {
	inp := testing.model(testing.high_risk("[{\"name\": \"EU-AI-Act-conformity\", \"expires\": \"2026-12-10\"}]"))
	risk.violations == set() with input as inp
	risk.warnings == {"certification \"EU-AI-Act-conformity\" in \"modelgate.dev/certifications\" expires on 2026-12-10, within 30 days: renew it and update the annotation"} with input as inp
}

test_certification_expiring_today_is_still_valid_and_warns if {
	inp := testing.model(testing.high_risk("[{\"name\": \"c\", \"expires\": \"2026-11-26\"}]"))
	risk.violations == set() with input as inp
	count(risk.warnings) == 1 with input as inp
}

test_certification_expiring_on_window_edge_warns if {
	inp := testing.model(testing.high_risk("[{\"name\": \"c\", \"expires\": \"2026-12-26\"}]"))
	count(risk.warnings) == 1 with input as inp
}

test_certification_expiring_after_window_has_no_warning if {
	inp := testing.model(testing.high_risk("[{\"name\": \"c\", \"expires\": \"2026-12-27\"}]"))
	risk.warnings == set() with input as inp
}

test_warning_window_comes_from_data if {
	inp := testing.model(testing.high_risk("[{\"name\": \"c\", \"expires\": \"2027-01-20\"}]"))
	risk.warnings == set() with input as inp
	count(risk.warnings) == 1 with input as inp with data.modelgate.config.certification_warning_days as 60
}

test_limited_tier_expired_certification_only_warns if {
	inp := testing.model(testing.with_md({"certifications": "[{\"name\": \"c\", \"expires\": \"2025-01-01\"}]"}))
	risk.violations == set() with input as inp
	count(risk.warnings) == 1 with input as inp
}

test_high_tier_malformed_certifications_not_reported_twice if {
	inp := testing.model(testing.high_risk("not json"))
	risk.violations == set() with input as inp
}

test_certified_tiers_come_from_data if {
	inp := testing.model(testing.with_md({"risk-tier": "limited"}))
	count(risk.violations) == 2 with input as inp with data.modelgate.config.certified_tiers as ["limited", "high"]
}
