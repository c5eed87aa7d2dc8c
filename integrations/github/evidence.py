"""Evidence from GitHub: DSLP issues, the pull request under review, its CI, and files.

Files are read at the gated ref (the PR's head, else the default branch) from one recursive
tree listing; contents are fetched only for the files the policies look into, by blob SHA,
and kept: a blob never changes, so an unchanged file costs nothing on the next event. Lists
that do change (issues, check runs) are fetched conditionally (ETag), and a 304 costs no
rate limit.
"""

from __future__ import annotations

import base64
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from gates.checks.text import glob_regex
from gates.evidence import cel_paths
from gates.policy import PolicySet, Project
from integrations.github.client import GithubAccess, GithubUnavailable, Reader
from integrations.github.issues import parse_issue, parse_template, primary_metric

log = logging.getLogger("phasegate.github")

ASK_LABEL = "Ask"
OWN_CHECKS = "phasegate /"
RUN_STATES = {"queued", "in_progress", "completed"}  # GitHub's others (waiting...) are pending
TEMPLATES = ".github/ISSUE_TEMPLATE/*"


def content_patterns(policies: PolicySet) -> list[str]:
    """Globs of the files whose content some check reads (the rest need only exist)."""
    patterns = {TEMPLATES}
    for gate in policies.gates.values():
        for node in gate.nodes():
            params = node.params
            for name in ("path", "paths"):
                value = getattr(params, name, None) if params is not None else None
                patterns.update([value] if isinstance(value, str) else value or [])
            for text in (node.expr, node.if_, node.found):
                patterns.update(
                    p[1] for p in cel_paths(text or "") if p[0] == "files" and len(p) > 1
                )
    return sorted(patterns)


class GithubSource:
    name = "github"

    def __init__(
        self,
        access: GithubAccess,
        policies: Callable[[], PolicySet],
        max_file_bytes: int = 256 * 1024,
        blob_cache: int = 8192,
    ) -> None:
        self.reader = Reader(access)
        self.policies = policies
        self.max_file_bytes = max_file_bytes
        self._blobs: OrderedDict[str, str | None] = OrderedDict()
        self._blob_capacity = blob_cache

    def collect(self, project: Project, pull_request: int | None = None) -> dict[str, Any]:
        if project.github is None:
            return {}
        try:
            return self._collect(project, pull_request)
        except GithubUnavailable as exc:
            log.warning("GitHub evidence for %s unavailable: %s", project.key, exc)
            reason = str(exc)
            return {"unavailable": {"github": reason, "files": reason, "ask": reason}}

    def _collect(self, project: Project, number: int | None) -> dict[str, Any]:
        assert project.github is not None
        repo, prefix = project.github.repo, (project.github.path or "").strip("/")
        info = self.reader.get(repo, f"/repos/{repo}")
        if info is None:
            raise GithubUnavailable(f"repository {repo} not found (or not visible to phasegate)")
        web = info.get("html_url") or ""
        pull = self.reader.get(repo, f"/repos/{repo}/pulls/{number}") if number else None
        ref = pull["head"]["sha"] if pull else info.get("default_branch", "main")
        files, templates = self._files(repo, ref, prefix, web)
        issues = [
            parse_issue(raw, templates)
            for raw in self.reader.get_all(repo, f"/repos/{repo}/issues", {"state": "all"})
            if "pull_request" not in raw
        ]
        fragment: dict[str, Any] = {
            "github": {"repo": repo, "url": web, "issues": issues},
            "files": files,
            "ask": self._ask(issues, repo),
        }
        if pull:
            fragment["github"]["pull_request"] = self._pull(repo, pull)
            fragment["github"]["checks"] = self._checks(repo, pull["head"]["sha"])
            fragment["subject"] = {
                "kind": "pull_request",
                "url": pull.get("html_url"),
                "author": (pull.get("user") or {}).get("login"),
                "ref": pull["head"]["sha"],
            }
        return fragment

    def _files(
        self, repo: str, ref: str, prefix: str, web: str
    ) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
        tree = self.reader.get(repo, f"/repos/{repo}/git/trees/{ref}", {"recursive": "1"}) or {}
        if tree.get("truncated"):
            log.warning(
                "%s: the tree at %s is truncated by GitHub; some files are not seen", repo, ref
            )
        wanted = [glob_regex(p) for p in content_patterns(self.policies())]
        files: dict[str, Any] = {}
        templates: dict[str, dict[str, str]] = {}
        for entry in tree.get("tree", []):
            if entry.get("type") != "blob":
                continue
            path: str = entry["path"]
            template = path.startswith(".github/ISSUE_TEMPLATE/")
            if prefix and not template:
                if not path.startswith(prefix + "/"):
                    continue
                path = path[len(prefix) + 1 :]
            item: dict[str, Any] = {"path": path, "url": f"{web}/blob/{ref}/{entry['path']}"}
            if any(r.match(path) for r in wanted) and entry.get("size", 0) <= self.max_file_bytes:
                item["content"] = self.blob(repo, entry["sha"], entry["path"], ref)
            if template:
                labels, placeholders = parse_template(path, item.get("content") or "")
                templates.update({label.lower(): placeholders for label in labels})
            else:
                files[path] = item
        return files, templates

    def blob(self, repo: str, sha: str, path: str, ref: str) -> str | None:
        """A file's text, by its blob SHA: read once (through the contents API), kept after."""
        if sha in self._blobs:
            self._blobs.move_to_end(sha)
            return self._blobs[sha]
        blob = self.reader.get(repo, f"/repos/{repo}/contents/{quote(path)}", {"ref": ref}) or {}
        try:
            text: str | None = base64.b64decode(blob.get("content", "")).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            text = None  # binary: exists, but has no text to read
        self._blobs[sha] = text
        while len(self._blobs) > self._blob_capacity:
            self._blobs.popitem(last=False)
        return text

    def _ask(self, issues: list[dict[str, Any]], repo: str) -> dict[str, Any]:
        ask = next((i for i in issues if ASK_LABEL.lower() in map(str.lower, i["labels"])), None)
        if ask is None:
            return {}
        body = "\n".join(ask["sections"].values())
        return {"issue": ask["number"], "url": ask["url"], "primary_metric": primary_metric(body)}

    def _pull(self, repo: str, pull: dict[str, Any]) -> dict[str, Any]:
        number = pull["number"]
        changed = self.reader.get_all(repo, f"/repos/{repo}/pulls/{number}/files")
        return {
            "number": number,
            "title": pull.get("title") or "",
            "url": pull.get("html_url"),
            "author": (pull.get("user") or {}).get("login"),
            "branch": pull["head"].get("ref", ""),
            "base": pull["base"].get("ref", ""),
            "head_sha": pull["head"]["sha"],
            "labels": [lbl["name"] for lbl in pull.get("labels", [])],
            "files_changed": [f["filename"] for f in changed],
            "draft": bool(pull.get("draft")),
            "merged": bool(pull.get("merged")),
        }

    def _checks(self, repo: str, sha: str) -> list[dict[str, Any]]:
        runs = self.reader.get_all(
            repo, f"/repos/{repo}/commits/{sha}/check-runs", key="check_runs"
        )
        status = self.reader.get(repo, f"/repos/{repo}/commits/{sha}/status") or {}
        checks = [
            {
                "name": run["name"],
                "status": run["status"] if run.get("status") in RUN_STATES else "pending",
                "conclusion": run.get("conclusion"),
                "url": run.get("html_url"),
            }
            for run in runs
        ]
        checks += [
            {
                "name": s["context"],
                "status": "pending" if s["state"] == "pending" else "completed",
                "conclusion": None if s["state"] == "pending" else s["state"],
                "url": s.get("target_url"),
            }
            for s in status.get("statuses", [])
        ]
        # phasegate's own checks are not evidence: they would change the gate's digest each
        # time phasegate reports, and void the approvals given on what it reported.
        return [c for c in checks if not c["name"].startswith(OWN_CHECKS)]
