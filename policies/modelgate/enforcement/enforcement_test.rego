package modelgate.enforcement_test

import data.modelgate.enforcement
import data.modelgate.testing

test_no_label_defaults_to_enforce if {
	inp := testing.model(testing.compliant)
	enforcement.mode == "enforce" with input as inp
}

test_namespace_label_warn_selects_warn if {
	inp := testing.in_namespace(testing.compliant, {"modelgate.dev/enforcement": "warn"})
	enforcement.mode == "warn" with input as inp
}

test_namespace_label_off_selects_off if {
	inp := testing.in_namespace(testing.compliant, {"modelgate.dev/enforcement": "off"})
	enforcement.mode == "off" with input as inp
}

test_explicit_override_wins_over_label if {
	inp := object.union(
		testing.in_namespace(testing.compliant, {"modelgate.dev/enforcement": "off"}),
		{"enforcement": "enforce"},
	)
	enforcement.mode == "enforce" with input as inp
}

test_unknown_label_value_enforces_and_warns if {
	inp := testing.in_namespace(testing.compliant, {"modelgate.dev/enforcement": "relaxed"})
	enforcement.mode == "enforce" with input as inp
	enforcement.warnings == {"namespace label \"modelgate.dev/enforcement\" has unknown value \"relaxed\": use one of enforce, warn, off (applying \"enforce\")"} with input as inp
}

test_unknown_override_falls_back_to_label if {
	inp := object.union(
		testing.in_namespace(testing.compliant, {"modelgate.dev/enforcement": "warn"}),
		{"enforcement": "bogus"},
	)
	enforcement.mode == "warn" with input as inp
}

test_known_label_has_no_warning if {
	inp := testing.in_namespace(testing.compliant, {"modelgate.dev/enforcement": "warn"})
	count(enforcement.warnings) == 0 with input as inp
}
