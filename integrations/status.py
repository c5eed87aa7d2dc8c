"""The read-only status page, served by the receiver: where a check run's "Details" leads.

``GET /status`` lists the projects, their phase and the last decision of each gate, for the
project and for each pull request it was checked on; ``GET /status/{project}`` (the
project's own) and ``GET /status/{project}?pr=N`` (pull request N's, where its check's
"Details" leads) show each gate's latest result in full (every check with its
outcome, expected and found value, link and hint; the approvals still missing; rejections
with their reasons), rendered by :func:`gates.render.to_html` from the stored result -- the
same value the check summary and the Slack message show. Everything is read from the store;
nothing here changes anything, and every value is HTML-escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from gates.render import to_html
from gates.result import GateResult
from gates.store import EvaluationRow, Store

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #1f2328 }
table { border-collapse: collapse; width: 100%; margin: .5em 0 1em }
th, td { border: 1px solid #d0d7de; padding: .3em .5em; text-align: left; vertical-align: top }
th { background: #f6f8fa }
tr.failed td, tr.error td { background: #fff1f0 }
tr.waived td { background: #fff8e6 }
section.gate { border-top: 3px solid #d0d7de; margin-top: 1.5em }
section.passed { border-color: #1a7f37 } section.blocked, section.error { border-color: #cf222e }
section.awaiting_approval { border-color: #9a6700 }
.meta, small { color: #59636e }
"""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def _scope(pull_request: int | None) -> str:
    return f"PR #{pull_request}" if pull_request is not None else "the project"


def _href(key: str, pull_request: int | None, gate: str | None = None) -> str:
    """The page of a project, or of one of its pull requests (what a PR's check links to)."""
    url = f"/status/{quote(key, safe='')}"
    url += f"?pr={pull_request}" if pull_request is not None else ""
    return url + (f"#{quote(gate, safe='')}" if gate else "")


def _latest(store: Store, key: str) -> list[tuple[tuple[str, int | None], EvaluationRow]]:
    """The latest evaluation of each gate, for the project and for each pull request it was
    checked on, apart: a PR's check and the project's own standing may well differ."""
    rows = store.latest_evaluations(key).items()
    return sorted(rows, key=lambda item: (item[0][1] is not None, item[0][1] or 0, item[0][0]))


def overview(store: Store) -> str:
    """Every project the store knows, its phase and the last decision of each gate (for the
    project, and for each pull request)."""
    rows = []
    for project in sorted(store.projects(), key=lambda p: p.key):
        link = f'<a href="{_href(project.key, None)}">{escape(project.key)}</a>'
        gates = _latest(store, project.key)
        if not gates:
            rows.append(f"<tr><td>{link}</td><td>{escape(project.phase)}</td>" + "<td></td>" * 5)
        for (gate, pull), row in gates:
            rows.append(
                f"<tr><td>{link}</td><td>{escape(project.phase)}</td>"
                f'<td><a href="{_href(project.key, pull, gate)}">{escape(gate)}</a></td>'
                f"<td>{_scope(pull)}</td><td>{escape(row.status)}</td>"
                f"<td>{escape(str(row.result.get('summary', '')))}</td>"
                f"<td>{row.at:%Y-%m-%d %H:%M} UTC</td></tr>"
            )
    table = (
        "<table><thead><tr><th>Project</th><th>Phase</th><th>Gate</th><th>On</th>"
        "<th>Decision</th><th>Summary</th><th>When</th></tr></thead><tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>"
        if rows
        else "<p>No project has been evaluated yet.</p>"
    )
    return _page("phasegate status", f"<h1>phasegate status</h1>\n{table}")


def project_page(store: Store, key: str, pull_request: int | None = None) -> str | None:
    """Each gate's latest result for ``key`` -- on ``pull_request`` when given, the project's
    own otherwise, with links to its pull requests' pages; None for a project the store
    does not know."""
    project = store.project(key)
    if project is None:
        return None
    latest = _latest(store, key)
    sections = [_section(gate, row.result) for (gate, pull), row in latest if pull == pull_request]
    pulls = sorted({pull for (_, pull), _ in latest if pull is not None and pull != pull_request})
    others = [f'<a href="{_href(key, None)}">the project</a>'] if pull_request is not None else []
    others += [f'<a href="{_href(key, pull)}">PR #{pull}</a>' for pull in pulls]
    body = [
        '<p><a href="/status">All projects</a></p>',
        f"<h1>{escape(key)}"
        + (f" · PR #{pull_request}" if pull_request is not None else "")
        + "</h1>",
        f"<p>Phase: <strong>{escape(project.phase)}</strong></p>",
        *(sections or [f"<p>No gate has been evaluated on {_scope(pull_request)} yet.</p>"]),
        *([f'<p class="meta">Also evaluated: {", ".join(others)}</p>'] if others else []),
    ]
    return _page(f"{key} · phasegate", "\n".join(body))


def _section(gate: str, stored: dict[str, Any]) -> str:
    try:
        return to_html(GateResult.model_validate(stored))
    except ValidationError:  # recorded by a version whose result had another shape
        return (
            f'<section id="{escape(gate)}" class="gate"><h2>{escape(gate)}</h2>'
            f"<p>{escape(str(stored.get('summary', '')))} (recorded in an older format; the "
            "next evaluation shows it in full)</p></section>"
        )


def router(store: Store) -> APIRouter:
    """``/status`` and ``/status/{project}`` for the receiver's app."""
    routes = APIRouter()

    @routes.get("/status", response_class=HTMLResponse)
    async def all_projects() -> HTMLResponse:
        return HTMLResponse(await run_in_threadpool(overview, store))

    @routes.get("/status/{project}", response_class=HTMLResponse)
    async def one_project(project: str, pr: int | None = None) -> HTMLResponse:
        page = await run_in_threadpool(project_page, store, project, pr)
        if page is None:
            text = f"<h1>Unknown project</h1><p>phasegate has no project '{escape(project)}'.</p>"
            return HTMLResponse(_page("unknown project", text), status_code=404)
        return HTMLResponse(page)

    return routes
