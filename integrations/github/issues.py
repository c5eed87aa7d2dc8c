"""DSLP issues as evidence: sections, the repository's own template text, boxes and links.

A section counts as written only when it differs from what the repository's template put
there, so the templates under ``.github/ISSUE_TEMPLATE/`` are read too: Markdown templates
(text under each heading) and issue forms (a textarea's ``value``; an unanswered field shows
GitHub's ``_No response_``, which never counts).

The Ask states its primary metric on one line, anywhere in the issue::

    Primary metric: auc >= 0.85        (or ≤ / <= for metrics where lower is better)
"""

from __future__ import annotations

import io
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gates.checks.text import sections

_BOX = re.compile(r"^\s*[-*]\s+\[([ xX])\]\s+(.+?)\s*$", re.M)
_LINK = re.compile(
    r"(?:https?://[^/\s]+/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)/(?:issues|pull)/"
    r"|(?<![\w/.-])(?P<short_owner>[\w.-]+)/(?P<short_repo>[\w.-]+)#"
    r"|(?<![\w/])#)(?P<n>\d+)\b"
)
_METRIC = re.compile(
    r"primary\s+metric\s*[:=]\s*`?([A-Za-z][\w.\-/]*)`?\s*(>=|≥|=>|>|<=|≤|=<|<)\s*([0-9]*\.?[0-9]+)",
    re.I,
)
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)


def parse_issue(
    raw: dict[str, Any], templates: dict[str, dict[str, str]], repo: str
) -> dict[str, Any]:
    """An issue of ``repo`` (owner/name) from the REST API as :class:`gates.evidence.Issue`
    fields."""
    body = raw.get("body") or ""
    labels = [lbl["name"] for lbl in raw.get("labels", []) if isinstance(lbl, dict)]
    template = next((templates[lbl.lower()] for lbl in labels if lbl.lower() in templates), {})
    number = int(raw["number"])
    return {
        "number": number,
        "title": raw.get("title") or "",
        "url": raw.get("html_url"),
        "state": raw.get("state", "open"),
        "author": (raw.get("user") or {}).get("login"),
        "labels": labels,
        "sections": {s.heading: s.body for s in sections(body).values()},
        "template": template,
        "checkboxes": [{"text": t, "checked": c.lower() == "x"} for c, t in _BOX.findall(body)],
        "links": links(body, repo, number),
    }


def links(body: str, repo: str, number: int) -> list[int]:
    """The issues of ``repo`` that ``body`` links: ``#12``, ``owner/name#12`` and issue or
    pull request URLs of the same repository. Another repository's ``/issues/12`` is not
    this repository's #12."""
    found = set()
    for match in _LINK.finditer(body or ""):
        owner = match.group("owner") or match.group("short_owner")
        name = match.group("repo") or match.group("short_repo")
        if owner is None or f"{owner}/{name}".lower() == repo.lower():
            found.add(int(match.group("n")))
    return sorted(found - {number})


def primary_metric(body: str) -> dict[str, Any] | None:
    match = _METRIC.search(body or "")
    if not match:
        return None
    name, sign, value = match.groups()
    direction = "lower" if ("<" in sign or sign == "≤") else "higher"
    return {"name": name, "threshold": float(value), "direction": direction}


def parse_template(path: str, text: str) -> tuple[list[str], dict[str, str]]:
    """(labels, heading → placeholder) of one issue template, Markdown or issue form."""
    if path.endswith((".yml", ".yaml")):
        try:
            form = YAML(typ="safe", pure=True).load(io.StringIO(text)) or {}
        except YAMLError:
            return [], {}
        fields = {}
        for item in form.get("body") or []:
            attributes = item.get("attributes") or {} if isinstance(item, dict) else {}
            if item.get("type") in ("textarea", "input") and attributes.get("label"):
                fields[str(attributes["label"])] = str(attributes.get("value") or "")
        return _labels(form.get("labels")), fields
    front = _FRONT_MATTER.match(text)
    meta: dict[str, Any] = {}
    if front:
        try:
            meta = YAML(typ="safe", pure=True).load(io.StringIO(front.group(1))) or {}
        except YAMLError:
            meta = {}
        text = text[front.end() :]
    return _labels(meta.get("labels")), {s.heading: s.body for s in sections(text).values()}


def _labels(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v) for v in value or []]
