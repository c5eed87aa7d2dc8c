"""Evaluation speed of the default gates, compared with the same gate in Rego (regopy).

Times are CPU time of this process (``time.process_time``), so that other processes on a
shared machine do not count. Prints figures; never fails on time.
Run: python bench/evaluate.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from gates.evaluate import evaluate
from gates.evidence import Evidence, gate_digest
from gates.loader import load_or_raise, load_policies
from gates.policy import Gate, Scenario
from gates.records import Approval
from gates.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "churn-model"


def per_call(fn, rounds: int) -> float:
    """Median seconds per call over 5 batches of ``rounds`` calls."""
    batches = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(rounds):
            fn()
        batches.append((time.process_time() - start) / rounds)
    return statistics.median(batches)


def bound_approvals(scenario: Scenario, gate: Gate) -> list[Approval]:
    """The scenario's approvals as given on its evidence, as ``phasegate check`` counts them."""
    digest = gate_digest(scenario.evidence, gate.reads)
    return [a.model_copy(update={"digest": a.digest or digest}) for a in scenario.approvals]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()

    load_s = per_call(lambda: load_policies(ROOT / "policies"), 10)
    print(f"load + validate policies/ : {load_s * 1e3:8.1f} ms   (target ≤ 300 ms)")

    policies = load_or_raise(ROOT / "policies")
    print(
        "\nper gate evaluation, on each gate's passing example (approvals bound to its evidence):"
        "\n  warm  = the same snapshot again: its JSON form, digests and CEL binding are reused,"
        "\n          as when one event evaluates several gates (CEL compiled once)"
        "\n  fresh = a new snapshot (validated beforehand): what the first gate of an event pays"
    )
    print(f"  {'gate':<26} {'warm':>9} {'fresh':>9}  checks")
    warm_all, fresh_all = [], []
    for gate_id, gate in policies.gates.items():
        scenario = load_scenario(EXAMPLES / f"{gate_id}.passed.json")
        raw = json.loads((EXAMPLES / f"{gate_id}.passed.json").read_text())["evidence"]
        approvals = bound_approvals(scenario, gate)
        result = evaluate(
            gate, scenario.evidence, approvals, scenario.waivers, scenario.now, policies
        )
        assert result.status == "passed", f"{gate_id}: {result.summary}"
        warm = per_call(
            lambda g=gate, s=scenario, a=approvals: evaluate(
                g, s.evidence, a, s.waivers, s.now, policies
            ),
            args.rounds,
        )
        snapshots = [Evidence.model_validate(raw) for _ in range(args.rounds)]
        start = time.process_time()
        for evidence in snapshots:
            evaluate(gate, evidence, approvals, scenario.waivers, scenario.now, policies)
        fresh = (time.process_time() - start) / len(snapshots)
        warm_all.append(warm)
        fresh_all.append(fresh)
        print(f"  {gate_id:<26} {warm * 1e6:7.1f} µs {fresh * 1e6:7.1f} µs  {len(gate.nodes())}")
    print(
        f"  {'mean':<26} {statistics.mean(warm_all) * 1e6:7.1f} µs "
        f"{statistics.mean(fresh_all) * 1e6:7.1f} µs  (target ≤ 50 µs warm)"
    )

    raw = json.loads((EXAMPLES / "model-packaged.passed.json").read_text())["evidence"]
    gate = policies.gates["model-packaged"]
    scenario = load_scenario(EXAMPLES / "model-packaged.passed.json")
    approvals = bound_approvals(scenario, gate)

    def from_json() -> None:
        evidence = Evidence.model_validate(raw)
        evaluate(gate, evidence, approvals, [], scenario.now, policies)

    print(
        "\nmodel-packaged from the evidence JSON (validating it into a snapshot, then fresh): "
        f"{per_call(from_json, args.rounds // 4) * 1e6:.1f} µs"
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
        lambda: evaluate(gate, scenario.evidence, approvals, [], scenario.now, policies),
        args.rounds,
    )
    theirs = per_call(rego_query, max(50, args.rounds // 20))
    print(f"model-packaged, phasegate: {ours * 1e6:8.1f} µs")
    print(f"model-packaged, regopy   : {theirs * 1e6:8.1f} µs  (same checks in Rego)")
    print(f"ratio regopy / phasegate : {theirs / ours:8.1f} times")


if __name__ == "__main__":
    main()
