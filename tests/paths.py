"""Where the repository's shipped files are, for tests."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
EXAMPLES = ROOT / "examples" / "churn-model"
