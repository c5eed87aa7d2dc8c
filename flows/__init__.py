"""Prefect flows: orchestration only; policy logic lives in ``gates``, I/O in ``integrations``."""
