"""MLflow: registry evidence over REST, and the registry webhooks (MLflow >= 3.3)."""
