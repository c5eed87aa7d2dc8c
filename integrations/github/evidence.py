"""Evidence from GitHub: DSLP issues, the pull request under review, its reviews and CI, files.

Only what the gates being evaluated read is fetched (their declared reads, ``Gate.reads``):
a pull request's files changed, its reviews and the CI on its head only when a check of one
of its gates names them; the repository's files only when a check reads ``files``; the
issues only when one reads ``github.issues`` or ``ask``. What the triggering webhook already
says (the repository, the PR's head, branch, labels, author, draft) is taken from the stored
delivery rather than asked again.

Files are read at the gated ref (the PR's head, else the default branch) from one recursive
tree listing; contents are fetched only for the files the policies look into, by blob SHA,
and kept: a blob never changes, so an unchanged file costs nothing on the next event. Issue
templates are always read from the default branch: a PR must not be able to change the
template its own issues are compared with. Lists that change (issues, check runs) are
fetched conditionally (ETag; a 304 costs no rate limit), and one evaluation asks for each
resource once (:class:`~integrations.github.client.Visit`).
"""

from __future__ import annotations

import base64
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from gates.checks.text import glob_regex
from gates.events import Event
from gates.evidence import PathKey, cel_paths
from gates.policy import Gate, PolicySet, Project
from integrations.github.client import GithubAccess, GithubUnavailable, Reader, Visit
from integrations.github.inbound import OWN_CHECKS, known_pull, known_repository
from integrations.github.issues import parse_issue, parse_template, primary_metric

log = logging.getLogger("phasegate.github")

ASK_LABEL = "Ask"
RUN_STATES = {"queued", "in_progress", "completed"}  # GitHub's others (waiting...) are pending
TEMPLATE_DIR = ".github/ISSUE_TEMPLATE/"
DECISIONS = {"APPROVED", "CHANGES_REQUESTED", "DISMISSED"}  # what a later comment does not undo


def content_patterns(policies: PolicySet) -> list[str]:
    """Globs of the files whose content some check reads (the rest need only exist)."""
    patterns: set[str] = set()
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


def reaches(paths: Iterable[PathKey], target: PathKey) -> bool:
    """Whether a gate reading ``paths`` reads ``target``: a path that names it (or something
    inside it), or a whole evidence root such as ``files``. ``github.pull_request != null``
    reads the pull request, not its files changed or reviews: those are fetched only for a
    check that names them."""
    return any(p[: len(target)] == target or (len(p) == 1 and p == target[:1]) for p in paths)


@dataclass(frozen=True)
class Needs:
    """What of GitHub the gates being evaluated read; by default everything."""

    files: bool = True
    issues: bool = True
    templates: bool = True
    files_changed: bool = True
    reviews: bool = True
    checks: bool = True

    @classmethod
    def of(cls, gates: Iterable[Gate]) -> Needs:
        paths: frozenset[PathKey] = frozenset().union(*(g.reads for g in gates))
        return cls(
            files=reaches(paths, ("files",)),
            issues=reaches(paths, ("github", "issues")) or reaches(paths, ("ask",)),
            templates=reaches(paths, ("github", "issues")),
            files_changed=reaches(paths, ("github", "pull_request", "files_changed")),
            reviews=reaches(paths, ("github", "pull_request", "reviews")),
            checks=reaches(paths, ("github", "checks")),
        )


def standing(reviews: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each reviewer's latest decision as GitHub counts it, in ``gates.evidence.Review``
    fields: an approval or a request for changes stands until the same reviewer decides
    otherwise (a later comment does not undo it; a dismissal does); a reviewer without a
    standing decision has COMMENTED. Pending (unsubmitted) reviews are nobody's business."""
    ordered = sorted(
        (r for r in reviews if r.get("state") != "PENDING" and (r.get("user") or {}).get("login")),
        key=lambda r: (r.get("submitted_at") or "", r.get("id") or 0),
    )
    latest: dict[str, dict[str, Any]] = {}
    decided: dict[str, dict[str, Any]] = {}
    for review in ordered:
        login = review["user"]["login"]
        latest[login] = review
        if review.get("state") in DECISIONS:
            decided[login] = review
    shown = []
    for login in sorted(latest, key=str.lower):
        review = decided.get(login)
        if review is None or review.get("state") == "DISMISSED":
            review, state = latest[login], "COMMENTED"
        else:
            state = review["state"]
        shown.append(
            {
                "author": login,
                "state": state,
                "submitted_at": review.get("submitted_at"),
                "url": review.get("html_url"),
                "commit": review.get("commit_id"),
            }
        )
    return shown


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
        return self.collect_after(project, pull_request, ())

    def collect_after(
        self, project: Project, pull_request: int | None, events: Sequence[Event]
    ) -> dict[str, Any]:
        """``events``: the deliveries that asked for this evaluation; what they say about the
        repository and the pull request is not asked of GitHub again."""
        if project.github is None:
            return {}
        try:
            return self._collect(project, pull_request, events)
        except GithubUnavailable as exc:
            log.warning("GitHub evidence for %s unavailable: %s", project.key, exc)
            reason = str(exc)
            return {"unavailable": {"github": reason, "files": reason, "ask": reason}}

    def pulls_of_commit(self, repo: str, sha: str) -> list[dict[str, Any]]:
        """The pull requests GitHub associates with a commit (for deliveries that name none)."""
        return self.reader.get_all(repo, f"/repos/{repo}/commits/{sha}/pulls")

    def _collect(
        self, project: Project, number: int | None, events: Sequence[Event]
    ) -> dict[str, Any]:
        assert project.github is not None
        repo, prefix = project.github.repo, (project.github.path or "").strip("/")
        visit = Visit(self.reader)
        info = known_repository(events, repo) or visit.get(repo, f"/repos/{repo}")
        if info is None:
            raise GithubUnavailable(f"repository {repo} not found (or not visible to phasegate)")
        web, default = info.get("html_url") or "", info.get("default_branch") or "main"
        pull = None
        if number:
            pull = known_pull(events, repo, number) or visit.get(
                repo, f"/repos/{repo}/pulls/{number}"
            )
        needs = Needs()
        if pull:
            labels = [lbl["name"] for lbl in pull.get("labels", [])]
            needs = Needs.of(self.policies().gates_for_pull_request(pull["head"]["ref"], labels))
        ref = pull["head"]["sha"] if pull else default
        fragment: dict[str, Any] = {"github": {"repo": repo, "url": web}}
        if needs.files:
            fragment["files"] = self._files(visit, repo, ref, prefix, web)
        if needs.issues:
            templates = self._templates(visit, repo, default) if needs.templates else {}
            issues = [
                parse_issue(raw, templates, repo)
                for raw in visit.get_all(repo, f"/repos/{repo}/issues", {"state": "all"})
                if "pull_request" not in raw
            ]
            fragment["github"]["issues"] = issues
            fragment["ask"] = self._ask(issues)
        if pull:
            fragment["github"]["pull_request"] = self._pull(visit, repo, pull, needs)
            if needs.checks:
                fragment["github"]["checks"] = self._checks(visit, repo, pull["head"]["sha"])
            fragment["subject"] = {
                "kind": "pull_request",
                "url": pull.get("html_url"),
                "author": (pull.get("user") or {}).get("login"),
                "ref": pull["head"]["sha"],
            }
        return fragment

    def _tree(self, visit: Visit, repo: str, ref: str) -> list[dict[str, Any]]:
        tree = visit.get(repo, f"/repos/{repo}/git/trees/{ref}", {"recursive": "1"}) or {}
        if tree.get("truncated"):
            log.warning(
                "%s: the tree at %s is truncated by GitHub; some files are not seen", repo, ref
            )
        return [entry for entry in tree.get("tree", []) if entry.get("type") == "blob"]

    def _files(
        self, visit: Visit, repo: str, ref: str, prefix: str, web: str
    ) -> dict[str, dict[str, Any]]:
        wanted = [glob_regex(p) for p in content_patterns(self.policies())]
        files: dict[str, Any] = {}
        for entry in self._tree(visit, repo, ref):
            path: str = entry["path"]
            if path.startswith(TEMPLATE_DIR):
                continue  # read from the default branch: see _templates
            if prefix:
                if not path.startswith(prefix + "/"):
                    continue
                path = path[len(prefix) + 1 :]
            item: dict[str, Any] = {"path": path, "url": f"{web}/blob/{ref}/{entry['path']}"}
            if any(r.match(path) for r in wanted) and entry.get("size", 0) <= self.max_file_bytes:
                item["content"] = self.blob(repo, entry["sha"], entry["path"], ref)
            files[path] = item
        return files

    def _templates(self, visit: Visit, repo: str, default: str) -> dict[str, dict[str, str]]:
        """label → (heading → placeholder) of the issue templates on the default branch."""
        templates: dict[str, dict[str, str]] = {}
        for entry in self._tree(visit, repo, default):
            path = entry["path"]
            if path.startswith(TEMPLATE_DIR) and entry.get("size", 0) <= self.max_file_bytes:
                text = self.blob(repo, entry["sha"], path, default) or ""
                labels, placeholders = parse_template(path, text)
                templates.update({label.lower(): placeholders for label in labels})
        return templates

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

    def _ask(self, issues: list[dict[str, Any]]) -> dict[str, Any]:
        ask = next((i for i in issues if ASK_LABEL.lower() in map(str.lower, i["labels"])), None)
        if ask is None:
            return {}
        body = "\n".join(ask["sections"].values())
        return {"issue": ask["number"], "url": ask["url"], "primary_metric": primary_metric(body)}

    def _pull(self, visit: Visit, repo: str, pull: dict[str, Any], needs: Needs) -> dict[str, Any]:
        number = pull["number"]
        shown = {
            "number": number,
            "title": pull.get("title") or "",
            "url": pull.get("html_url"),
            "author": (pull.get("user") or {}).get("login"),
            "branch": pull["head"].get("ref", ""),
            "base": pull["base"].get("ref", ""),
            "head_sha": pull["head"]["sha"],
            "labels": [lbl["name"] for lbl in pull.get("labels", [])],
            "draft": bool(pull.get("draft")),
            "merged": bool(pull.get("merged") or pull.get("merged_at")),
        }
        if needs.files_changed:
            changed = visit.get_all(repo, f"/repos/{repo}/pulls/{number}/files")
            shown["files_changed"] = [f["filename"] for f in changed]
        if needs.reviews:
            shown["reviews"] = standing(
                visit.get_all(repo, f"/repos/{repo}/pulls/{number}/reviews")
            )
        return shown

    def _checks(self, visit: Visit, repo: str, sha: str) -> list[dict[str, Any]]:
        runs = visit.get_all(repo, f"/repos/{repo}/commits/{sha}/check-runs", key="check_runs")
        status = visit.get(repo, f"/repos/{repo}/commits/{sha}/status") or {}
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
