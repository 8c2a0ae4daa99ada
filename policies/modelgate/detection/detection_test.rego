package modelgate.detection_test

import data.modelgate.detection
import data.modelgate.testing

test_model_label_is_model if {
	inp := testing.model({})
	detection.is_model with input as inp
	detection.reasons == {"label"} with input as inp
}

test_plain_deployment_without_label_is_not_model if {
	inp := testing.unlabelled("Deployment", ["nginx:1.27", "busybox:1.36"])
	not detection.is_model with input as inp
}

test_inference_service_is_model if {
	inp := testing.unlabelled("InferenceService", [])
	detection.is_model with input as inp
	detection.reasons == {"kind"} with input as inp
}

test_seldon_deployment_is_model if {
	inp := testing.unlabelled("SeldonDeployment", [])
	detection.is_model with input as inp
}

test_known_model_server_images_are_models if {
	images := [
		"nvcr.io/nvidia/tritonserver:24.08-py3",
		"vllm/vllm-openai:v0.6.3",
		"ghcr.io/huggingface/text-generation-inference:2.4.0",
		"pytorch/torchserve:0.12.0-cpu",
		"tensorflow/serving:2.17.0",
		"docker.io/seldonio/mlserver:1.6.1",
		"seldonio/sklearnserver:1.18.0",
		"kserve/sklearnserver:v0.14.0",
		"kserve/huggingfaceserver:v0.14.0",
		"bentoml/model-server:1.3.0",
		"registry.example.com/mlflow-serving:2.17",
		"openvino/model_server:2024.4",
	]
	detected := {image |
		some image in images
		inp := testing.unlabelled("Deployment", ["busybox:1.36", image])
		detection.is_model with input as inp
	}
	detected == {image | some image in images}
}

test_model_server_image_match_ignores_case if {
	inp := testing.unlabelled("Deployment", ["NVCR.IO/NVIDIA/TritonServer:24.08-py3"])
	detection.server_images == ["NVCR.IO/NVIDIA/TritonServer:24.08-py3"] with input as inp
}

test_operator_and_controller_images_are_not_models if {
	inp := testing.unlabelled("Deployment", ["seldonio/seldon-core-operator:1.18.0", "kserve/kserve-controller:v0.14.0"])
	not detection.is_model with input as inp
}

test_image_patterns_come_from_data if {
	inp := testing.unlabelled("Deployment", ["registry.example.com/acme/predictor:3"])
	not detection.is_model with input as inp
	detection.is_model with input as inp with data.modelgate.config.model_server_images as ["/acme/predictor(:|@|$)"]
}

test_label_false_without_other_signal_is_not_model if {
	inp := testing.unlabelled("Job", ["python:3.12"])
	not detection.is_model with input as inp
	detection.reasons == set() with input as inp
}

test_image_matching_any_one_pattern_of_several_is_a_model if {
	inp := testing.unlabelled("Deployment", ["registry.example.com/team/predictor:2"])
	detection.is_model with input as inp with data.modelgate.config.model_server_images as ["^never$", "(^|/)predictor(:|@|$)", "^(a|b)$"]
	not detection.is_model with input as testing.unlabelled("Deployment", ["nginx:1.27"]) with data.modelgate.config.model_server_images as ["^never$", "(^|/)predictor(:|@|$)"]
}
