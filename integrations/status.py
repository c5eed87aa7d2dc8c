"""The read-only status page, served by the receiver: where a check run's "Details" leads.

``GET /status`` lists the projects, their phase and the last decision of each gate;
``GET /status/{project}`` shows each gate's latest result in full (every check with its
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
from gates.store import Store

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


def overview(store: Store) -> str:
    """Every project the store knows, its phase and the last decision of each gate."""
    rows = []
    for project in sorted(store.projects(), key=lambda p: p.key):
        link = f'<a href="/status/{quote(project.key, safe="")}">{escape(project.key)}</a>'
        gates = sorted(store.last_evaluations(project.key).items())
        if not gates:
            rows.append(f"<tr><td>{link}</td><td>{escape(project.phase)}</td>" + "<td></td>" * 4)
        for gate, row in gates:
            anchor = f"/status/{quote(project.key, safe='')}#{quote(gate, safe='')}"
            rows.append(
                f"<tr><td>{link}</td><td>{escape(project.phase)}</td>"
                f'<td><a href="{anchor}">{escape(gate)}</a></td><td>{escape(row.status)}</td>'
                f"<td>{escape(str(row.result.get('summary', '')))}</td>"
                f"<td>{row.at:%Y-%m-%d %H:%M} UTC</td></tr>"
            )
    table = (
        "<table><thead><tr><th>Project</th><th>Phase</th><th>Gate</th><th>Decision</th>"
        "<th>Summary</th><th>When</th></tr></thead><tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>"
        if rows
        else "<p>No project has been evaluated yet.</p>"
    )
    return _page("phasegate status", f"<h1>phasegate status</h1>\n{table}")


def project_page(store: Store, key: str) -> str | None:
    """Each gate's latest result for ``key``; None for a project the store does not know."""
    project = store.project(key)
    if project is None:
        return None
    sections = [
        _section(gate, row.result) for gate, row in sorted(store.last_evaluations(key).items())
    ]
    body = [
        '<p><a href="/status">All projects</a></p>',
        f"<h1>{escape(key)}</h1>",
        f"<p>Phase: <strong>{escape(project.phase)}</strong></p>",
        *(sections or ["<p>No gate has been evaluated yet.</p>"]),
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
    async def one_project(project: str) -> HTMLResponse:
        page = await run_in_threadpool(project_page, store, project)
        if page is None:
            text = f"<h1>Unknown project</h1><p>phasegate has no project '{escape(project)}'.</p>"
            return HTMLResponse(_page("unknown project", text), status_code=404)
        return HTMLResponse(page)

    return routes
