# METADATA
# title: Model detection
# description: |
#   A workload is a model workload when it carries the label modelgate.dev/model=true,
#   is one of the model kinds (KServe InferenceService, Seldon SeldonDeployment) or runs a
#   known model-server image (data.modelgate.config.model_server_images).
package modelgate.detection

import data.modelgate.config

default is_model := false

is_model if count(reasons) > 0

reasons contains "label" if input.workload.model_label == true

reasons contains "kind" if input.workload.kind in config.model_kinds

reasons contains "image" if count(server_images) > 0

# The workload's images that match a known model-server pattern (an array: a set of many
# distinct strings costs rego-cpp time quadratic in its size).
server_images := [image |
	some image in input.workload.images
	regex.match(server_pattern, lower(image))
]

# All patterns as one alternation: one regular expression per image instead of one per
# pattern and image (rego-cpp compiles a pattern at every call); it matches exactly when
# one of the patterns does.
server_pattern := concat("|", [concat("", ["(?:", p, ")"]) | some p in config.model_server_images])
