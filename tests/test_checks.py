"""Built-in check kinds, each against the evidence shapes it meets in real repositories."""

from __future__ import annotations

import json

import pytest

from gates.checks import KINDS
from gates.evidence import Evidence


def run(kind: str, params: dict, **evidence):
    check = KINDS[kind]
    return check.run(
        check.params.model_validate(params),
        Evidence.model_validate({"project": {"key": "p"}, **evidence}),
    )


def files(**contents) -> dict:
    return {path: {"path": path, "content": text} for path, text in contents.items()}


def issue(**kw) -> dict:
    return {"number": 1, "labels": ["Ask"], **kw}


class TestIssueSections:
    def test_filled_sections_pass(self):
        finding = run(
            "issue_sections",
            {"label": "ask", "sections": ["Goal"]},
            github={"issues": [issue(sections={"goal:": "Cut churn by 10%"})]},
        )
        assert finding.ok  # label and heading match regardless of case and trailing colon

    @pytest.mark.parametrize("body", ["", "_No response_", "TBD", "<!-- describe -->"])
    def test_empty_answers_do_not_count(self, body):
        finding = run(
            "issue_sections",
            {"label": "Ask", "sections": ["Goal"]},
            github={"issues": [issue(sections={"Goal": body})]},
        )
        assert not finding.ok and finding.found == "#1: 'Goal' is empty"

    def test_template_placeholder_does_not_count(self):
        finding = run(
            "issue_sections",
            {"label": "Ask", "sections": ["Goal"]},
            github={
                "issues": [
                    issue(
                        sections={"Goal": "Describe  the goal."},
                        template={"Goal": "Describe the goal."},
                    )
                ]
            },
        )
        assert finding.found == "#1: 'Goal' is still the template text"

    def test_missing_issue_and_section(self):
        assert run("issue_sections", {"label": "Ask"}).found == "no issue labelled Ask"
        finding = run(
            "issue_sections", {"label": "Ask", "sections": ["Risks"]}, github={"issues": [issue()]}
        )
        assert finding.found == "#1: 'Risks' is missing"

    def test_checkboxes(self):
        boxes = [
            {"text": "Privacy review", "checked": True},
            {"text": "Legal review", "checked": False},
        ]
        ev = {"github": {"issues": [issue(checkboxes=boxes)]}}
        assert run("issue_sections", {"label": "Ask", "checkboxes": ["privacy review"]}, **ev).ok
        finding = run("issue_sections", {"label": "Ask", "checkboxes": "all"}, **ev)
        assert finding.found == "#1: box 'Legal review' is not ticked"


class TestIssueLinked:
    PARAMS = {"label": "Ask", "to_label": "Data"}

    def test_the_ask_links_a_data_issue(self):
        issues = [
            issue(links=[7, 2], url="https://github.com/acme/x/issues/1"),
            {"number": 2, "labels": ["Data"]},
        ]
        finding = run("issue_linked", self.PARAMS, github={"issues": issues})
        assert finding.ok and finding.found == "#1 links #2"
        assert finding.source == "https://github.com/acme/x/issues/1"

    def test_links_to_other_issues_or_none_fail_with_what_was_found(self):
        others = [issue(links=[3, 4]), {"number": 3, "labels": ["Experiment"]}]
        finding = run("issue_linked", self.PARAMS, github={"issues": others})
        assert not finding.ok
        assert finding.expected == "the Ask issue links a Data issue"
        assert finding.found == "#1 links #3, #4, none labelled Data"
        alone = run("issue_linked", self.PARAMS, github={"issues": [issue()]})
        assert alone.found == "#1 links no issue"
        nothing = run("issue_linked", self.PARAMS, github={"issues": []})
        assert nothing.found == "no issue labelled Ask"

    def test_any_ask_with_a_link_counts_and_labels_ignore_case(self):
        issues = [
            issue(number=1),
            issue(number=5, labels=["ask"], links=[9]),
            {"number": 9, "labels": ["DATA"]},
        ]
        assert run("issue_linked", self.PARAMS, github={"issues": issues}).found == "#5 links #9"


class TestFiles:
    def test_glob_and_parse(self):
        ev = {"files": files(**{"conf/a.json": '{"x": 1}', "conf/b.json": '{"x": '})}
        assert run("file_exists", {"paths": ["conf/*.json"]}, **ev).ok
        finding = run("file_exists", {"paths": ["conf/*.json"], "parses": "json"}, **ev)
        assert not finding.ok and finding.location.path == "conf/b.json"
        assert run("file_exists", {"paths": ["conf/*.yaml"]}, **ev).found == "missing: conf/*.yaml"

    @pytest.mark.parametrize(("char", "code"), [("\x00", "U+0000"), ("\x1b", "U+001B")])
    def test_a_control_character_in_yaml_is_a_finding_not_a_crash(self, char, code):
        ev = {"files": files(**{"conf/a.yaml": f"a: 1\nb: x{char}y\n"})}
        finding = run("file_exists", {"paths": ["conf/a.yaml"], "parses": "yaml"}, **ev)
        assert not finding.ok
        assert finding.found.startswith(
            f"conf/a.yaml line 2: invalid YAML: control character {code} is not allowed in YAML"
        )
        assert (finding.location.path, finding.location.line) == ("conf/a.yaml", 2)

    def test_star_does_not_cross_folders_but_double_star_does(self):
        ev = {"files": files(**{"tests/data/deep/test_x.py": ""})}
        assert not run("file_exists", {"paths": ["tests/*.py"]}, **ev).ok
        assert run("file_exists", {"paths": ["tests/**/test_*.py"]}, **ev).ok

    def test_deleted_file_does_not_exist(self):
        ev = {"files": {"a.md": {"path": "a.md", "exists": False}}}
        assert not run("file_exists", {"paths": ["a.md"]}, **ev).ok

    def test_dataset_folders(self):
        ev = {
            "files": files(
                **{"data/a/datasheet.md": "", "data/a/schema.json": "", "data/b/datasheet.md": ""}
            )
        }
        finding = run(
            "dataset_files", {"folders": "data/*", "require": ["datasheet.md", "schema.*"]}, **ev
        )
        assert finding.found == "data/b lacks schema.*"
        assert run("dataset_files", {"folders": "datasets/*", "require": ["x"]}, **ev).found == (
            "no dataset folder matches datasets/*"
        )

    def test_dataset_folders_at_the_globs_depth_or_any_depth(self):
        ev = {"files": files(**{"data/raw/c/datasheet.md": "", "data/raw/schema.json": ""})}
        params = {"folders": "data/*", "require": ["schema.json"]}
        assert run("dataset_files", params, **ev).found == "1 dataset(s) documented: data/raw"
        deep = run("dataset_files", {**params, "folders": "data/**"}, **ev)
        assert deep.found == "data/raw/c lacks schema.json"

    def test_markdown_sections_point_at_the_empty_heading(self):
        card = "# Card\n\n## Intended use\nScoring.\n\n## Caveats\n\n## Owner\nana\n"
        finding = run(
            "file_sections",
            {"path": "card.md", "sections": ["Intended use", "Caveats"]},
            files=files(**{"card.md": card}),
        )
        assert finding.found == "'Caveats' is empty"
        assert (finding.location.path, finding.location.line) == ("card.md", 6)


class TestValidationReport:
    def test_great_expectations_checkpoint_result(self):
        report = {
            "success": False,
            "run_results": {
                "r": {
                    "validation_result": {
                        "results": [
                            {
                                "success": True,
                                "expectation_config": {"type": "expect_column_to_exist"},
                            },
                            {
                                "success": False,
                                "expectation_config": {
                                    "type": "expect_column_values_to_not_be_null",
                                    "kwargs": {"column": "id"},
                                },
                            },
                        ]
                    }
                }
            },
        }
        finding = run(
            "validation_report",
            {"path": "r/*.json"},
            files=files(**{"r/1.json": json.dumps(report)}),
        )
        assert finding.found == (
            "r/1.json: Great Expectations: 1 of 2 expectation(s) failed: expect_column_values_to_not_be_null(id)"
        )

    def test_evidently_test_suite(self):
        report = {
            "tests": [
                {"name": "Share of drifted columns", "status": "FAIL"},
                {"name": "Rows", "status": "SUCCESS"},
            ]
        }
        finding = run(
            "validation_report", {"path": "r.json"}, files=files(**{"r.json": json.dumps(report)})
        )
        assert finding.found == "r.json: Evidently: 1 of 2 test(s) failed: Share of drifted columns"
        report["tests"][0]["status"] = "SUCCESS"
        assert run(
            "validation_report", {"path": "r.json"}, files=files(**{"r.json": json.dumps(report)})
        ).ok

    @pytest.mark.parametrize(
        "report",
        [
            {"success": False, "run_results": [1], "results": ["x", {"success": False}]},
            {"success": False, "run_results": {"r": "x"}, "results": {"a": 1}},
            {"success": False, "results": [{"expectation_config": ["odd"]}]},
            {"tests": ["x", {"name": "Rows", "status": "FAIL"}]},
        ],
    )
    def test_an_oddly_shaped_report_fails_with_reason(self, report):
        finding = run(
            "validation_report", {"path": "r.json"}, files=files(**{"r.json": json.dumps(report)})
        )
        assert not finding.ok and finding.found.startswith("r.json: ")
        assert "failed" in finding.found

    def test_unknown_format_fails_with_reason(self):
        finding = run("validation_report", {"path": "r.json"}, files=files(**{"r.json": "[1, 2]"}))
        assert finding.found == "r.json: not a Great Expectations or Evidently result"


class TestModel:
    VERSION = {
        "name": "m",
        "version": "2",
        "status": "READY",
        "signature": {"inputs": [{"name": "x"}]},
        "has_input_example": True,
        "environment": ["conda.yaml"],
    }

    def test_version_packaged(self):
        assert run("mlflow_version", {}, mlflow={"version": self.VERSION}).ok
        pending = {**self.VERSION, "status": "PENDING_REGISTRATION", "environment": []}
        finding = run("mlflow_version", {}, mlflow={"version": pending})
        assert finding.found.startswith("m v2: status PENDING_REGISTRATION; no environment spec")
        assert run("mlflow_version", {}).found == "no model version registered for this project"

    def test_metric_lower_is_better_against_champion(self):
        ev = {
            "ask": {"primary_metric": {"name": "rmse", "threshold": 10, "direction": "lower"}},
            "mlflow": {
                "run": {"id": "r", "metrics": {"rmse": 8.0}},
                "champion": {"version": "1", "metrics": {"rmse": 7.5}},
            },
        }
        finding = run("metric_threshold", {}, **ev)
        assert not finding.ok and finding.expected == "rmse ≤ 10 and ≤ champion v1 (7.5)"
        assert run("metric_threshold", {"beat_champion": False}, **ev).ok

    def test_metric_needs_an_ask_metric(self):
        assert run("metric_threshold", {}).found == "the Ask states no primary metric"

    def test_run_commit(self):
        ev = {
            "github": {"pull_request": {"number": 1, "head_sha": "abc123def"}},
            "mlflow": {"run": {"id": "r", "tags": {"mlflow.source.git.commit": "abc123def"}}},
        }
        assert run("run_commit", {}, **ev).ok
        ev["mlflow"]["run"]["tags"]["mlflow.source.git.commit"] = "fff000"
        assert run("run_commit", {}, **ev).found == "run r trained from fff000"


class TestMonitoringAndCi:
    CONFIG = "model: m\nowner: o\nalert_channel: '#a'\nmetrics: [auc]\ndrift: [x]\nthresholds: {auc: 0.8}\nretraining: weekly\nrollback: m@prev\n"

    def test_config_complete_for_the_project_model(self):
        ev = {
            "project": {"key": "p", "models": ["m"]},
            "files": files(**{"monitoring/config.yaml": self.CONFIG}),
        }
        assert run("monitoring_config", {"path": "monitoring/config.yaml"}, **ev).ok
        ev["project"]["models"] = ["other"]
        assert (
            "monitors 'm'"
            in run("monitoring_config", {"path": "monitoring/config.yaml"}, **ev).found
        )

    def test_config_missing_keys_and_broken_yaml(self):
        ev = {"files": files(**{"mon.yaml": "model: m\nowner: o\n"})}
        assert (
            "lacks alert_channel, metrics"
            in run("monitoring_config", {"path": "mon.yaml"}, **ev).found
        )
        ev = {"files": files(**{"mon.yaml": "model: m\n  owner: [\n"})}
        finding = run("monitoring_config", {"path": "mon.yaml"}, **ev)
        assert "invalid YAML" in finding.found and finding.location.line == 2

    def test_signal(self):
        assert not run("monitoring_signal", {}).ok
        ev = {
            "monitoring": {"signals": [{"kind": "report", "received_at": "2026-11-01T10:00:00Z"}]}
        }
        assert (
            run("monitoring_signal", {}, **ev).found
            == "1 received, first report at 2026-11-01 10:00Z"
        )

    def test_ci_green(self):
        checks = [
            {"name": "tests", "conclusion": "success"},
            {"name": "phasegate / model-packaged", "status": "in_progress"},
        ]
        assert run("ci_green", {}, github={"checks": checks}).ok  # its own check is ignored
        assert (
            run("ci_green", {"required": ["lint"]}, github={"checks": checks}).found
            == "lint did not run"
        )
        checks.append({"name": "lint", "status": "in_progress"})
        assert run("ci_green", {}, github={"checks": checks}).found == "lint still running"
        checks.append({"name": "e2e", "conclusion": "timed_out"})
        assert run("ci_green", {}, github={"checks": checks}).found == "e2e (timed_out) failed"
        assert run("ci_green", {}).found == "no CI checks on the commit"
