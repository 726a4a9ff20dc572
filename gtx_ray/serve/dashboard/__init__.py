"""The live campus dashboard served by the REST API at ``/``: one hand-written page (vanilla
JavaScript, inline SVG charts, no build step, nothing fetched from elsewhere) that polls the API
with ETags. ``add_dashboard_routes`` adds the page, its files and the data it needs."""

from gtx_ray.serve.dashboard.routes import add_dashboard_routes

__all__ = ["add_dashboard_routes"]
