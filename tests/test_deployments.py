"""prefect.yaml (for `prefect deploy --all`) and `phasegate serve` declare the same deployments."""

from __future__ import annotations

import importlib

from ruamel.yaml import YAML

from flows.deployments import deployments
from tests.paths import ROOT


def declared() -> dict[str, dict]:
    document = YAML(typ="safe", pure=True).load((ROOT / "prefect.yaml").read_text())
    return {d["name"]: d for d in document["deployments"]}


def test_prefect_yaml_matches_the_served_deployments():
    yaml_deployments = declared()
    served = {d.name: d for d in deployments()}
    assert set(yaml_deployments) == set(served) == {"process-inbox", "deliver-outbox", "reconcile"}
    for name, entry in yaml_deployments.items():
        module, _, attribute = entry["entrypoint"].partition(":")
        flow = getattr(
            importlib.import_module(module.removesuffix(".py").replace("/", ".")), attribute
        )
        deployment = served[name]
        assert flow.name == deployment.flow_name
        expected = sorted(e for t in entry.get("triggers", []) for e in t["expect"])
        assert sorted(e for t in deployment.triggers for e in t.expect) == expected
        intervals = sorted(s["interval"] for s in entry.get("schedules", []))
        assert (
            sorted(s.schedule.interval.total_seconds() for s in deployment.schedules) == intervals
        )
        assert deployment.concurrency_limit == entry["concurrency_limit"]["limit"] == 1
