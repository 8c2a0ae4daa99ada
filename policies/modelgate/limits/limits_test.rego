package modelgate.limits_test

import data.modelgate.admission
import data.modelgate.limits
import data.modelgate.testing

# what policies/limits.py hands over for a training-data value of 30,000 bytes: the value
# itself is removed from the metadata
oversized_training_data := object.union(
	testing.model(testing.without_md(["training-data"])),
	{"limits_exceeded": [{"field": "training-data", "limit": "value_bytes", "actual": 30000, "maximum": 8192}]},
)

test_value_over_its_byte_limit_denied_naming_the_field if {
	limits.violations == {"annotation \"modelgate.dev/training-data\" is 30000 bytes, over the limit of 8192 bytes (data.modelgate.config.limits): shorten it; its value was not evaluated"} with input as oversized_training_data
}

test_field_kept_out_by_a_limit_is_not_also_reported_missing if {
	admission.deny == {"annotation \"modelgate.dev/training-data\" is 30000 bytes, over the limit of 8192 bytes (data.modelgate.config.limits): shorten it; its value was not evaluated"} with input as oversized_training_data
}

test_over_limit_in_warn_namespace_warns_not_denies if {
	inp := object.union(oversized_training_data, {"enforcement": "warn"})
	admission.deny == set() with input as inp
	count(admission.warn) == 1 with input as inp
}

test_json_nested_too_deep_denied_naming_the_field if {
	inp := object.union(
		testing.model(testing.compliant),
		{"limits_exceeded": [{"field": "metrics", "limit": "json_depth", "actual": 4500, "maximum": 16}]},
	)
	limits.violations == {"annotation \"modelgate.dev/metrics\" nests JSON 4500 levels deep, over the limit of 16 (data.modelgate.config.limits): flatten it; its value was not evaluated"} with input as inp
}

test_total_over_its_limit_denied_naming_the_largest_fields_only if {
	inp := object.union(
		testing.model({}),
		{"limits_exceeded": [{"field": "", "limit": "total_bytes", "actual": 40000, "maximum": 32768, "largest": ["owner", "metrics"]}]},
	)
	admission.deny == {"the \"modelgate.dev/*\" metadata is 40000 bytes in all, over the limit of 32768 bytes (data.modelgate.config.limits); the largest values are \"modelgate.dev/owner\", \"modelgate.dev/metrics\": shorten them; the metadata was not evaluated"} with input as inp
}

test_non_model_over_a_limit_allowed_untouched if {
	inp := object.union(testing.unlabelled("Deployment", ["nginx:1.27"]), {"limits_exceeded": [{"field": "owner", "limit": "value_bytes", "actual": 9000, "maximum": 4096}]})
	admission.deny == set() with input as inp
	admission.warn == set() with input as inp
}

test_more_certifications_than_the_limit_denied_without_judging_entries if {
	certs := concat("", ["[", concat(",", [`{"name": "old", "expires": "2020-01-01"}` | some _ in numbers.range(1, 101)]), "]"])
	inp := testing.model(testing.high_risk(certs))
	admission.deny == {"annotation \"modelgate.dev/certifications\" lists 101 certifications, more than the limit of 100 (data.modelgate.config.limits): keep the current ones; its entries were not evaluated"} with input as inp
	admission.warn == set() with input as inp
}

test_certifications_up_to_the_limit_judged_one_by_one if {
	certs := concat("", ["[", concat(",", [concat("", [`{"name": "c`, format_int(i, 10), `", "expires": "2020-01-01"}`]) | some i in numbers.range(1, 100)]), "]"])
	inp := testing.model(testing.high_risk(certs))
	count(admission.warn) == 100 with input as inp
	count(admission.deny) == 1 with input as inp
}
