"""Monitoring: Alertmanager and Grafana alert webhooks, Evidently reports, and the evidence they make."""
