"""Built-in check kinds, one per module; importing this package registers them all."""

from gates.checks import (  # noqa: F401  (imported to register the kinds)
    ci_green,
    dataset_files,
    file_exists,
    file_sections,
    issue_linked,
    issue_sections,
    metric_threshold,
    mlflow_version,
    monitoring_config,
    monitoring_signal,
    run_commit,
    validation_report,
)
from gates.checks.base import KINDS, CheckKind, Finding, Location

__all__ = ["KINDS", "CheckKind", "Finding", "Location"]
