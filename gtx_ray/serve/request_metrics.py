"""Request counts of the REST API as a Ray metric (``gtx_api_requests``, tagged by route and status
class), for the Ray dashboard and its Prometheus endpoint.

Serve's HTTP proxy would count requests, but the API bypasses it (see ``gtx_ray.serve.api``), so it
counts its own. A request costs one dict increment; the totals go to Ray on every ``flush``,
which the server's background task calls, so counting stays cheap at 20k+ requests/s.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

log = logging.getLogger(__name__)

FLUSH_S = 1.0
_EXACT = {
    "/health": "health",
    "/api/meters": "meters",
    "/api/readings": "readings",
    "/api/campus/summary": "campus_summary",
    "/api/simulation": "simulation",
    "/openapi.json": "docs",
    "/docs": "docs",
    "/redoc": "docs",
}


def route_of(path: str) -> str:
    """A small, fixed set of route names (never the raw path: meter ids would explode the
    metric's cardinality)."""
    route = _EXACT.get(path)
    if route is not None:
        return route
    if path.startswith("/api/meters/"):
        if path.endswith("/readings"):
            return "meter_history"
        if path.endswith("/reading"):
            return "meter_reading"
    if path.startswith("/api/ieee2030_5/admin"):
        return "ieee2030_5_admin"
    if path.startswith("/api/ieee2030_5/"):
        return "ieee2030_5"
    return "other"


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class RequestCounter:
    """Counts (route, status class) pairs locally and adds them to the Ray counter on flush."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._metric = None

    def record(self, path: str, status: int) -> None:
        self._counts[(route_of(path), status_class(status))] += 1

    def flush(self) -> None:
        if not self._counts:
            return
        if self._metric is None:
            from ray.util import metrics

            self._metric = metrics.Counter(
                "gtx_api_requests",
                description="REST API requests answered, by route and status class.",
                tag_keys=("route", "status"),
            )
        counts, self._counts = self._counts, Counter()
        for (route, status), n in counts.items():
            self._metric.inc(n, tags={"route": route, "status": status})

    async def run(self, period_s: float = FLUSH_S) -> None:
        """Flush forever (the server's background task)."""
        while True:
            await asyncio.sleep(period_s)
            try:
                self.flush()
            except Exception as exc:  # metrics are not worth stopping the API for
                log.warning("REST API request metrics: %s", exc)
