"""Extract the part of GitHub's OpenAPI description that tests/fake_github.py implements.

GitHub publishes its REST API description on npm as `@octokit/openapi`
(`generated/api.github.com.json`, ~13 MB). The fake GitHub must validate what phasegate sends
and answer in GitHub's own shapes, so it needs the request schemas, the documented limits and
the example responses of the operations it serves -- but not the whole file. This script cuts
those out into `tests/fixtures/github-openapi-subset.json`, which is committed; rerun it to move
to a newer description:

    python -m tests.fake_github_spec                 # npm pack the pinned version
    python -m tests.fake_github_spec --version latest
    python -m tests.fake_github_spec --spec path/to/api.github.com.json

What it does to the operations it keeps:

- request schemas: every `$ref` resolved, OpenAPI 3.0 `nullable` turned into a JSON Schema
  type union, and prose (`description`, `example`) dropped, so `jsonschema` can check bodies;
- limits: every size limit of a request body (`maxItems`, `maxLength`, ...) listed with the
  field it applies to and GitHub's own words, plus fields whose description states a limit the
  schema does not encode ("The maximum size is 64 KB");
- examples: GitHub's example responses, `$ref`s resolved and every array cut to its first item
  (the fake uses them as templates, one item is enough);
- query parameters with their defaults (`state=open`, `per_page=30`, ...).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

PACKAGE = "@octokit/openapi"
PINNED_VERSION = "23.0.2"
SPEC_MEMBER = "package/generated/api.github.com.json"
OUT = Path(__file__).resolve().parent / "fixtures" / "github-openapi-subset.json"

# operationId -> names of the success examples to keep (None: all of them).
OPERATIONS: dict[str, list[str] | None] = {
    "repos/get": None,
    "repos/get-commit": None,
    "repos/list-pull-requests-associated-with-commit": None,
    "repos/get-content": ["response-if-content-is-a-file", "response-if-content-is-a-directory"],
    "repos/create-or-update-file-contents": None,
    "git/get-ref": None,
    "git/get-tree": ["response-recursively-retrieving-a-tree"],
    "issues/list-for-repo": None,
    "issues/get": ["default"],
    "issues/list-labels-on-issue": None,
    "issues/add-labels": None,
    "issues/remove-label": None,
    "issues/list-labels-for-repo": None,
    "issues/get-label": None,
    "issues/create-label": None,
    "issues/list-comments": None,
    "issues/create-comment": None,
    "issues/update-comment": None,
    "pulls/get": None,
    "pulls/list-files": None,
    "pulls/list-reviews": None,
    "checks/create": ["example-of-completed-conclusion"],
    "checks/update": None,
    "checks/get": None,
    "checks/list-for-ref": None,
    "repos/create-commit-status": None,
    "repos/get-combined-status-for-ref": None,
    "repos/list-commit-statuses-for-ref": None,
    "apps/get-repo-installation": None,
    "apps/create-installation-access-token": None,
    "rate-limit/get": None,
}

LIMIT_KEYWORDS = ("maxItems", "minItems", "maxLength", "minLength", "maximum", "minimum")
LIMIT_WORDS = re.compile(r"\b(maximum|at most|or fewer|no more than|limits? the number)\b", re.I)
PROSE = {"description", "example", "examples", "title", "externalDocs", "deprecated"}


class Spec:
    """The full description, with `$ref` resolution."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def follow(self, ref: str) -> Any:
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def resolve(self, node: Any, seen: tuple[str, ...] = ()) -> Any:
        """`node` with every `$ref` replaced by its target (GitHub's request schemas are acyclic)."""
        if isinstance(node, dict):
            if "$ref" in node:
                ref = node["$ref"]
                if ref in seen:
                    raise ValueError(f"cyclic $ref {ref}")
                return self.resolve(self.follow(ref), (*seen, ref))
            return {key: self.resolve(value, seen) for key, value in node.items()}
        if isinstance(node, list):
            return [self.resolve(item, seen) for item in node]
        return node

    def operations(self) -> dict[str, tuple[str, str, dict[str, Any]]]:
        found = {}
        for path, item in self.document["paths"].items():
            for method, operation in item.items():
                if isinstance(operation, dict) and "operationId" in operation:
                    found[operation["operationId"]] = (method.upper(), path, operation)
        return found


def json_schema(schema: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: `nullable` becomes a type union, prose goes."""
    if isinstance(schema, list):
        return [json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in PROSE or key.startswith("x-") or key == "nullable":
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {name: json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = json_schema(value)
    if schema.get("nullable"):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def limits(schema: Any, field: str = "") -> list[dict[str, Any]]:
    """Every size limit in a request schema, with the field it applies to and GitHub's words."""
    found: list[dict[str, Any]] = []
    if not isinstance(schema, dict):
        return found
    stated = {key: schema[key] for key in LIMIT_KEYWORDS if key in schema}
    description = schema.get("description", "")
    if field and (stated or LIMIT_WORDS.search(description)):
        found.append({"field": field, **stated, "description": description})
    for name, sub in schema.get("properties", {}).items():
        found += limits(sub, f"{field}.{name}" if field else name)
    if "items" in schema:
        found += limits(schema["items"], f"{field}[]")
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in schema.get(key, []):
            found += limits(sub, field)
    return found


def first_items(value: Any) -> Any:
    """A template is enough: cut every array of an example to its first item."""
    if isinstance(value, list):
        return [first_items(item) for item in value[:1]]
    if isinstance(value, dict):
        return {key: first_items(item) for key, item in value.items()}
    return value


def example_value(spec: Spec, example: dict[str, Any]) -> Any:
    """The value of an Example Object, also where `value` itself refers to a shared example."""
    value = example.get("value", example)
    if isinstance(value, dict) and value.get("$ref", "").startswith("#/components/examples/"):
        return example_value(spec, spec.follow(value["$ref"]))
    return spec.resolve(value)


def query_parameters(spec: Spec, operation: dict[str, Any]) -> dict[str, Any]:
    params = {}
    for parameter in operation.get("parameters", []):
        parameter = spec.resolve(parameter)
        if parameter["in"] == "query":
            params[parameter["name"]] = json_schema(parameter.get("schema", {}))
    return params


def extract(document: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    spec = Spec(document)
    available = spec.operations()
    subset: dict[str, Any] = {
        "source": {**source, "openapi": document["openapi"], "info": document["info"]["title"]},
        "generated_by": "python -m tests.fake_github_spec",
        "operations": {},
    }
    for operation_id, keep in OPERATIONS.items():
        method, path, operation = available[operation_id]
        status = next(code for code in operation["responses"] if code.startswith("2"))
        content = operation["responses"][status]
        if "$ref" in content:
            content = spec.follow(content["$ref"])
        examples = content.get("content", {}).get("application/json", {}).get("examples", {})
        entry: dict[str, Any] = {
            "method": method,
            "path": path,
            "summary": operation["summary"],
            "documentation_url": operation["externalDocs"]["url"],
            "status": int(status),
            "query": query_parameters(spec, operation),
        }
        body = operation.get("requestBody")
        if body:
            schema = spec.resolve(body["content"]["application/json"]["schema"])
            entry["request_schema"] = json_schema(schema)
            entry["limits"] = limits(schema)
        entry["examples"] = {
            name: first_items(example_value(spec, example))
            for name, example in examples.items()
            if keep is None or name in keep
        }
        subset["operations"][operation_id] = entry
    return subset


def npm_pack(version: str, workdir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fetch the package with npm itself and read the description out of the tarball."""
    done = subprocess.run(
        ["npm", "pack", "--json", f"{PACKAGE}@{version}"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    packed = json.loads(done.stdout)[0]
    with tarfile.open(workdir / packed["filename"]) as tar:
        member = tar.extractfile(SPEC_MEMBER)
        assert member is not None, SPEC_MEMBER
        document = json.load(member)
    source = {
        "package": PACKAGE,
        "version": packed["version"],
        "file": SPEC_MEMBER.removeprefix("package/"),
        "tarball_shasum": packed["shasum"],
        "tarball_integrity": packed["integrity"],
    }
    return document, source


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=PINNED_VERSION, help=f"{PACKAGE} version to pack")
    parser.add_argument("--spec", type=Path, help="use this api.github.com.json instead of npm")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.spec:
        document = json.loads(args.spec.read_text())
        file = SPEC_MEMBER.removeprefix("package/")
        source = {"package": PACKAGE, "version": document["info"]["version"], "file": file}
    else:
        with tempfile.TemporaryDirectory() as workdir:
            document, source = npm_pack(args.version, Path(workdir))
    subset = extract(document, source)
    args.out.write_text(json.dumps(subset, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"{args.out}: {len(subset['operations'])} operations from {PACKAGE} {source['version']}")


if __name__ == "__main__":
    main()
