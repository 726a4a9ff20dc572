"""ParquetSink crash recovery on real files: a journal already rolled into its part is not
stored twice, a window cut short by a crash is dropped whole, a restarted run continues its
parts."""

from __future__ import annotations

import shutil

import pyarrow as pa

from gtx_ray.readings import READING_SCHEMA
from gtx_ray.storage.parquet import JOURNAL_NAME, ParquetSink, read_readings, readings_dir

T0 = 1_735_664_400


def _batch(start_s: int, meters: list[str]) -> pa.RecordBatch:
    rows = []
    for m in meters:
        row = {f.name: 1.0 for f in READING_SCHEMA if f.type == pa.float64()}
        row.update(timestamp=start_s, meter_id=m, building="B", floor=1, meter_type="consumer")
        rows.append(row)
    return pa.RecordBatch.from_pylist(rows, schema=READING_SCHEMA)


def test_a_journal_already_rolled_is_not_stored_twice(tmp_path):
    sink = ParquetSink(tmp_path, run_id="run-a")
    sink.write(_batch(T0, ["m1", "m2"]))
    sink.flush()
    journal = readings_dir(tmp_path) / JOURNAL_NAME
    saved = tmp_path / "journal.copy"
    shutil.copy(journal, saved)
    sink.close()  # rolls the journal into its part and removes it
    shutil.copy(saved, journal)  # as if the process died between the part and the unlink
    ParquetSink(tmp_path, run_id="run-a").close()
    assert read_readings(tmp_path).num_rows == 2


def test_a_window_cut_short_by_a_crash_is_dropped_whole(tmp_path):
    sink = ParquetSink(tmp_path, run_id="run-b")
    sink.write(_batch(T0, ["m1"]), last_of_window=False)
    sink.write(_batch(T0, ["m2"]))  # window 1 complete
    sink.write(_batch(T0 + 900, ["m1"]), last_of_window=False)  # window 2: one group of two
    sink.flush()
    # the process dies here: no close
    recovered = ParquetSink(tmp_path, run_id="run-b")
    rows, newest = recovered.stored_extent()
    assert (rows, newest) == (2, T0)
    recovered.write(_batch(T0 + 900, ["m1"]), last_of_window=False)
    recovered.write(_batch(T0 + 900, ["m2"]))
    recovered.close()
    table = read_readings(tmp_path)
    assert table.num_rows == 4
    assert ParquetSink(tmp_path, run_id="run-b").stored_extent() == (4, T0 + 900)
    names = sorted(p.name for p in readings_dir(tmp_path).glob("part-*.parquet"))
    assert names == ["part-run-b-000001.parquet", "part-run-b-000002.parquet"]
