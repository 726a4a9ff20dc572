"""Shared bits for the benchmark scripts: machine description and table printing."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """One line naming the machine the figures come from."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB"
    except (ValueError, OSError):
        pass
    return (
        f"{os.cpu_count()} cores ({model}){memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain-text table with right-aligned numbers."""
    cells = [[str(h) for h in headers]] + [
        [f"{c:,}" if isinstance(c, int) else str(c) for c in row] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_summary(
    name: str, title: str, command: str, intro: str, *blocks: str, directory: Path = RESULTS_DIR
) -> Path:
    """Write ``NAME.md`` in ``directory`` (default ``benchmarks/results``): the title, the command,
    the machine and date, an introduction, then each block (a printed table) as preformatted text.
    Returns the path."""
    text = f"# {title}\n\n`{command}` on {machine()}, {time.strftime('%Y-%m-%d')}"
    text += f"; load average {os.getloadavg()[0]:.1f} at the end.\n\n{intro}\n"
    for block in blocks:
        text += f"\n```\n{block}\n```\n"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    print(f"written to {path}")
    return path


CLK_TCK = os.sysconf("SC_CLK_TCK")
"""Clock ticks per second of /proc's CPU times."""


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process, CPU seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _cpu_idle_share(sample_s: float = 2.0) -> float:
    """The share of all CPUs idle over the next ``sample_s`` seconds (/proc/stat)."""

    def idle_total() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, all

    idle0, total0 = idle_total()
    time.sleep(sample_s)
    idle1, total1 = idle_total()
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_until_idle(share: float = 0.9, max_wait_s: float = 120.0) -> None:
    """Wait (up to ``max_wait_s``) until the machine is idle: the previous run's processes have
    exited and nothing else runs (the target is a start on idle cores)."""
    deadline = time.monotonic() + max_wait_s
    while _cpu_idle_share() < share and time.monotonic() < deadline:
        pass
