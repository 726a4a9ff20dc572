"""A run's checkpoint: how far its readings are stored, the meters' state at a stored window's end
and the clock's settings, kept on disk next to the readings so that a restarted clock or
aggregator resumes exactly where storage stands.

The aggregator writes it (atomically: temp file, fsync, rename) after a window is stored, at most
every ``CHECKPOINT_EVERY_S`` wall seconds and on close. The states are those at ``state_s``, which
may trail ``stored_until_s``: a clock resuming from them regenerates the intervals in between and
the aggregator drops the rows it already stored (the model is deterministic, so they are the
same readings).
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 2.0


@dataclass(frozen=True)
class Checkpoint:
    """Where a run stands. Times are UTC epoch seconds aligned to the interval."""

    run_id: str
    stored_until_s: int  # every interval before this is stored
    rows_stored: int
    state_s: int | None = None  # where ``states`` stand; None: no window stored yet
    states: list[Any] | None = None  # one MeterState per meter group, at ``state_s``
    clock: dict[str, Any] = field(default_factory=dict)  # speed, paused, pacing anchor

    def advanced(self, stored_until_s: int, rows: int) -> Checkpoint:
        return replace(self, stored_until_s=stored_until_s, rows_stored=self.rows_stored + rows)


class CheckpointStore:
    """``DATA_DIR/checkpoints/<run_id>.pickle``; the file is only ever read by this program."""

    def __init__(self, data_dir: str | Path, run_id: str):
        self.path = Path(data_dir) / "checkpoints" / f"{run_id}.pickle"
        self.run_id = run_id

    def load(self) -> Checkpoint | None:
        try:
            with open(self.path, "rb") as handle:
                checkpoint = pickle.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, pickle.UnpicklingError, EOFError) as exc:
            log.warning("checkpoint %s unreadable (%s): resuming from storage", self.path, exc)
            return None
        return checkpoint if isinstance(checkpoint, Checkpoint) else None

    def save(self, checkpoint: Checkpoint) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_suffix(".tmp")
        with open(temp, "wb") as handle:
            pickle.dump(checkpoint, handle, protocol=pickle.HIGHEST_PROTOCOL)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
