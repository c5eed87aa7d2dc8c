"""Slack: interaction payloads (and, later, approval messages)."""
