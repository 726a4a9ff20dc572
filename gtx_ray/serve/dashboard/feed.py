"""The dashboard's data, kept per live-view frame: the campus now (``campus_now``) and the day
so far (``DaySeries``), both pre-rendered to JSON once per new interval, never per request."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from gtx_ray.fleet import MeterArrays
from gtx_ray.serve.campus_now import building_types, campus_now
from gtx_ray.serve.day_series import DaySeries
from gtx_ray.serve.live import Frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rendered:
    """One consistent state, replaced whole (requests never mix two intervals)."""

    etag: bytes  # the frame's: one validator for both representations
    now_json: bytes | None  # None before the first interval
    today_json: bytes


class DashboardFeed:
    """Fed by ``LiveView.frame_listeners``; ``rendered`` is what the routes serve."""

    def __init__(self, campus_name: str, meters: MeterArrays, utc_offset_s: int) -> None:
        self.campus_name = campus_name
        self.types = building_types(meters)
        self.day = DaySeries(utc_offset_s)
        self.rendered = Rendered(b'"empty"', None, self._today_json())

    def _today_json(self) -> bytes:
        return json.dumps(self.day.to_dict()).encode()

    def on_frame(self, frame: Frame) -> None:
        """Aggregate a new frame (runs where the live view renders it). A failure is logged and
        leaves the last state: the rest of the API must not suffer from the dashboard."""
        if frame.summary is None:  # no readings yet
            return
        try:
            latest = frame.latest
            now = campus_now(self.campus_name, self.types, latest)
            started_s = pc.max(latest.column("timestamp").cast(pa.int64())).as_py()
            self.day.add(started_s, now["totals"])
            self.rendered = Rendered(frame.etag, json.dumps(now).encode(), self._today_json())
        except Exception:
            log.exception("dashboard: aggregating the latest readings failed")
