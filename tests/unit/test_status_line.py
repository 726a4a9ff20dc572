"""The CLI's status line from the clock's and the aggregator's status (as the actors give them)."""

from __future__ import annotations

from gtx_ray.cli import StatusLine


def _status(storage: dict, sink: dict) -> dict:
    clock = {
        "speed": None,
        "lag_s": 0.0,
        "intervals_total": 96,
        "intervals_done": 48,
        "wall_elapsed_s": 10.0,
    }
    base_storage = {
        "rows_stored": 0,
        "stored_until_s": 1_704_042_000,
        "queue_depth": 0,
        "last_error": None,
    }
    base_sink = {"sink": "influxdb", "healthy": True, "last_attempt_ok": True, "last_error": None}
    return {
        "clock": clock,
        "storage": {**base_storage, **storage, "sinks": [{**base_sink, **sink}]},
    }


def test_spooled_readings_are_not_counted_as_stored():
    line = StatusLine(25).render(
        _status(
            {"rows_stored": 1200, "rows_delivered": 200, "rows_spooled": 1000},
            {
                "healthy": False,
                "last_attempt_ok": False,
                "rows_pending": 1000,
                "last_error": "InfluxDB at http://db:8086 is unreachable (Connection refused)",
            },
        )
    )
    assert "stored 200 rows" in line and "1,000 spooled" in line
    assert "influxdb: InfluxDB at http://db:8086 is unreachable" in line


def test_a_database_that_answers_again_is_not_called_unreachable_while_it_replays():
    line = StatusLine(25).render(
        _status(
            {"rows_stored": 1200, "rows_delivered": 700, "rows_spooled": 500},
            {"healthy": False, "last_attempt_ok": True, "rows_pending": 500},
        )
    )
    assert "unreachable" not in line
    assert "stored 700 rows" in line and "500 spooled" in line and "replaying" in line


def test_a_healthy_run_shows_neither_spool_nor_error():
    line = StatusLine(25).render(
        _status({"rows_stored": 2400, "rows_delivered": 2400, "rows_spooled": 0}, {})
    )
    assert "stored 2,400 rows" in line and "spooled" not in line and "influxdb" not in line
