"""The campus's energy and money for its current local day, tallied from every batch the
aggregator receives (so the REST API can say "today's cost" without reading storage).

Batches arrive in time order; a batch reaching a later local day starts the tally afresh with
that day's rows. THB and kWh; shed energy is the demand cut by load-control events.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

DAY_S = 86_400
SUMS = (
    ("import_cost_thb", "import_cost_thb"),
    ("export_credit_thb", "export_credit_thb"),
    ("energy_import_kwh", "import_kwh"),
    ("energy_export_kwh", "export_kwh"),
)


class DayTally:
    """``utc_offset_s``: the campus's offset from UTC (s); ``interval_s``: reading length (s)."""

    def __init__(self, utc_offset_s: int, interval_s: int) -> None:
        self.utc_offset_s = utc_offset_s
        self.hours = interval_s / 3600.0
        self.day: int | None = None
        self.totals = dict.fromkeys([name for _, name in SUMS] + ["shed_kwh"], 0.0)

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        starts = batch.column("timestamp").cast(pa.int64()).to_numpy(zero_copy_only=False)
        days = (starts + self.utc_offset_s) // DAY_S
        newest = int(days.max())
        if self.day is None or newest > self.day:
            self.day = newest
            self.totals = dict.fromkeys(self.totals, 0.0)
        rows = days == self.day
        if not rows.any():
            return
        for column, name in SUMS:
            values = batch.column(column).to_numpy(zero_copy_only=False)
            self.totals[name] += float(np.nansum(values[rows]))
        shed = batch.column("shed_kw").to_numpy(zero_copy_only=False)
        self.totals["shed_kwh"] += float(np.nansum(shed[rows])) * self.hours

    def to_dict(self) -> dict | None:
        """The day (local date) and its totals; ``net_cost_thb`` = import cost − export credit."""
        if self.day is None:
            return None
        date = np.datetime64(self.day, "D").astype(str)
        t = {k: round(v, 3) for k, v in self.totals.items()}
        return {
            "date": date,
            **t,
            "net_cost_thb": round(t["import_cost_thb"] - t["export_credit_thb"], 3),
        }
