"""The ``phasegate`` command and its settings."""
