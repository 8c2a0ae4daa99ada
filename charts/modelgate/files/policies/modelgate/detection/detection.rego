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

# The workload's images that match a known model-server pattern.
server_images contains image if {
	some image in input.workload.images
	some pattern in config.model_server_images
	regex.match(pattern, lower(image))
}
