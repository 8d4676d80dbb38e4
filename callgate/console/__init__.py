"""The compliance console: server-rendered pages under /console/, served by `callgate api`.

Each page module holds its handlers in a ``routes`` table; ``access`` guards them all with
a session (the API's bearer tokens log in, their scopes carry over) and sets the headers
that keep the pages from running any script or frame they did not ship.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from aiohttp import web

__all__ = ["PAGES", "setup"]

# The page modules, in the order their routes are added.
PAGES = ("overview", "decisions", "callees", "audit", "scrub")
STATIC = Path(__file__).parent / "static"


def setup(app: web.Application) -> None:
    """Mounts the console on the API's application."""
    from callgate.console import access

    access.setup(app)
    for name in PAGES:
        module = import_module(f"callgate.console.{name}")
        app.router.add_routes(module.routes)
        if hasattr(module, "start"):
            app.on_startup.append(module.start)
        if hasattr(module, "stop"):
            app.on_cleanup.append(module.stop)
    app.router.add_get("/console", _to_overview)
    app.router.add_static("/console/static/", STATIC, append_version=True)


async def _to_overview(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/console/")
