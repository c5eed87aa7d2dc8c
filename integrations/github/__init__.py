"""GitHub: inbound webhooks (and, later, evidence and check-run actions)."""
