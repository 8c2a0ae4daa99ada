# METADATA
# title: Enforcement mode
# description: |
#   enforce (default), warn (violations become warnings) or off. An explicit input.enforcement
#   wins over the namespace label modelgate.dev/enforcement.
package modelgate.enforcement

import data.modelgate.config
import data.modelgate.lib

label_value := input.namespace.labels[config.enforcement_label]

known(m) if m in config.enforcement_modes

default mode := "enforce"

mode := input.enforcement if known(input.enforcement)

mode := label_value if {
	not known(input.enforcement)
	known(label_value)
}

mode := config.default_enforcement if {
	not known(input.enforcement)
	not known(label_value)
}

# A namespace label with a value modelgate does not know is reported, and the default applies.
warnings contains msg if {
	not known(input.enforcement)
	not known(label_value)
	is_string(label_value)
	msg := concat("", [
		"namespace label \"", config.enforcement_label, "\" has unknown value ", lib.shown(label_value),
		": use one of ", concat(", ", config.enforcement_modes), " (applying \"", mode, "\")",
	])
}
