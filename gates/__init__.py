"""The gate engine: policy model, evidence, evaluation, lifecycle and store.

Nothing in this package imports from ``flows`` or ``integrations``: evaluation is a pure
function over an evidence snapshot, so it can be tested and explained without any server.
"""
