"""The web console (command centre, police alarm desk, grid-worker and resident pages,
devices, rules and routing, quarantine, incident detail), served by the gateway itself.

Wiring (``gateway.server.build_app`` does it)::

    from gateway.web import WebContext, routes

    app = create_app(gateway, extra_routers=[..., *routes.api_routers])
    app.include_router(routes.pages_router)  # not behind the API seam: the sign-in page
    app.state.web = WebContext(gateway, gateway.incidents)

Everything is in the package (templates, CSS, ES modules): nothing is fetched from outside.
"""

from __future__ import annotations

from gateway.web.context import WebContext

__all__ = ["WebContext"]
