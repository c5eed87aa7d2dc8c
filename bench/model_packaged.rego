# The model-packaged gate of policies/gates/model-packaged.yaml, written in Rego, for
# bench/evaluate.py to compare evaluation cost on the same input. Approvals are left out on
# both sides' comparison input (the check tree is what is compared).
package phasegate.model_packaged

import rego.v1

version := input.mlflow.version

run := input.mlflow.run

metric := input.ask.primary_metric.name

failing contains "version-packaged" if {
	not version_packaged
}

version_packaged if {
	version.status == "READY"
	count(version.signature.inputs) > 0
	version.has_input_example
	count(version.environment) > 0
}

failing contains "trained-from-pr" if {
	input.github.pull_request != null
	run.tags["mlflow.source.git.commit"] != input.github.pull_request.head_sha
}

failing contains "primary-metric" if {
	run.metrics[metric] < input.ask.primary_metric.threshold
}

failing contains "primary-metric" if {
	run.metrics[metric] < input.mlflow.champion.metrics[metric]
}

failing contains "no-pii-inputs" if {
	some c in version.signature.inputs
	c.name in {"email", "phone", "ssn", "customer_name", "address"}
}

required_sections := ["Model details", "Intended use", "Training data", "Evaluation", "Ethical considerations", "Caveats and recommendations"]

failing contains "model-card" if {
	card := input.files["docs/model_card.md"].content
	some section in required_sections
	not contains(card, concat("", ["## ", section]))
}

failing contains "ci-green" if {
	some check in input.github.checks
	not startswith(check.name, "phasegate")
	check.status == "completed"
	not check.conclusion in {"success", "neutral", "skipped"}
}

passed if count(failing) == 0
