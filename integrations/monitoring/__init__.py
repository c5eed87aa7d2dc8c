"""Monitoring: Alertmanager and Grafana alert webhooks."""
