"""MLflow: model-registry webhooks (and, later, registry evidence)."""
