"""Campus totals per interval for the simulated day so far (local time of the campus), for the
dashboard's charts: a small, bounded accumulator fed with the REST API's live snapshots.

It holds what the live view saw: one point per distinct interval it rendered. In real time
(and up to about one interval per wall second) that is every interval. Faster, the clock steps
windows of several intervals (about a second's worth) and the live view only sees the last
interval of each, so the series is a sample of the day, one point per window. At most
``MAX_POINTS`` points per day: points closer than a day / ``MAX_POINTS`` to the previous one are
dropped, so a 1-second interval keeps one point a minute. A new local day, or time going
backwards, starts the series afresh.
"""

from __future__ import annotations

from gtx_ray.serve.views import rfc3339

DAY_S = 86_400
MAX_POINTS = 1_440
FIELDS = (
    "consumption_kw",  # campus demand
    "generation_kw",  # PV
    "net_grid_kw",  # import − export
    "battery_kw",  # + charging / − discharging
    "battery_level_pct",  # mean state of charge over the batteries; None without batteries
)


class DaySeries:
    """The day so far; ``utc_offset_s`` is the campus's fixed offset from UTC (s)."""

    def __init__(self, utc_offset_s: int, max_points: int = MAX_POINTS) -> None:
        self.utc_offset_s = utc_offset_s
        self.min_spacing_s = DAY_S / max_points
        self.day: int | None = None  # local day number (days since 1970-01-01 local)
        self.timestamps: list[int] = []  # interval starts, UTC epoch s
        self.values: dict[str, list[float | None]] = {name: [] for name in FIELDS}

    def add(self, timestamp_s: int, totals: dict) -> bool:
        """Record the campus ``totals`` (``FIELDS``, kW and %) of the interval starting at
        ``timestamp_s``; False when the point is not kept (seen already, or too close)."""
        day = (timestamp_s + self.utc_offset_s) // DAY_S
        last = self.timestamps[-1] if self.timestamps else None
        if day != self.day or (last is not None and timestamp_s < last):
            self.day, last = day, None
            self.timestamps = []
            self.values = {name: [] for name in FIELDS}
        if last is not None and timestamp_s - last < self.min_spacing_s:
            return False
        self.timestamps.append(timestamp_s)
        for name in FIELDS:
            self.values[name].append(totals.get(name))
        return True

    def to_dict(self) -> dict:
        """``GET /api/campus/today``: the local date, the offset and the series, column-wise
        (``timestamp`` RFC 3339 UTC, interval starts, oldest first)."""
        date = None
        if self.day is not None:
            date = rfc3339(self.day * DAY_S)[:10]
        return {
            "date": date,
            "utc_offset_s": self.utc_offset_s,
            "points": len(self.timestamps),
            "timestamp": [rfc3339(t) for t in self.timestamps],
            **self.values,
        }
