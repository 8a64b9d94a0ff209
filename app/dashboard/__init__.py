"""The dashboard: one static page, served by the API at /dashboard, that draws itself from the JSON API.

No build step and no server-side rendering: `index.html` holds its CSS and plain JavaScript (the
colour scale too: nothing is fetched from outside the server), and reads the same endpoints as any
client (models, versions with `made_by`, evaluation, importance, jobs, aliases and their history),
so what it shows is what the API says. With keys configured, the page asks for one (kept in the browser's
localStorage) and sends it as a Bearer token; the page itself is public, the data is not.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

PAGE = Path(__file__).with_name("index.html")

router = APIRouter(tags=["dashboard"], include_in_schema=False)


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/", response_class=RedirectResponse)
def dashboard_slash() -> RedirectResponse:
    return RedirectResponse("/dashboard")
