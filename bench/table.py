"""``python -m bench.table [PATH]``: the table of a results file (default: the latest run).

For updating BENCHMARKS.md without re-running: prints the machine line and
the table exactly as the run printed them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.report import render_table, rows_from_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=Path("bench/results/latest.json"))
    args = parser.parse_args()
    document = json.loads(args.path.read_text())
    machine = document["machine"]
    print(f"command: {document['command']}")
    print(
        f"date: {machine['date']}; {machine['nproc']} cores, {machine['cpu_model']}; "
        f"load average at start {machine['load_average_at_start']}"
    )
    for name, description in document.get("stacks", {}).items():
        print(f"{name}: {description}")
    print()
    print(render_table(rows_from_json(document)))


if __name__ == "__main__":
    main()
