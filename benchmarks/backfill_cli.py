"""The product's own backfill, end to end: ``python -m gtx_ray backfill`` into a throwaway InfluxDB
1.x (Debian's ``influxd``), timed from the command to its exit, with the CLI's own count check.

    .venv/bin/python -m benchmarks.backfill_cli                      # 1,000 meters x 2 years
    .venv/bin/python -m benchmarks.backfill_cli --meters 100 --duration 30d

Runs a private local Ray (``--address local``) with the REST API and the IEEE 2030.5 server off,
so the figure is the simulate → Arrow → line protocol → InfluxDB path. Prints the table and writes
it to ``backfill_cli.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from benchmarks.common import RESULTS_DIR, machine, table, write_summary
from tests.servers import influxd_server

REPO = Path(__file__).resolve().parents[1]


def count_points(url: str, database: str) -> int:
    query = urllib.parse.urlencode(
        {"db": database, "q": "SELECT count(energy_consumed) FROM meter_readings"}
    )
    with urllib.request.urlopen(f"{url}/query?{query}", timeout=600) as response:
        series = json.loads(response.read())["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


INTRO = """\
The product's own backfill as a user runs it: `python -m gtx_ray backfill` with a private local Ray
(`--address local`), the REST API and the IEEE 2030.5 server off, generated meters at a {interval} s
interval, into a throwaway Debian `influxd` (InfluxDB 1.x) on loopback, timed from the command to
its exit (Ray start-up and shutdown included). "points in InfluxDB" is counted in the database
afterwards (one point per meter per interval, every field of a reading in it); "= CLI count" says
whether it equals the count the CLI itself reports; points/s = points stored per wall second of the
whole command. The simulation, Ray, and InfluxDB share the same cores; load average {load:.1f} at
the start."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--duration", default="2y")
    parser.add_argument("--start", default="2024-01-01")
    parser.add_argument("--interval", type=int, default=900)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the .md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as work:
        server = influxd_server(Path(work) / "influxd").start()
        try:
            command = [
                sys.executable,
                "-m",
                "gtx_ray",
                "backfill",
                *("--start", args.start, "--duration", args.duration),
                *("--interval", str(args.interval), "--meters", str(args.meters)),
                *("--data-dir", str(Path(work) / "data"), "--address", "local"),
                *("--disable-api", "--disable-ieee2030-5", "--status-every", "30"),
            ]
            env = {"INFLUXDB_URL": server.url, "INFLUXDB_BUCKET": "gtx_bench"}
            started = time.monotonic()
            result = subprocess.run(
                command,
                cwd=REPO,
                env={**os.environ, **env},
                stderr=subprocess.PIPE,
                text=True,
            )
            elapsed = time.monotonic() - started
            lines = result.stderr.splitlines()
            for line in lines[-6:]:
                print("  " + line, file=sys.stderr)
            if result.returncode != 0:
                sys.exit(f"backfill exited {result.returncode}")
            stored = count_points(server.url, "gtx_bench")
        finally:
            server.stop()
    done = next((line for line in reversed(lines) if " done: " in line), "")
    match = re.search(r"done: ([\d,]+) readings", done)
    reported = int(match.group(1).replace(",", "")) if match else None
    rows = [
        [
            f"{args.meters:,}",
            args.duration,
            f"{stored:,}",
            f"{elapsed / 60:.1f}",
            f"{stored / elapsed:,.0f}",
            "yes" if reported == stored else f"no ({reported})",
        ]
    ]
    print(f"machine: {machine()}; InfluxDB 1.x (influxd), interval {args.interval} s")
    headers = ["meters", "span", "points in InfluxDB", "minutes", "points/s", "= CLI count"]
    printed = table(headers, rows)
    print(printed)
    command = "python -m benchmarks.backfill_cli"
    for option, default in (("meters", 1000), ("duration", "2y"), ("start", "2024-01-01")):
        if getattr(args, option) != default:
            command += f" --{option} {getattr(args, option)}"
    if args.interval != 900:
        command += f" --interval {args.interval}"
    write_summary(
        "backfill_cli",
        "`gtx_ray backfill` into InfluxDB 1.x, end to end",
        command,
        INTRO.format(interval=args.interval, load=load_before),
        printed,
        "the backfill's last log lines:\n\n" + "\n".join(lines[-4:]),
        directory=args.out,
    )
    if args.json:
        figures = {"machine": machine(), "rows": [dict(zip(headers, rows[0], strict=True))]}
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
