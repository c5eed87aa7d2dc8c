"""Edges to outside systems (GitHub, Slack, MLflow, monitoring): inbound, evidence, actions."""
