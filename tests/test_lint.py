"""Lint and format are part of the suite, so `pytest` alone tells whether a change is ready."""

from __future__ import annotations

import subprocess

import pytest

from tests.paths import ROOT


@pytest.mark.parametrize("command", [["ruff", "check", "."], ["ruff", "format", "--check", "."]])
def test_ruff(command):
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
