"""Evaluation speed of the default gates, compared with the same gate in Rego (regopy).

Prints figures; never fails on time. Run: python bench/evaluate.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from gates.evaluate import evaluate
from gates.evidence import Evidence
from gates.loader import load_or_raise, load_policies
from gates.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "churn-model"


def per_call(fn, rounds: int) -> float:
    """Median seconds per call over 5 batches of ``rounds`` calls."""
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        batches.append((time.perf_counter() - start) / rounds)
    return statistics.median(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()

    load_s = per_call(lambda: load_policies(ROOT / "policies"), 10)
    print(f"load + validate policies/ : {load_s * 1e3:8.1f} ms   (target ≤ 300 ms)")

    policies = load_or_raise(ROOT / "policies")
    print("\nper gate evaluation (evidence snapshot already built; CEL compiled once):")
    totals = []
    for gate_id, gate in policies.gates.items():
        scenario = load_scenario(EXAMPLES / f"{gate_id}.passed.json")
        evidence, approvals, waivers, now = (
            scenario.evidence,
            scenario.approvals,
            scenario.waivers,
            scenario.now,
        )
        seconds = per_call(
            lambda g=gate, e=evidence, a=approvals, w=waivers, n=now: evaluate(
                g, e, a, w, n, policies
            ),
            args.rounds,
        )
        totals.append(seconds)
        checks = len(gate.nodes())
        print(f"  {gate_id:<26} {seconds * 1e6:8.1f} µs  ({checks} checks, {1 / seconds:,.0f}/s)")
    print(f"  {'mean':<26} {statistics.mean(totals) * 1e6:8.1f} µs   (target ≤ 50 µs)")

    raw = json.loads((EXAMPLES / "model-packaged.passed.json").read_text())["evidence"]
    gate = policies.gates["model-packaged"]
    scenario = load_scenario(EXAMPLES / "model-packaged.passed.json")
    fresh = [Evidence.model_validate(raw) for _ in range(args.rounds)]
    start = time.perf_counter()
    for evidence in fresh:
        evaluate(gate, evidence, scenario.approvals, [], scenario.now, policies)
    cold = (time.perf_counter() - start) / len(fresh)
    print(f"\nmodel-packaged on a fresh snapshot (first gate of an event): {cold * 1e6:.1f} µs")

    def from_json() -> None:
        evidence = Evidence.model_validate(raw)
        evaluate(gate, evidence, scenario.approvals, [], scenario.now, policies)

    print(
        f"  ... including validating the evidence JSON into a snapshot: {per_call(from_json, args.rounds // 4) * 1e6:.1f} µs"
    )

    try:
        from regopy import Interpreter
    except ImportError:
        print("\nregopy not installed (pip install -e '.[dev]'): Rego comparison skipped")
        return
    rego = Interpreter()
    rego.add_module("model_packaged", (Path(__file__).parent / "model_packaged.rego").read_text())
    document = json.dumps(raw)

    def rego_query() -> None:
        rego.set_input_term(document)
        rego.query("data.phasegate.model_packaged.failing")

    rego_query()
    print(f"rego says failing: {rego.query('data.phasegate.model_packaged.failing')}")
    ours = per_call(
        lambda: evaluate(gate, scenario.evidence, scenario.approvals, [], scenario.now, policies),
        args.rounds,
    )
    theirs = per_call(rego_query, max(50, args.rounds // 20))
    print(f"model-packaged, phasegate: {ours * 1e6:8.1f} µs")
    print(f"model-packaged, regopy   : {theirs * 1e6:8.1f} µs  (same checks in Rego)")
    print(f"ratio regopy / phasegate : {theirs / ours:8.1f} times")


if __name__ == "__main__":
    main()
