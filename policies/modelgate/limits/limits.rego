# METADATA
# title: Size limits of the modelgate metadata
# description: |
#   modelgate checks its own metadata against data.modelgate.config.limits before the policy
#   is evaluated (policies/limits.py): a value over its byte limit or its JSON nesting limit,
#   or metadata over the total byte limit, never reaches the other rules. The engine removes
#   such values from input.workload.metadata and lists them in input.limits_exceeded; this
#   concern turns every entry into a violation naming the field.
package modelgate.limits

import data.modelgate.lib

violations contains msg if {
	some entry in object.get(input, "limits_exceeded", [])
	entry.limit == "value_bytes"
	msg := concat("", [
		"annotation ", lib.q(lib.key(entry.field)), " is ", format_int(entry.actual, 10),
		" bytes, over the limit of ", format_int(entry.maximum, 10),
		" bytes (data.modelgate.config.limits): shorten it; its value was not evaluated",
	])
}

violations contains msg if {
	some entry in object.get(input, "limits_exceeded", [])
	entry.limit == "json_depth"
	msg := concat("", [
		"annotation ", lib.q(lib.key(entry.field)), " nests JSON ", format_int(entry.actual, 10),
		" levels deep, over the limit of ", format_int(entry.maximum, 10),
		" (data.modelgate.config.limits): flatten it; its value was not evaluated",
	])
}

violations contains msg if {
	some entry in object.get(input, "limits_exceeded", [])
	entry.limit == "total_bytes"
	msg := concat("", [
		"the ", lib.q(concat("", [lib.key(""), "*"])), " metadata is ", format_int(entry.actual, 10),
		" bytes in all, over the limit of ", format_int(entry.maximum, 10),
		" bytes (data.modelgate.config.limits); the largest values are ",
		concat(", ", [lib.q(lib.key(f)) | some f in entry.largest]),
		": shorten them; the metadata was not evaluated",
	])
}

violations contains msg if {
	count(lib.parsed_certifications) > lib.max_certifications
	msg := concat("", [
		"annotation ", lib.q(lib.key("certifications")), " lists ", format_int(count(lib.parsed_certifications), 10),
		" certifications, more than the limit of ", format_int(lib.max_certifications, 10),
		" (data.modelgate.config.limits): keep the current ones; its entries were not evaluated",
	])
}
